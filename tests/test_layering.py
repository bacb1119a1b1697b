"""The layout rules, checked over the source: a package uses another only through its
public names, and the device side never imports a model compiler.

A package is a folder with an ``__init__.py``: ``edgekit/backends/c/plan.py`` belongs to
``edgekit.backends.c``. Its modules may use each other's ``_private`` names; a module of
another package may not, whether through ``from edgekit.x import _name``, a ``_private``
module in the path, or ``alias._name`` on an imported edgekit module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEVICE_SIDE = ("edgekit.device", "edgekit.runtime", "edgekit.serve", "edgekit.sync")
# Compilers and training frameworks the device side must run without (runtimes such as
# onnxruntime or tflite_runtime are separate packages and stay allowed).
COMPILER_LIBS = ("torch", "torchvision", "tensorflow", "keras", "onnx", "tvm")
# TVM's runtime is a compiler library's runtime half: the tvm engine imports exactly these
# (with only libtvm_runtime loaded); tvm.relax and the rest of TVM stay compiler side.
# tvm.support.nvcc registers the NVRTC callback a CUDA module needs when it is loaded
# (only for CUDA bundles; it imports under TVM_USE_RUNTIME_LIB=1).
TVM_RUNTIME_IMPORTS = ("tvm", "tvm.runtime", "tvm.runtime.vm", "tvm.support.nvcc")
# edgekit's own compiler stages: a gateway that forwards packages loads none of them.
COMPILER_STAGES = ("edgekit.backends", "edgekit.quantize", "edgekit.frontends")


class Tree:
    """The modules of one source tree (the folder holding the ``edgekit`` package)."""

    def __init__(self, root: Path, top: str = "edgekit"):
        self.root = root
        self.top = top
        self.files = {self.module_name(p): p for p in sorted((root / top).rglob("*.py"))}

    def module_name(self, path: Path) -> str:
        parts = list(path.relative_to(self.root).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    def is_package(self, module: str) -> bool:
        return module in self.files and self.files[module].name == "__init__.py"

    def package_of(self, module: str) -> str:
        return module if self.is_package(module) else module.rpartition(".")[0]

    def absolute(self, node: ast.ImportFrom, importer: str) -> str:
        if not node.level:
            return node.module or ""
        anchor = importer.split(".") if self.is_package(importer) else importer.split(".")[:-1]
        anchor = anchor[:len(anchor) - (node.level - 1)]
        return ".".join(anchor + ([node.module] if node.module else []))

    def imports(self, module: str, *, lazy_attributes: bool = True):
        """(line, imported module, name or None, alias) for every import in ``module``, at any
        depth: imports inside functions count, they run too. ``lazy_attributes=False``
        leaves out those of a module ``__getattr__`` (PEP 562), which run only when code
        asks the module for that attribute: ``edgekit.load_model`` imports the frontends,
        ``import edgekit`` does not."""
        tree = ast.parse(self.files[module].read_text(), str(self.files[module]))
        if not lazy_attributes:
            tree.body = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name == "__getattr__")]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    yield node.lineno, a.name, None, a.asname
            elif isinstance(node, ast.ImportFrom):
                base = self.absolute(node, module)
                for a in node.names:
                    yield node.lineno, base, a.name, a.asname


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(tree: Tree) -> list[str]:
    """Every use of another package's private name, as 'file:line: what'."""
    found = []
    for module, path in tree.files.items():
        own = tree.package_of(module)
        where = path.relative_to(tree.root)
        aliases: dict[str, str] = {}  # local name -> edgekit module it is bound to
        for line, base, name, asname in tree.imports(module):
            if not base.startswith(tree.top):
                continue
            full = base if name is None else f"{base}.{name}"
            target = full if full in tree.files else base
            if tree.package_of(target) != own and (any(_private(p) for p in full.split(".")[1:])):
                found.append(f"{where}:{line}: imports {full}")
            if full in tree.files and (asname or name):
                aliases[asname or name] = full
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and _private(node.attr)
                    and tree.package_of(aliases[node.value.id]) != own):
                found.append(f"{where}:{node.lineno}: uses {aliases[node.value.id]}.{node.attr}")
    return found


