"""`gate --url https://…` with a token, as a batch job on another host runs it: the installed
`budget-watchdog gate` process against a real HTTPS server on 127.0.0.1.

The certificates are made here with the `openssl` binary (self-signed, as a small team's
daemon would have); the job trusts the daemon's through SSL_CERT_FILE, as the README says.
Go, no-go and a refused token behave as over http://; a certificate the job does not
accept is a no-go that says why (exit 1, one line, no traceback), and the token is never
sent to it. Most tests ask a stand-in daemon (it answers what the test needs); the last
ones ask the real one, `budget-watchdog run` with server.tls_cert/tls_key, against a fake
OpenRouter.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.conftest import DaemonProcess
from tests.fake_openrouter import API_KEY, FakeOpenRouter
from tests.servers import free_port
from watchdog import control

OPENSSL = shutil.which("openssl")
SCRIPT = Path(sys.executable).parent / "budget-watchdog"
TOKEN = "gate-token-7Hq2-never-printed"

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl binary")


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def make_pair(directory: Path, name: str, *names: str) -> Pair:
    """A self-signed certificate (and its key) for `names` (IP:… or DNS:… entries)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            OPENSSL or "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-addext",
            "subjectAltName=" + ",".join(names),
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return Pair(cert, key)


@dataclass(frozen=True)
class Certificates:
    daemon: Pair  # for 127.0.0.1 and localhost: what the job trusts
    impostor: Pair  # also for 127.0.0.1, but nobody trusts it
    elsewhere: Pair  # trusted, but for another host name


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("tls")
    return Certificates(
        daemon=make_pair(directory, "daemon", "IP:127.0.0.1", "DNS:localhost"),
        impostor=make_pair(directory, "impostor", "IP:127.0.0.1", "DNS:localhost"),
        elsewhere=make_pair(directory, "elsewhere", "DNS:watchdog.other.example"),
    )


