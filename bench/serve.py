"""edgekit serve against the servers users would otherwise deploy: a bare Starlette/Uvicorn
endpoint that does nothing but infer, KServe's Python ModelServer 0.21 and Seldon MLServer
1.7.1, all serving the same KWS int8 bundle through the same edgekit.runtime engine, on
loopback, with a lean load client (bench/serve_load.py).

    .venv/bin/python bench/serve.py [--servers bare,kserve,mlserver,edgekit-json,edgekit-binary,edgekit-grpc]
                                    [--seconds 3] [--warmup 1] [--clients 1,8,64] [--rounds 3] [--no-peer-install]

Per server and round, each started as a fresh subprocess: ready after (spawn to the first 200 on
/v2/health/ready), one checked inference (its outputs must equal the in-process call's),
p50/p99 latency with one client, throughput at each client count, the server's CPU time
per request at the largest count, and its RSS after the load (VmRSS of the process and its
children). The in-process call (edgekit.runtime Model.run, same bundle, same options) is
timed in the same run; p50 overhead = p50 latency with one client - p50 of that call.
Rounds interleave (every server once, then again), so that the drift of a shared machine
spreads over all of them; each figure is the median over rounds.

The load client runs pinned to one CPU and the server (with its children) to another when
the machine has two; the peers run in their own venvs, bench/.peers-venv-<name>, built
from bench/peers/<name>.txt on first use (pip, needs the network; --no-peer-install: only
use a venv already built). A peer whose venv cannot be built is skipped with the reason
printed and written in the results. Writes Markdown to bench/results/serve.md (or --out)
and the figures as JSON beside it (serve.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.client
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from report import Report, default_out  # noqa: E402

MODEL = SHARED / "models/mlperf-tiny/kws_ref_model_int8.tflite"
# Engine options every server opens the bundle with, as `edgekit serve` does: the engine's defaults.
ENGINE_OPTIONS: dict = {}
SERVERS = ["bare", "kserve", "mlserver", "edgekit-json", "edgekit-binary", "edgekit-grpc"]
PEERS = ("kserve", "mlserver")
GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"
READY_TIMEOUT_S = 120.0
DATATYPES = {np.dtype(np.int8): "INT8", np.dtype(np.uint8): "UINT8", np.dtype(np.float32): "FP32"}
DTYPES = {v: k for k, v in DATATYPES.items()}


# --- the requests, built once --------------------------------------------------------------

@dataclasses.dataclass
class HttpRequest:
    path: str
    headers: dict
    body: bytes

    def wire(self) -> bytes:
        """The whole HTTP/1.1 request as the load client sends it on a keep-alive connection."""
        head = [f"POST {self.path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(self.body)}"]
        head += [f"{k}: {v}" for k, v in self.headers.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + self.body


def json_request(model: str, feeds: dict) -> HttpRequest:
    body = {"id": "1", "inputs": [{"name": k, "datatype": DATATYPES[v.dtype], "shape": list(v.shape),
                                   "data": v.ravel().tolist()} for k, v in feeds.items()]}
    return HttpRequest(f"/v2/models/{model}/infer", {"Content-Type": "application/json"}, json.dumps(body).encode())


def binary_request(model: str, feeds: dict, outputs: list) -> HttpRequest:
    """The binary tensor data extension: a JSON header, then each input's raw bytes; outputs
    asked for in binary form too."""
    header = {"id": "1",
              "inputs": [{"name": k, "datatype": DATATYPES[v.dtype], "shape": list(v.shape),
                          "parameters": {"binary_data_size": v.nbytes}} for k, v in feeds.items()],
              "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in outputs]}
    head = json.dumps(header).encode()
    return HttpRequest(f"/v2/models/{model}/infer",
                       {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": len(head)},
                       head + b"".join(np.ascontiguousarray(v).tobytes() for v in feeds.values()))


def grpc_request(model: str, feeds: dict) -> bytes:
    from edgekit.serve.oip_proto import grpc_predict_v2_pb2 as pb

    req = pb.ModelInferRequest(model_name=model, id="1")
    for k, v in feeds.items():
        req.inputs.add(name=k, datatype=DATATYPES[v.dtype], shape=list(v.shape))
        req.raw_input_contents.append(np.ascontiguousarray(v).tobytes())
    return req.SerializeToString()


# --- answers checked against the in-process call ---------------------------------------------

def decode_http_outputs(headers: dict, body: bytes) -> dict:
    """{name: array} from an OIP JSON response, or from a binary-extension one."""
    header_len = headers.get("inference-header-content-length")
    head = json.loads(body[:int(header_len)] if header_len else body)
    raw = memoryview(body)[int(header_len):] if header_len else None
    outputs, at = {}, 0
    for t in head["outputs"]:
        dtype, shape = DTYPES[t["datatype"]], t["shape"]
        size = (t.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            outputs[t["name"]] = np.frombuffer(raw[at:at + size], dtype).reshape(shape)
            at += size
        else:
            outputs[t["name"]] = np.asarray(t["data"], dtype).reshape(shape)
    return outputs


def check_http(port: int, req: HttpRequest, expected: dict) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", req.path, req.body, {k: str(v) for k, v in req.headers.items()})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {body[:300]!r}")
        got = decode_http_outputs({k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        conn.close()
    compare(got, expected)


def check_grpc(port: int, request: bytes, expected: dict) -> None:
    import grpc

    from edgekit.serve.oip_proto import grpc_predict_v2_pb2 as pb

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        raw = channel.unary_unary(GRPC_INFER)(request, timeout=30)
    resp = pb.ModelInferResponse.FromString(raw)
    got = {}
    for i, t in enumerate(resp.outputs):
        dtype = DTYPES[t.datatype]
        if len(resp.raw_output_contents) > i:
            got[t.name] = np.frombuffer(resp.raw_output_contents[i], dtype).reshape(list(t.shape))
        else:
            got[t.name] = np.asarray(t.contents.int_contents or t.contents.fp32_contents, dtype).reshape(list(t.shape))
    compare(got, expected)


def compare(got: dict, expected: dict) -> None:
    if sorted(got) != sorted(expected):
        raise RuntimeError(f"outputs {sorted(got)}, expected {sorted(expected)}")
    for name, want in expected.items():
        if got[name].shape != want.shape or not np.array_equal(got[name], want):
            raise RuntimeError(f"output {name} differs from the in-process call: {got[name]!r} != {want!r}")


# --- processes -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_tree(pid: int) -> list:
    """pid and every live descendant (from /proc's parent links)."""
    children: dict = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks after boot), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[19])


