"""The MQTT transport's connection options against a real Mosquitto: TLS with a CA the
test makes (server and client certificates), username/password, and the refusals: a
wrong password or an unknown CA is a link that stays down, never an ack."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess

import pytest

from edgekit.errors import BadInputError
from edgekit.sync.transports import LinkDownError
from edgekit.sync.transports.mqtt import MqttTls, MqttTransport
from edgekit.sync.wire import decode_ack, encode_batch
from tests.sync.broker import MosquittoBroker
from tests.sync.hub_standin import MqttHubStandIn

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def _cert(subject: str, key, issuer_name, issuer_key, *, ca: bool, ip: str | None = None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(folder, name: str = "ca") -> dict:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test {name}")])
    ca = _cert(f"test {name}", ca_key, ca_name, ca_key, ca=True)
    files = {}
    for role, ip in (("server", "127.0.0.1"), ("client", None)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(role, key, ca_name, ca_key, ca=False, ip=ip)
        files[f"{role}_cert"] = folder / f"{role}.pem"
        files[f"{role}_key"] = folder / f"{role}.key"
        files[f"{role}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{role}_key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    files["ca"] = folder / "ca.pem"
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for f in folder.iterdir():
        f.chmod(0o644)      # mosquitto started as root reads them as its own user
    folder.chmod(0o755)
    return files


@pytest.fixture
def secure_broker(tmp_path):
    pki = make_pki(tmp_path / "pki")
    passwords = tmp_path / "pki" / "passwords"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "dev-1", "right horse"], check=True,
                   capture_output=True)
    passwords.chmod(0o644)
    broker = MosquittoBroker(tmp_path / "broker", allow_anonymous=False, extra_config=(
        f"cafile {pki['ca']}\ncertfile {pki['server_cert']}\nkeyfile {pki['server_key']}\n"
        f"require_certificate true\npassword_file {passwords}\n"))
    broker.start()
    broker.pki = pki
    yield broker
    broker.stop()


@pytest.mark.parametrize("protocol", [5, 311])
def test_tls_with_a_client_certificate_and_a_password(secure_broker, sync_queue, protocol):
    pki = secure_broker.pki
    hub = MqttHubStandIn(secure_broker.host, secure_broker.port, tls=MqttTls(str(pki["ca"]), str(pki["client_cert"]),
                                                                             str(pki["client_key"])),
                         username="dev-1", password="right horse")
    ids = [sync_queue.enqueue("results", b'{"n": %d}' % i) for i in range(20)]
    transport = MqttTransport(secure_broker.host, secure_broker.port, "dev-1", protocol=protocol,
                              tls=MqttTls(str(pki["ca"]), str(pki["client_cert"]), str(pki["client_key"])),
                              username="dev-1", password="right horse")
    try:
        assert transport.wait_connected(10)
        ack = decode_ack(transport.send(encode_batch("dev-1", 1, sync_queue.peek_batch(1 << 20)), timeout_s=10))
    finally:
        transport.close()
        hub.close()
    assert sorted(ack.record_ids) == sorted(ids)


@pytest.mark.parametrize("how", ["wrong password", "unknown CA", "no TLS"])
def test_a_refused_connection_is_a_link_that_stays_down(secure_broker, tmp_path, how):
    pki = secure_broker.pki
    tls = MqttTls(str(pki["ca"]), str(pki["client_cert"]), str(pki["client_key"]))
    password = "right horse"
    if how == "wrong password":
        password = "wrong"
    elif how == "unknown CA":
        other = make_pki(tmp_path / "other", "other ca")
        tls = MqttTls(str(other["ca"]), str(pki["client_cert"]), str(pki["client_key"]))
    elif how == "no TLS":
        tls = None
    transport = MqttTransport(secure_broker.host, secure_broker.port, "dev-1", tls=tls, username="dev-1",
                              password=password, reconnect_delay_s=(1, 1))
    try:
        assert not transport.wait_connected(1.5)
        with pytest.raises(LinkDownError, match="not reachable"):
            transport.send(encode_batch("dev-1", 1, []), timeout_s=0.5)
    finally:
        transport.close()


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(BadInputError, match="protocol"):
        MqttTransport("127.0.0.1", 1, "dev-1", protocol=4)
    with pytest.raises(BadInputError, match="both"):
        MqttTransport("127.0.0.1", 1, "dev-1", tls=MqttTls(cert_file="/x.pem"))
    with pytest.raises(BadInputError, match="TLS files"):
        MqttTransport("127.0.0.1", 1, "dev-1", tls=MqttTls(ca_file=str(tmp_path / "missing.pem")))
    with pytest.raises(BadInputError, match="group"):
        MqttTransport("127.0.0.1", 1, "dev-1", groups=("a/#",))
    with pytest.raises(BadInputError, match="device id"):
        MqttTransport("127.0.0.1", 1, "+")


def test_send_returns_the_ack_of_its_own_batch_skipping_stale_and_foreign_ones(mosquitto_broker, sync_queue):
    import threading

    from edgekit.sync.wire import encode_ack

    ids = [sync_queue.enqueue("results", b"r%d" % i) for i in range(3)]
    quiet = MqttHubStandIn(mosquitto_broker.host, mosquitto_broker.port, ack_batches=False, client_id="quiet")
    transport = MqttTransport(mosquitto_broker.host, mosquitto_broker.port, "dev-9", reconnect_delay_s=(0.1, 1))

    def answer():   # once the batch is there: a stale ack, garbage, an ack for another device, then the right one
        assert quiet.arrivals.wait_for(3, timeout_s=10)
        batch = quiet.arrivals.batches[-1]
        for payload in (encode_ack("dev-9", batch.seq - 1, ids[:1]), b"not an ack",
                        encode_ack("dev-8", batch.seq, ids), encode_ack("dev-9", batch.seq, ids)):
            quiet.send_down("edgekit/v1/dev-9/ack", payload)

    helper = threading.Thread(target=answer)
    try:
        assert transport.wait_connected(10)
        helper.start()
        ack = decode_ack(transport.send(encode_batch("dev-9", 41, sync_queue.peek_batch(1 << 20)), timeout_s=10))
    finally:
        helper.join(10)
        transport.close()
        quiet.close()
    assert (ack.device_id, ack.seq, ack.record_ids) == ("dev-9", 41, ids)