class HttpsDaemon:
    """A stand-in for the daemon's /preflight over HTTPS: the contract's answers (200 go,
    409 no-go with reasons, 401 without the token), recording every request it got."""

    def __init__(self, pair: Pair | None) -> None:
        self.go = True
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []
        daemon = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                auth = self.headers.get("Authorization")
                daemon.requests.append((parts.path, parse_qs(parts.query), auth))
                if auth != f"Bearer {TOKEN}":
                    self.answer(401, {"error": "a bearer token is required"})
                elif daemon.go:
                    cost = float(parse_qs(parts.query)["cost"][0])
                    body = {"go": True, "cost": cost, "headroom_usd": 10.0, "reasons": []}
                    self.answer(200, body | {"reserved_usd": 0.0, "runway_days": 12.5})
                else:
                    reasons = ["$20.40 spent today, 102% of the $20.00 daily limit"]
                    self.answer(409, {"go": False, "reasons": reasons})

            def answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if pair is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(pair.cert, pair.key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.port = self.server.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator[type[HttpsDaemon]]:
    started: list[HttpsDaemon] = []

    class Started(HttpsDaemon):
        def __init__(self, pair: Pair | None) -> None:
            super().__init__(pair)
            started.append(self)

    yield Started
    for daemon in started:
        daemon.close()


def gate(*args: str, trust: Path | None, token: str | None = TOKEN) -> tuple[int, str]:
    """The installed `budget-watchdog gate ARGS`, as a job runs it: its environment with
    the token and SSL_CERT_FILE (the certificate the job trusts), nothing else of ours."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WATCHDOG_", "SSL_CERT_")) and k != "OPENROUTER_API_KEY"
    }
    if token is not None:
        env["WATCHDOG_SERVER__TOKEN"] = token
    if trust is not None:
        env["SSL_CERT_FILE"] = str(trust)
    done = subprocess.run(
        [str(SCRIPT), "gate", *args], capture_output=True, text=True, timeout=30, env=env
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert TOKEN not in done.stderr + done.stdout
    return done.returncode, done.stderr


def test_the_installed_command_is_the_one_tested() -> None:
    assert SCRIPT.exists(), f"{SCRIPT}: run `make test` (it installs the package)"


def test_a_go_over_https_with_the_token(certs: Certificates, serve: type[HttpsDaemon]) -> None:
    daemon = serve(certs.daemon)
    code, err = gate("--url", daemon.url, "--cost", "1", trust=certs.daemon.cert)
    assert (code, err) == (0, "go\n")
    ((path, query, auth),) = daemon.requests  # the request went over TLS, token and all
    assert (path, query["cost"], auth) == ("/preflight", ["1.0"], f"Bearer {TOKEN}")


def test_localhost_names_the_same_daemon(certs: Certificates, serve: type[HttpsDaemon]) -> None:
    daemon = serve(certs.daemon)
    url = f"https://localhost:{daemon.port}"
    assert gate("--url", url, "--cost", "1", trust=certs.daemon.cert) == (0, "go\n")


def test_a_no_go_over_https_gives_the_daemons_reason(
    certs: Certificates, serve: type[HttpsDaemon]
) -> None:
    daemon = serve(certs.daemon)
    daemon.go = False
    code, err = gate("--url", daemon.url, "--cost", "1", trust=certs.daemon.cert)
    assert code == 1
    assert err == "no-go: $20.40 spent today, 102% of the $20.00 daily limit\n"


@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_a_missing_or_wrong_token_is_a_config_error(
    certs: Certificates, serve: type[HttpsDaemon], token: str | None
) -> None:
    daemon = serve(certs.daemon)
    code, err = gate("--url", daemon.url, "--cost", "1", trust=certs.daemon.cert, token=token)
    assert code == 2
    assert "answered HTTP 401" in err and "WATCHDOG_SERVER__TOKEN" in err
    assert len(err.splitlines()) == 1


def test_an_untrusted_certificate_is_a_no_go_and_gets_no_token(
    certs: Certificates, serve: type[HttpsDaemon]
) -> None:
    """Someone else answers on the daemon's address with a certificate of their own: the
    job must not launch, and must not hand that server its token."""
    impostor = serve(certs.impostor)
    code, err = gate("--url", impostor.url, "--cost", "1", trust=certs.daemon.cert)
    assert code == 1
    assert err.startswith(f"no-go: the daemon at {impostor.url} has a certificate this ")
    assert "self-signed certificate" in err and "SSL_CERT_FILE" in err
    assert len(err.splitlines()) == 1
    assert impostor.requests == []


def test_without_ssl_cert_file_a_self_signed_daemon_is_a_no_go(
    certs: Certificates, serve: type[HttpsDaemon]
) -> None:
    daemon = serve(certs.daemon)
    code, err = gate("--url", daemon.url, "--cost", "1", trust=None)
    assert code == 1 and "does not accept" in err and "SSL_CERT_FILE" in err
    assert daemon.requests == []


def test_a_certificate_for_another_host_is_a_no_go_naming_the_mismatch(
    certs: Certificates, serve: type[HttpsDaemon]
) -> None:
    daemon = serve(certs.elsewhere)
    code, err = gate("--url", daemon.url, "--cost", "1", trust=certs.elsewhere.cert)
    assert code == 1
    assert "mismatch" in err and "the host name (or address)" in err
    assert daemon.requests == []
    by_name = f"https://localhost:{daemon.port}"
    code, err = gate("--url", by_name, "--cost", "1", trust=certs.elsewhere.cert)
    assert code == 1 and "Hostname mismatch" in err and "the host name (or address)" in err


def test_http_to_an_https_daemon_is_a_no_go_that_suggests_https(
    certs: Certificates, serve: type[HttpsDaemon]
) -> None:
    daemon = serve(certs.daemon)
    code, err = gate("--url", f"http://127.0.0.1:{daemon.port}", "--cost", "1", trust=None)
    assert code == 1
    assert "give an https:// URL" in err, err
    assert len(err.splitlines()) == 1


def test_https_to_a_plain_http_daemon_is_a_no_go_naming_the_handshake(
    certs: Certificates, serve: type[HttpsDaemon]
) -> None:
    plain = serve(None)
    url = f"https://127.0.0.1:{plain.port}"
    code, err = gate("--url", url, "--cost", "1", trust=certs.daemon.cert)
    assert code == 1
    assert "TLS handshake" in err and "is it serving HTTPS there?" in err, err
    assert len(err.splitlines()) == 1


# -- a client of this host's own daemon pins its certificate ---------------------------------


def test_a_pinned_client_accepts_exactly_the_daemons_certificate(
    certs: Certificates, serve: type[HttpsDaemon]
) -> None:
    """`status` on the daemon's own host asks 127.0.0.1, which a real certificate does not
    name: pinned to server.tls_cert, the name does not matter, the certificate does."""
    daemon = serve(certs.elsewhere)
    pinned = control.DaemonClient(daemon.url, TOKEN, pin=str(certs.elsewhere.cert))
    assert pinned.preflight(1.0, None).go
    other = control.DaemonClient(daemon.url, TOKEN, pin=str(certs.daemon.cert))
    verdict = other.preflight(1.0, None)
    assert not verdict.go
    assert "not the certificate in" in verdict.reasons[0]
    assert len(daemon.requests) == 1  # the refused connection carried no request


def test_a_pinned_client_without_its_certificate_file_is_a_no_go(
    certs: Certificates, serve: type[HttpsDaemon], tmp_path: Path
) -> None:
    daemon = serve(certs.daemon)
    client = control.DaemonClient(daemon.url, TOKEN, pin=str(tmp_path / "missing.pem"))
    verdict = client.preflight(1.0, None)
    assert not verdict.go and "cannot read" in verdict.reasons[0]
    assert client.request_tick() is not None


def test_a_tls_alert_to_plain_http_is_read_as_tls() -> None:
    """A TLS server that answers a plain request with an alert record (as OpenSSL may)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def answer() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(b"\x15\x03\x03\x00\x02\x02\x46")  # alert: protocol_version

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        verdict = control.DaemonClient(f"http://127.0.0.1:{port}").preflight(1.0, None)
        thread.join(5)
    assert verdict.reasons == [
        f"the daemon at http://127.0.0.1:{port} did not answer in HTTP (it answered in TLS); "
        "if it serves HTTPS, give an https:// URL"
    ]


# -- the real daemon, serving HTTPS ---------------------------------------------------------


@pytest.fixture
def tls_daemon(tmp_path: Path, certs: Certificates) -> Iterator[str]:
    """`budget-watchdog run` with the daemon's certificate and a token, polling a fake
    OpenRouter; its https:// URL once /healthz answers 200 over TLS."""
    fake = FakeOpenRouter().start()
    port = free_port()
    config = (
        f'[provider]\nbase_url = "{fake.base_url}"\napi_key = "{API_KEY}"\n'
        'poll_interval = "1s"\ntimeout = "2s"\n'
        "[budget]\ndaily_limit = 20.0\n"
        f'[state]\npath = "{tmp_path}/state/state.db"\n'
        f'[killswitch]\npath = "{tmp_path}/run/permit"\n'
        f'[server]\nlisten = "127.0.0.1:{port}"\ntoken = "{TOKEN}"\n'
        f'tls_cert = "{certs.daemon.cert}"\ntls_key = "{certs.daemon.key}"\n'
    )
    proc = DaemonProcess(tmp_path, config).start()
    url = f"https://127.0.0.1:{port}"
    try:
        context = ssl.create_default_context(cafile=str(certs.daemon.cert))
        deadline = time.monotonic() + 30
        while True:
            assert proc.proc is not None and proc.proc.poll() is None, proc.output()
            try:
                request = urllib.request.Request(
                    url + "/healthz", headers={"Authorization": f"Bearer {TOKEN}"}
                )
                with urllib.request.urlopen(request, timeout=2, context=context) as answer:
                    if answer.status == 200:
                        break
            except OSError:  # not listening yet, or 503 before the first poll
                pass
            assert time.monotonic() < deadline, proc.output()
            time.sleep(0.2)
        yield url
    finally:
        proc.stop()
        fake.stop()
    assert TOKEN not in proc.output() and API_KEY not in proc.output()


def test_the_real_daemon_answers_gates_over_https(tls_daemon: str, certs: Certificates) -> None:
    url = tls_daemon
    assert gate("--url", url, "--cost", "1", trust=certs.daemon.cert) == (0, "go\n")
    code, err = gate("--url", url, "--cost", "500", trust=certs.daemon.cert)
    assert code == 1 and err.startswith("no-go: ") and "$500.00" in err, err
    code, err = gate("--url", url, "--cost", "1", trust=certs.daemon.cert, token=None)
    assert code == 2 and "no token was given" in err
    code, err = gate("--url", url, "--cost", "1", trust=certs.impostor.cert)
    assert code == 1 and "does not accept" in err
    code, err = gate("--url", f"http://127.0.0.1:{url.rpartition(':')[2]}", trust=None)
    assert code == 1 and "give an https:// URL" in err, err


def test_a_local_client_pinned_to_server_tls_cert_asks_the_real_daemon(
    tls_daemon: str, certs: Certificates
) -> None:
    """What `status`, `arm` and `trip` on the daemon's host can do: pin server.tls_cert."""
    port = int(tls_daemon.rpartition(":")[2])
    assert control.base_url("0.0.0.0", port, "https") == tls_daemon
    client = control.DaemonClient(tls_daemon, TOKEN, pin=str(certs.daemon.cert))
    status = client.status()
    assert status is not None and status["permit"] == "armed"
    assert client.request_tick() is None