def tree_rss_bytes(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def tree_cpu_s(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])   # utime, stime
    return total / ticks


def http_status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


class ServerProcess:
    """A server and its output in a log. It stays in this process's session: a session of its
    own would be a scheduler autogroup of its own (Linux autogroup), which on a busy machine
    delays every wake-up between its threads (gRPC's p50 went from 0.6 to 5 ms here)."""

    def __init__(self, argv: list, env: dict, cwd: Path, log: Path, cpu: int | None):
        self.log = log
        self.spawned = time.perf_counter()
        with log.open("wb") as f:
            self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
        if cpu is not None:
            os.sched_setaffinity(self.proc.pid, {cpu})   # children it starts later inherit this

    def wait_ready(self, port: int) -> float:
        deadline = self.spawned + READY_TIMEOUT_S
        while time.perf_counter() < deadline:
            if http_status(port, "/v2/health/ready") == 200:
                return time.perf_counter() - self.spawned
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with status {self.proc.returncode} before ready:\n{self.log_tail()}")
            time.sleep(0.005)
        raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL for whatever of its process tree is left after 15 s."""
        # Its children, noted before they lose their parent, with their start times so that a
        # pid the system has since given to another process is left alone.
        children = [(pid, start_ticks(pid)) for pid in process_tree(self.proc.pid)[1:]]
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid, started in children:
            if started is not None and start_ticks(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


# --- peer venvs ------------------------------------------------------------------------------

def peer_python(name: str, install: bool, peers: Path = BENCH / "peers", venvs: Path = BENCH) -> tuple:
    """(the peer venv's python, None) or (None, why it is unusable). Builds the venv
    ``venvs/.peers-venv-<name>`` from ``peers/<name>.txt`` when it is missing or was built from
    another version of that file (unless not ``install``)."""
    requirements = peers / f"{name}.txt"
    venv = venvs / f".peers-venv-{name}"
    python = venv / "bin" / "python"
    stamp = venv / ".edgekit-requirements-sha256"
    want = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return python, None
    if not install:
        return None, f"its venv {venv} is not built (run without --no-peer-install to build it)"
    print(f"building {venv} from {requirements} (pip; needs the network)", flush=True)
    # The venv gets no pip of its own: this interpreter's pip installs into it (pip --python).
    steps = [[sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)],
             [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
              "--disable-pip-version-check", "-r", str(requirements)]]
    for step in steps:
        try:
            r = subprocess.run(step, capture_output=True, text=True, timeout=1800)
        except subprocess.TimeoutExpired:
            return None, f"building its venv timed out: {shlex.join(step)}"
        if r.returncode != 0:
            last = (r.stderr.strip() or r.stdout.strip() or "no output").splitlines()[-1]
            return None, f"could not build its venv ({shlex.join(step[:4])} ... failed: {last})"
    stamp.write_text(want + "\n")
    return python, None


# --- the servers -----------------------------------------------------------------------------

@dataclasses.dataclass
class Server:
    name: str
    label: str
    protocol: str        # json | binary | grpc


SERVER_INFO = {
    "bare": Server("bare", "Starlette + Uvicorn, bare endpoint (JSON)", "json"),
    "kserve": Server("kserve", "KServe ModelServer 0.21 (JSON)", "json"),
    "mlserver": Server("mlserver", "MLServer 1.7.1 (JSON)", "json"),
    "edgekit-json": Server("edgekit-json", "edgekit serve (JSON)", "json"),
    "edgekit-binary": Server("edgekit-binary", "edgekit serve (binary tensor extension)", "binary"),
    "edgekit-grpc": Server("edgekit-grpc", "edgekit serve (gRPC)", "grpc"),
}


def server_command(server: Server, bundle: Path, model: str, http_port: int, grpc_port: int, work: Path,
                   install: bool) -> tuple:
    """(argv, env, cwd) that starts ``server``; raises Skip when it cannot run here."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    options = json.dumps(ENGINE_OPTIONS)
    if server.name == "bare":
        return ([sys.executable, str(BENCH / "serve_bare.py"), "--bundle", str(bundle), "--port", str(http_port),
                 "--name", model, "--engine-options", options], env, REPO)
    if server.name in PEERS:
        python, why = peer_python(server.name, install)
        if python is None:
            raise Skip(why)
    if server.name == "kserve":
        # gRPC off and no per-request log lines: KServe at its leanest (toolchain notes).
        return ([str(python), str(BENCH / "peers" / "kserve_server.py"), "--bundle", str(bundle),
                 "--model_name", model, "--http_port", str(http_port), "--enable_grpc", "false",
                 "--enable_latency_logging", "false", "--engine-options", options], env, work)
    if server.name == "mlserver":
        repo = work / "mlserver"
        (repo / model).mkdir(parents=True, exist_ok=True)
        # parallel_workers=0: the inference subprocess crashes under uvloop 0.23 (toolchain notes);
        # no access log (debug off), no metrics server, gRPC on a port of its own.
        (repo / "settings.json").write_text(json.dumps(
            {"host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port, "parallel_workers": 0,
             "debug": False, "metrics_endpoint": None}))
        (repo / model / "model-settings.json").write_text(json.dumps(
            {"name": model, "implementation": "mlserver_model.BundleModel",
             "parameters": {"uri": str(bundle), "extra": {"engine_options": ENGINE_OPTIONS}}}))
        env["PYTHONPATH"] = f"{BENCH / 'peers'}{os.pathsep}{REPO}"
        return ([str(python.parent / "mlserver"), "start", str(repo)], env, repo)
    edgekit = Path(sys.executable).parent / "edgekit"
    if not edgekit.exists():
        raise Skip(f"{edgekit} is not installed (pip install -e '.[serve]')")
    help_text = subprocess.run([str(edgekit), "serve", "--help"], capture_output=True, text=True, cwd=REPO)
    if help_text.returncode != 0:
        raise Skip(f"`edgekit serve` is not available: {help_text.stderr.strip().splitlines()[-1:]}")
    argv = [str(edgekit), "serve", str(bundle.parent), "--host", "127.0.0.1", "--port", str(http_port)]
    if "--state-dir" in help_text.stdout:
        argv += ["--state-dir", str(work / "edgekit-state")]
    if server.protocol == "grpc":
        argv += ["--grpc-port", str(grpc_port)]
    return argv, env, REPO


class Skip(Exception):
    """A server that cannot run on this machine; the message says why."""


def load(port: int, request_file: Path, clients: int, seconds: float, warmup: float, cpu: int | None,
         grpc: bool) -> dict:
    argv = [sys.executable, str(BENCH / "serve_load.py"), "--port", str(port), "--request", str(request_file),
            "--connections", str(clients), "--seconds", str(seconds), "--warmup", str(warmup)]
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    if grpc:
        argv += ["--grpc-method", GRPC_INFER]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + warmup + 120)
    out = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    if r.returncode != 0 or "error" in out:
        raise RuntimeError(f"load client failed with {clients} clients: {out.get('error') or r.stderr[-500:]}")
    return out


