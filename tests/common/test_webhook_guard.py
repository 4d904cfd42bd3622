"""The SSRF guard and the signing recipe of event webhooks, without a worker."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from libs.common.models import AttemptOutcome
from libs.events import signing, ssrf
from services.worker.webhooks import sender

REFUSED = [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.0.0.5", "private"), ("172.16.3.4", "private"), ("192.168.1.1", "private"),
    ("fd00::1", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("0.0.0.0", "unspecified"),
    ("::", "unspecified"), ("240.0.0.1", "reserved"), ("100.64.0.1", "not a globally routable"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.1.1.1", "private"),
    ("2002:7f00:1::", "loopback"), ("64:ff9b::a9fe:a9fe", "link-local"),
    ("192.0.2.10", "private"), ("198.18.0.1", "private"),
]  # fmt: skip
ALLOWED = ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "1.1.1.1"]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_addresses_that_are_not_globally_routable_are_refused(address: str, why: str) -> None:
    reason = ssrf.why_refused(address)
    assert reason is not None and why in reason, (address, reason)


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert ssrf.why_refused(address) is None


def _resolver(*addresses: str) -> ssrf.Resolver:
    return lambda _host, _port: list(addresses)


def test_a_name_is_refused_if_any_of_its_addresses_is() -> None:
    url = "https://hooks.example.com/in"
    target = ssrf.resolve(url, allow_private=False, resolver=_resolver("93.184.215.14"))
    assert (target.address, target.host, target.port, target.target) == (
        "93.184.215.14", "hooks.example.com", 443, "/in")  # fmt: skip
    with pytest.raises(ssrf.UrlRefused, match=r"resolves to 10\.0\.0\.7: 10\.0\.0\.7 is a private"):
        ssrf.resolve(url, allow_private=False, resolver=_resolver("93.184.215.14", "10.0.0.7"))
    # Allowed by the setting (development, tests): resolved, not judged.
    local = ssrf.resolve(url, allow_private=True, resolver=_resolver("10.0.0.7"))
    assert local.address == "10.0.0.7"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "must start with https:// or http://"),
        ("https://user:pw@example.com/", "must not contain credentials"),
        ("https://example.com/#x", "fragment"),
        ("https:///path", "no host"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https://exa mple.com/", "spaces or control characters"),
        ("https://example.com/" + "a" * 2048, "longer than 2048"),
        ("", "non-empty string"),
    ],
)
def test_malformed_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ssrf.UrlRefused, match=message):
        ssrf.check_registration(url, allow_private=True)


def test_registration_resolves_the_name_in_production() -> None:
    with pytest.raises(ssrf.UrlRefused, match="is a loopback address"):
        ssrf.check_registration("http://localhost:8080/", allow_private=False)
    with pytest.raises(ssrf.UrlRefused, match="does not resolve"):
        ssrf.check_registration("https://no-such-host.invalid/", allow_private=False)
    url = "https://hooks.example.com/x"
    assert ssrf.check_registration(url, allow_private=False, resolver=_resolver("8.8.8.8")) == url


# --- the sender connects to the address it checked, keeping the name for Host, SNI and TLS ---


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _certificate(tmp: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (the CA the test trusts is the cert itself)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    cert, key = _certificate(tmp_path, "receiver.test")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.seen = []
    yield server.server_address[1], cert
    server.shutdown()
    server.server_close()


def test_https_goes_to_the_checked_address_and_verifies_the_name(
    tls_server: tuple[int, Path],
) -> None:
    port, ca = tls_server
    asked: list[str] = []

    def resolver(host: str, _port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    body = b'{"id":"evt_1"}'
    headers = signing.headers([signing.generate_secret()], "evt_1", 1, body)
    answer = sender.post(f"https://receiver.test:{port}/in", body, headers, timeout_s=5,
                         allow_private=True, resolver=resolver, ca_certs=str(ca))  # fmt: skip
    assert answer.outcome is AttemptOutcome.SUCCEEDED and answer.http_status == 204, answer
    assert asked == ["receiver.test"]  # resolved once; the connection went to that answer
    assert _Recorder.seen[-1]["host"] == f"receiver.test:{port}"
    # A name the certificate does not cover fails verification (the pinned IP does not
    # weaken TLS: the name is still what is checked).
    wrong = sender.post(f"https://other.test:{port}/in", body, headers, timeout_s=5,
                        allow_private=True, resolver=resolver, ca_certs=str(ca))  # fmt: skip
    assert wrong.outcome is AttemptOutcome.CONNECTION_ERROR
    assert wrong.error == (f"other.test:{port} (127.0.0.1): hostname 'other.test' doesn't "
                           "match 'receiver.test'")  # fmt: skip


def test_a_closed_port_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    answer = sender.post(f"http://127.0.0.1:{port}/", b"{}", {}, timeout_s=2, allow_private=True)
    assert answer.outcome is AttemptOutcome.CONNECTION_ERROR
    assert answer.error is not None and answer.error.startswith(f"127.0.0.1:{port} (127.0.0.1):")


def test_the_signature_matches_the_standard_webhooks_test_vector() -> None:
    """The example in the Standard Webhooks specification (and Svix's documentation)."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    signature = signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                             b'{"test": 2432232314}')  # fmt: skip
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_replayed_old_delivery_is_refused_by_the_recipe() -> None:
    secret = signing.generate_secret()
    headers = signing.headers([secret], "evt_1", 1_000_000, b"{}")
    signing.verify(secret, headers, b"{}", now=1_000_000 + signing.TOLERANCE_S)
    with pytest.raises(signing.InvalidSignature, match="tolerance"):
        signing.verify(secret, headers, b"{}", now=1_000_000 + signing.TOLERANCE_S + 1)