def reachable(tree: Tree, start: list[str]) -> dict[str, str]:
    """Every edgekit module the ``start`` modules can import, directly or through others
    (imports inside functions included) -> the module that imports it first."""
    seen = {m: m for m in start}
    for m in start:  # importing a.b.c runs a and a.b first
        parts = m.split(".")
        for i in range(1, len(parts)):
            seen.setdefault(".".join(parts[:i]), m)
    todo = list(seen)
    while todo:
        module = todo.pop()
        for _, base, name, _ in tree.imports(module, lazy_attributes=False):
            for cand in (base, f"{base}.{name}" if name else None):
                # importing a.b.c runs a and a.b first
                parts = cand.split(".") if cand else []
                for i in range(1, len(parts) + 1):
                    m = ".".join(parts[:i])
                    if m in tree.files and m not in seen:
                        seen[m] = module
                        todo.append(m)
    return seen


def compiler_imports(tree: Tree, modules) -> list[str]:
    found = []
    for module in modules:
        for line, base, name, _ in tree.imports(module):
            if module == "edgekit.runtime.engines.tvm" and base in TVM_RUNTIME_IMPORTS and (
                    name is None or f"{base}.{name}" in TVM_RUNTIME_IMPORTS):
                continue
            if base.split(".")[0] in COMPILER_LIBS:
                found.append(f"{tree.files[module].relative_to(tree.root)}:{line}: imports {base}")
    return found


def device_modules(tree: Tree) -> list[str]:
    return [m for m in tree.files if any(m == d or m.startswith(d + ".") for d in DEVICE_SIDE)]


# --------------------------------------------------------------------------- the rules


def test_no_module_uses_another_packages_private_names():
    problems = private_uses(Tree(REPO))
    assert not problems, "use the package's public interface instead:\n" + "\n".join(problems)


def test_device_side_reaches_no_compiler_library():
    tree = Tree(REPO)
    start = device_modules(tree)
    assert "edgekit.device.client" in start
    closure = reachable(tree, start)
    problems = compiler_imports(tree, closure)
    assert not problems, "the device side must run without model compilers:\n" + "\n".join(
        f"{p} (reached from {closure[tree.module_name(REPO / p.split(':')[0])]})" for p in problems)


def test_device_side_imports_leave_compilers_unloaded():
    """The same rule at run time: import every device-side module in a fresh interpreter."""
    modules = device_modules(Tree(REPO))
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {COMPILER_LIBS!r}))")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def _stage_of(module: str) -> str | None:
    return next((s for s in COMPILER_STAGES if module == s or module.startswith(s + ".")), None)


def test_device_side_reaches_no_compiler_stage():
    """Statically: no import in the device side, lazy ones included, leads to the backends,
    the quantizer or the frontends (reading a package is the reader's job alone)."""
    tree = Tree(REPO)
    closure = reachable(tree, device_modules(tree))
    assert "edgekit.bundle.micro_package_reader" in closure  # the client reads package headers
    problems = sorted(f"{m} (imported by {closure[m]})" for m in closure if _stage_of(m))
    assert not problems, "the device side must not load the compiler:\n" + "\n".join(problems)