def measure_once(server: Server, bundle: Path, model: str, requests: dict, expected: dict, args, cpus: tuple,
                 work: Path) -> dict:
    """One round: start the server, check one answer, load it at each client count, stop it."""
    client_cpu, server_cpu = cpus
    http_port, grpc_port = free_port(), free_port()
    argv, env, cwd = server_command(server, bundle, model, http_port, grpc_port, work, not args.no_peer_install)
    proc = ServerProcess(argv, env, cwd, work / f"{server.name}.log", server_cpu)
    try:
        ready = proc.wait_ready(http_port)
        grpc = server.protocol == "grpc"
        port = grpc_port if grpc else http_port
        if grpc:
            check_grpc(port, requests["grpc"], expected)
        else:
            check_http(port, requests[server.protocol], expected)
        request_file = work / f"request-{server.protocol}.bin"
        request_file.write_bytes(requests["grpc"] if grpc else requests[server.protocol].wire())
        phases = {}
        for n in args.clients:
            cpu0 = tree_cpu_s(proc.proc.pid)
            phase = load(port, request_file, n, args.seconds, args.warmup, client_cpu, grpc)
            if not phase["requests"]:
                print(f"  warning: no request to {server.name} finished inside the {args.seconds:g} s window "
                      f"with {n} clients", flush=True)
            # Over the whole phase: warmup and window, every request the client completed.
            phase["server_cpu_s"] = tree_cpu_s(proc.proc.pid) - cpu0
            phases[n] = phase
            if proc.proc.poll() is not None:
                raise RuntimeError(f"exited with status {proc.proc.returncode} under load:\n{proc.log_tail()}")
        rss = tree_rss_bytes(proc.proc.pid)
    finally:
        proc.stop()
    top = phases[max(args.clients)]
    return {"ready_after_s": ready, "rss_bytes": rss, "phases": {str(n): p for n, p in phases.items()},
            "server_cpu_per_request_s": top["server_cpu_s"] / max(1, top["requests_total"]),
            "command": shlex.join(argv)}


def combine(server: Server, rounds: list) -> dict:
    """A server's figures over its rounds: the median of each, statuses summed."""
    def med(get):
        return statistics.median(get(r) for r in rounds)

    phases = {}
    for n in rounds[0]["phases"]:
        each = [r["phases"][n] for r in rounds]
        statuses: dict = {}
        for p in each:
            for k, c in p["statuses"].items():
                statuses[k] = statuses.get(k, 0) + c
        # A window in which no request finished has no latency: it counts as 0 req/s only.
        timed = [p for p in each if p["requests"]]
        phases[n] = {"ok_per_s": statistics.median(ok_per_s(p) for p in each),
                     "p50_s": statistics.median(p["p50_s"] for p in timed) if timed else None,
                     "p99_s": statistics.median(p["p99_s"] for p in timed) if timed else None, "statuses": statuses}
    return {"server": server.name, "label": server.label, "protocol": server.protocol,
            "ready_after_s": med(lambda r: r["ready_after_s"]), "rss_bytes": med(lambda r: r["rss_bytes"]),
            "server_cpu_per_request_s": med(lambda r: r["server_cpu_per_request_s"]), "phases": phases,
            "non_2xx": sum(c for p in phases.values() for k, c in p["statuses"].items() if k not in ("200", "OK")),
            "command": rounds[0]["command"], "rounds": rounds}