def test_importing_edgekit_device_loads_no_compiler_stage(tmp_path):
    """At run time, in a fresh interpreter: import edgekit.device and every device-side
    module, read and verify a package file, and look at sys.modules; then ask
    edgekit.bundle for pack_model, which must load the writer (so the check sees a
    compiler module when one is there)."""
    from edgekit.bundle import pack_model
    from tests.backends.c.graphs import cases

    pkg = tmp_path / "m.ekpkg"
    pkg.write_bytes(pack_model(cases()["handmade"], "cortex-m4", name="m"))
    modules = device_modules(Tree(REPO))
    code = ("import importlib, pathlib, sys\n"
            "import edgekit.device\n"
            "edgekit.device.DeviceClient, edgekit.device.QemuBoard, edgekit.device.open_link\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "from edgekit.bundle import verify_package\n"
            f"assert verify_package(pathlib.Path({str(pkg)!r}).read_bytes()).name == 'm'\n"
            f"stages = {COMPILER_STAGES + ('edgekit.bundle.micro_package_writer',)!r}\n"
            "def loaded(): return sorted({s for m in sys.modules for s in stages "
            "if m == s or m.startswith(s + '.')})\n"
            "print(loaded())\n"
            "import edgekit.bundle\n"
            "edgekit.bundle.pack_model\n"
            "print(loaded())\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    before, after = res.stdout.strip().splitlines()
    assert before == "[]"
    assert "edgekit.bundle.micro_package_writer" in after


# --------------------------------------------------------------------------- the checker itself


def _write(root: Path, files: dict[str, str]) -> Tree:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return Tree(root, "pkg")


def test_checker_finds_each_kind_of_private_use(tmp_path):
    tree = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a/__init__.py": "from pkg.a.impl import run\n",
        "pkg/a/impl.py": "def run(): pass\ndef _helper(): pass\n",
        "pkg/a/_hidden.py": "X = 1\n",
        "pkg/a/friend.py": "from pkg.a.impl import _helper\nfrom . import _hidden\n",  # same package: fine
        "pkg/b/__init__.py": "",
        "pkg/b/uses.py": ("from pkg.a.impl import _helper\n"
                          "import pkg.a._hidden\n"
                          "def f():\n"
                          "    from pkg.a import impl as m\n"
                          "    return m._helper()\n"
                          "from ..a import _hidden as h\n"
                          "from pkg.a import run\n"),      # public: fine
    })
    found = private_uses(tree)
    assert found == ["pkg/b/uses.py:1: imports pkg.a.impl._helper",
                     "pkg/b/uses.py:2: imports pkg.a._hidden",
                     "pkg/b/uses.py:6: imports pkg.a._hidden",
                     "pkg/b/uses.py:5: uses pkg.a.impl._helper"]


def test_checker_follows_lazy_imports_to_a_compiler(tmp_path):
    tree = _write(tmp_path, {
        "pkg/__init__.py": "def __getattr__(name):\n    from pkg import other\n    return other\n",
        "pkg/device/__init__.py": "",
        "pkg/device/client.py": "def send():\n    from pkg.tools import convert\n",
        "pkg/tools.py": "def convert():\n    import onnx.helper\n",
        "pkg/other.py": "import torch\n",  # reached only by asking pkg for an attribute
    })
    closure = reachable(tree, ["pkg.device.client"])
    assert set(closure) == {"pkg", "pkg.device", "pkg.device.client", "pkg.tools"}
    assert compiler_imports(tree, closure) == ["pkg/tools.py:2: imports onnx.helper"]


def test_runtime_opens_and_runs_bundles_without_any_compiler(tmp_path):
    """In a fresh interpreter: import edgekit.runtime, open a LiteRT and an onnxruntime
    bundle, run and self-test them, then look at sys.modules: no model compiler library
    and no edgekit compiler stage (frontends, IR passes, quantizer, compressor, backends,
    the bundle compiler, the reference interpreter) was loaded."""
    from edgekit.bundle import compile_bundle
    from tests.backends.c.graphs import cases

    graph = cases()["handmade"]
    bundles = [compile_bundle(graph, "x86_64", tmp_path / f"m_{be}.ekb", backend=be).bundle.path
               for be in ("litert", "onnxruntime")]
    stages = COMPILER_STAGES + ("edgekit.ir", "edgekit.compress", "edgekit.reference", "edgekit.memory",
                                "edgekit.bundle.bundle_compiler", "edgekit.bundle.bundle_backends",
                                "edgekit.bundle.micro_package_writer", "edgekit.targets")
    code = ("import sys\n"
            "import numpy as np\n"
            "import edgekit.runtime\n"
            f"for path in {[str(b) for b in bundles]!r}:\n"
            "    with edgekit.runtime.open(path) as m:\n"
            "        m.run({s.name: np.zeros(s.shape, s.dtype) for s in m.inputs})\n"
            "        assert m.self_test(), path\n"
            f"libs = {COMPILER_LIBS!r}\n"
            f"stages = {stages!r}\n"
            "print(sorted({m for m in sys.modules if m.split('.')[0] in libs}))\n"
            "print(sorted({s for m in sys.modules for s in stages if m == s or m.startswith(s + '.')}))\n"
            "print('onnxruntime' in sys.modules, 'ai_edge_litert' in sys.modules or 'tflite_runtime' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    libs, loaded, engines = res.stdout.strip().splitlines()
    assert libs == "[]" and loaded == "[]"
    assert engines == "True True"   # the check saw both engines at work