# --- in-process call and report --------------------------------------------------------------

def in_process_p50(bundle: Path, feeds: dict, runs: int, cpu: int | None) -> tuple:
    """(p50 seconds of Model.run, its outputs), timed on the server's CPU."""
    import edgekit.runtime as rt

    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        with rt.open(bundle, engine_options=ENGINE_OPTIONS) as model:
            for _ in range(200):
                outputs = model.run(feeds)
            lat = []
            clock = time.perf_counter
            for _ in range(runs):
                t = clock()
                model.run(feeds)
                lat.append(clock() - t)
    finally:
        os.sched_setaffinity(0, before)
    return statistics.median(lat), outputs


def cpus_for_client_and_server() -> tuple:
    usable = sorted(os.sched_getaffinity(0))
    return (usable[0], usable[1]) if len(usable) >= 2 else (None, None)


def ok_per_s(phase: dict) -> float:
    """Answered requests per second: refusals (429, 503, ...) do not count as throughput."""
    return (phase["statuses"].get("200", 0) + phase["statuses"].get("OK", 0)) / phase["seconds"]


def fmt_ms(s) -> str:
    return "-" if s is None else f"{s * 1e3:.2f} ms"


def goals(rows: list, in_process_s: float, top: int) -> list:
    """(goal, figure, met?) for each of issue 11's goals that the rows measured."""
    by = {r["server"]: r for r in rows if "phases" in r}
    edgekit = [r for k, r in by.items() if k.startswith("edgekit")]
    peers = [by[p] for p in PEERS if p in by]
    out = []
    if "edgekit-json" in by:
        p50 = by["edgekit-json"]["phases"].get("1", {}).get("p50_s")
        if p50 is not None:
            ov = p50 - in_process_s
            out.append(("p50 overhead (JSON) at most 0.4 ms", fmt_ms(ov), ov <= 0.4e-3))
    if edgekit and peers:
        best_peer = max(p["phases"][str(top)]["ok_per_s"] for p in peers)
        best = max(r["phases"][str(top)]["ok_per_s"] for r in edgekit)
        ratio = best / best_peer if best_peer else float("inf")
        out.append((f"req/s @{top} at least 3x the best of KServe and MLServer", f"{ratio:.1f}x",
                    best >= 3 * best_peer))
        rss = max(r["rss_bytes"] for r in edgekit)
        peer_rss = min(p["rss_bytes"] for p in peers)
        out.append(("RSS at most half of theirs", f"{rss / 2**20:.0f} MB vs {peer_rss / 2**20:.0f} MB",
                    rss <= peer_rss / 2))
    if edgekit:
        ready = max(r["ready_after_s"] for r in edgekit)
        out.append(("ready in under 1 s", f"{ready:.2f} s", ready < 1.0))
    if "bare" in by:
        bare_rps = by["bare"]["phases"][str(top)]["ok_per_s"]
        for k in ("edgekit-binary", "edgekit-grpc"):
            if k in by:
                rps = by[k]["phases"][str(top)]["ok_per_s"]
                out.append((f"{k} req/s @{top} above the bare JSON endpoint", f"{rps:,.0f} vs {bare_rps:,.0f}",
                            rps > bare_rps))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", default=",".join(SERVERS), help="comma-separated: " + ", ".join(SERVERS))
    ap.add_argument("--seconds", type=float, default=3.0, help="measured window per client count")
    ap.add_argument("--rounds", type=int, default=3,
                    help="times each server is started and measured, interleaved; figures are medians")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each window")
    ap.add_argument("--clients", default="1,8,64", help="comma-separated concurrent client counts")
    ap.add_argument("--runs", type=int, default=5000, help="timed in-process calls")
    ap.add_argument("--no-peer-install", action="store_true",
                    help="skip a peer whose venv is not built instead of building it")
    ap.add_argument("--out", default=str(default_out(__file__)), help="Markdown results file (JSON beside it)")
    args = ap.parse_args()
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in servers if s not in SERVER_INFO]
    if unknown or not servers:
        ap.error(f"unknown server {', '.join(unknown) or '(none given)'}; known: {', '.join(SERVERS)}")
    try:
        args.clients = sorted({int(c) for c in args.clients.split(",") if c.strip()})
    except ValueError:
        ap.error(f"--clients takes comma-separated integers, not {args.clients!r}")
    if (not args.clients or args.clients[0] < 1 or args.seconds <= 0 or args.warmup < 0 or args.runs < 1
            or args.rounds < 1):
        ap.error("--clients must be positive integers, --seconds, --runs and --rounds positive, --warmup not negative")
    if not MODEL.is_file():
        print(f"error: the benchmark model {MODEL} is absent (../shared/models)", file=sys.stderr)
        sys.exit(2)
    rep = Report(args.out)
    json_out = Path(args.out).with_suffix(".json")

    from rich.console import Console
    from rich.table import Table

    from edgekit.bundle import compile_bundle
    from edgekit.frontends import load_model

    command = shlex.join([".venv/bin/python", "bench/serve.py", *sys.argv[1:]])
    client_cpu, server_cpu = cpus_for_client_and_server()
    console = Console()
    if not console.is_terminal:   # a log file (bench/run_all.py): room for the whole table
        console = Console(width=170)
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-serve-") as tmp:
        work = Path(tmp)
        (work / "models").mkdir()
        built = compile_bundle(load_model(MODEL), "x86_64", work / "models" / "kws.ekb", backend="onnxruntime")
        bundle, model = built.bundle.path, built.bundle.manifest["model"]["name"]
        golden, _ = built.bundle.golden()
        feeds = {s["name"]: np.ascontiguousarray(a[0]) for s, a in zip(built.bundle.manifest["inputs"], golden)}
        in_process, expected = [], None
        requests = {}
        rounds: dict = {name: [] for name in servers}
        given_up: dict = {}   # server -> its row when skipped or failed: not tried again
        for round_no in range(1, args.rounds + 1):
            # The in-process call and every server once per round, so that the drift of a
            # shared machine spreads over all of them.
            t, expected = in_process_p50(bundle, feeds, args.runs, server_cpu)
            in_process.append(t)
            if not requests:
                requests = {"json": json_request(model, feeds), "binary": binary_request(model, feeds, list(expected))}
                if any(SERVER_INFO[s].protocol == "grpc" for s in servers):
                    requests["grpc"] = grpc_request(model, feeds)
            for name in servers:
                if name in given_up:
                    continue
                server = SERVER_INFO[name]
                console.print(f"round {round_no}/{args.rounds}: [bold]{server.label}[/bold]", highlight=False)
                try:
                    rounds[name].append(measure_once(server, bundle, model, requests, expected, args,
                                                     (client_cpu, server_cpu), work))
                except Skip as e:
                    console.print(f"  skipped {name}: {e}", style="yellow", highlight=False)
                    given_up[name] = {"server": name, "label": server.label, "skipped": str(e)}
                except (RuntimeError, OSError, ValueError) as e:
                    console.print(f"  {name} FAILED: {e}", style="red", highlight=False)
                    given_up[name] = {"server": name, "label": server.label, "failed": str(e)}
        t, _ = in_process_p50(bundle, feeds, args.runs, server_cpu)
        in_process.append(t)
        in_process_s = statistics.median(in_process)
        rows = [given_up.get(name) or combine(SERVER_INFO[name], rounds[name]) for name in servers]

    lo, hi = min(args.clients), max(args.clients)
    cols = ["server", f"p50 overhead ({lo} client{'s' if lo > 1 else ''})", f"p50 / p99 ({lo})",
            *[f"req/s @{n}" for n in args.clients], f"server CPU / request @{hi}", "RSS", "ready after", "non-2xx"]
    table = Table(title=f"edgekit serve and its peers, KWS int8 through onnxruntime (in-process call "
                        f"{in_process_s * 1e6:.0f} us)")
    for c in cols:
        table.add_column(c, justify="left" if c == "server" else "right")
    md_rows = []
    for r in rows:
        if "phases" in r:
            first = r["phases"][str(lo)]
            cells = [r["label"], fmt_ms(None if first["p50_s"] is None else first["p50_s"] - in_process_s),
                     f"{fmt_ms(first['p50_s'])} / {fmt_ms(first['p99_s'])}",
                     *[f"{r['phases'][str(n)]['ok_per_s']:,.0f}" for n in args.clients],
                     fmt_ms(r["server_cpu_per_request_s"]), f"{r['rss_bytes'] / 2**20:.0f} MB",
                     f"{r['ready_after_s']:.2f} s", str(r["non_2xx"])]
        else:
            why = ("skipped: " + r["skipped"]) if "skipped" in r else ("FAILED: " + r["failed"].splitlines()[0])
            cells = [r["label"], why, *["-"] * (len(cols) - 2)]
        table.add_row(*cells)
        md_rows.append(cells)
    console.print(table)

    rep.line(f"Command: `{command}` ({platform.machine()}, Python {platform.python_version()}, "
             f"{os.cpu_count()} CPUs; load client on CPU {client_cpu}, server on CPU {server_cpu}; "
             f"{args.seconds:g} s per client count after {args.warmup:g} s of warmup; medians over "
             f"{args.rounds} interleaved round{'s' if args.rounds > 1 else ''})")
    rep.line()
    rep.line(f"Model: {MODEL.name} compiled for x86_64 (onnxruntime engine, engine options "
             f"{ENGINE_OPTIONS or 'default'}); every server runs it through edgekit.runtime. "
             f"In-process call (Model.run): p50 "
             f"{in_process_s * 1e6:.0f} us (median of {len(in_process)} timings, one per round and one at the end: "
             f"{', '.join(f'{t * 1e6:.0f}' for t in in_process)} us).")
    rep.line()
    rep.line("| " + " | ".join(cols) + " |")
    rep.line("| --- |" + " ---: |" * (len(cols) - 1))
    for cells in md_rows:
        rep.line("| " + " | ".join(cells) + " |")
    rep.line()
    met = goals(rows, in_process_s, hi)
    if met:
        rep.line("Issue 11's goals:")
        rep.line()
        for goal, figure, ok in met:
            rep.line(f"- {goal}: {figure} ({'met' if ok else 'NOT met'})")
        rep.line()
    rep.line("p50 overhead: p50 latency seen by the client minus the in-process call's p50. RSS: VmRSS of the "
             "server and its children after the load. Ready after: spawn to the first 200 on /v2/health/ready. "
             "Server CPU / request: the server's CPU time during the largest client count (warmup included) "
             "over its requests. Peers at their leanest: per-request logging off, KServe's gRPC server off, "
             "MLServer with parallel_workers=0 and no metrics server. The server commands are in the JSON file.")
    rep.save()
    json_out.write_text(json.dumps({"command": command, "machine": platform.machine(),
                                    "python": platform.python_version(), "cpus": os.cpu_count(),
                                    "client_cpu": client_cpu, "server_cpu": server_cpu, "model": MODEL.name,
                                    "engine": "onnxruntime", "engine_options": ENGINE_OPTIONS,
                                    "in_process_p50_s": in_process_s, "in_process_p50_each_s": in_process,
                                    "seconds": args.seconds, "warmup_s": args.warmup, "rounds": args.rounds,
                                    "clients": args.clients,
                                    "servers": rows,
                                    "goals": [{"goal": g, "figure": f, "met": ok} for g, f, ok in met]},
                                   indent=1) + "\n")
    print(f"wrote {json_out}", flush=True)
    sys.exit(1 if any("failed" in r for r in rows) else 0)


if __name__ == "__main__":
    main()
