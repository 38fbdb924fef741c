"""`gate --url` and the daemon client: against real servers on 127.0.0.1 answering odd things.

Only a JSON object with `"go": true` in an HTTP 200 is go; everything else is no-go (exit 1)
or, for a refused token, a configuration error (exit 2). Never a traceback, never a hang.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from watchdog import control, gate


class Daemon:
    """A stand-in daemon: answers every request with `status`, `body` and `headers`, and
    records the requests it got (path and headers)."""

    def __init__(self) -> None:
        self.status = 200
        self.body: bytes = b'{"go": true}'
        self.headers: dict[str, str] = {"Content-Type": "application/json"}
        self.chunked = False
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        daemon = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.answer()

            def do_POST(self) -> None:
                self.answer()

            def answer(self) -> None:
                daemon.requests.append((self.command, self.path, dict(self.headers.items())))
                self.send_response(daemon.status)
                for name, value in daemon.headers.items():
                    self.send_header(name, value)
                if daemon.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(daemon.body), 3):
                        part = daemon.body[i : i + 3]
                        self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(daemon.body)))
                    self.end_headers()
                    self.wfile.write(daemon.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def answer(self, status: int, body: object, raw: bool = False) -> Daemon:
        self.status = status
        self.body = body if raw and isinstance(body, bytes) else json.dumps(body).encode()
        return self


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    server = Daemon()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


class RawServer:
    """A TCP server that reads a request and then runs `behave(connection)`: for daemons
    that stall, drip, or do not speak HTTP."""

    def __init__(self, behave: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.behave = behave
        self.stop = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(connection,), daemon=True).start()

    def handle(self, connection: socket.socket) -> None:
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                data += chunk
            with contextlib.suppress(OSError):  # the client hung up: that is the point
                self.behave(connection)

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def run_gate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = gate.main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


# -- go and no-go ---------------------------------------------------------------------------------


def test_go_true_in_a_200_is_go(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.answer(200, {"go": True, "cost": 3.0, "headroom_usd": 12.0})
    assert run_gate(capsys, "--url", daemon.url, "--cost", "3") == (0, "go\n")


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        {"go": "false"},
        {"go": "true"},
        {"go": 1},
        {"go": None},
        {},
        "go",
        None,
        True,
    ],
)
def test_anything_but_go_true_in_a_200_is_no_go(
    daemon: Daemon, capsys: pytest.CaptureFixture[str], body: object
) -> None:
    daemon.answer(200, body)
    code, err = run_gate(capsys, "--url", daemon.url)
    assert code == 1 and err.startswith("no-go: ")


@pytest.mark.parametrize("raw", [b"", b"not json", b"[[[[" * 100_000, b'{"go": true', b"\xff"])
def test_a_body_that_is_not_json_is_no_go(
    daemon: Daemon, capsys: pytest.CaptureFixture[str], raw: bytes
) -> None:
    daemon.answer(200, raw, raw=True)
    code, err = run_gate(capsys, "--url", daemon.url)
    assert code == 1 and "not a JSON object" in err


def test_go_false_in_a_200_gives_the_daemons_reasons(daemon: Daemon) -> None:
    daemon.answer(200, {"go": False, "reasons": ["stale data"]})
    verdict = control.DaemonClient(daemon.url).preflight(None, None)
    assert not verdict.go and verdict.reasons == ["stale data"]


def test_409_is_no_go_with_the_daemons_string_reasons(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.answer(409, {"go": False, "reasons": ["daily_limit critical", 5, None, {"x": 1}, "b"]})
    code, err = run_gate(capsys, "--url", daemon.url, "--cost", "3")
    assert code == 1
    assert err == "no-go: daily_limit critical; b\n"


def test_409_without_reasons_is_still_no_go(daemon: Daemon) -> None:
    for body in ({"go": True}, [1], {"reasons": "all of them"}, {"reasons": [3]}):
        daemon.answer(409, body)
        verdict = control.DaemonClient(daemon.url).preflight(None, None)
        assert not verdict.go
        assert verdict.reasons == [f"the daemon at {daemon.url} says no-go, without a reason"]


def test_reasons_reach_the_log_as_one_line(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.answer(409, {"go": False, "reasons": ["over\nthe\x1b[31m limit"]})
    code, err = run_gate(capsys, "--url", daemon.url)
    assert code == 1 and err == "no-go: over the [31m limit\n"


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_a_config_error(
    daemon: Daemon,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    status: int,
) -> None:
    daemon.answer(status, {"error": "missing or wrong bearer token"})
    code, err = run_gate(capsys, "--url", daemon.url)
    assert code == 2
    assert "no token was given" in err and "WATCHDOG_SERVER__TOKEN" in err
    monkeypatch.setenv("WATCHDOG_SERVER__TOKEN", "s3cret-token")
    code, err = run_gate(capsys, "--url", daemon.url)
    assert code == 2 and "the token was refused" in err and "s3cret" not in err


@pytest.mark.parametrize("status", [400, 404, 500, 503, 201, 204])
def test_other_statuses_are_no_go_saying_so(
    daemon: Daemon, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    daemon.answer(status, {"go": True, "error": "boom"})
    code, err = run_gate(capsys, "--url", daemon.url)
    assert code == 1 and f"answered HTTP {status}" in err


def test_a_redirect_is_not_followed(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = Daemon()
    elsewhere.thread.start()
    try:
        daemon.headers["Location"] = elsewhere.url + "/preflight"
        daemon.answer(302, {})
        code, err = run_gate(capsys, "--url", daemon.url)
        assert code == 1 and "answered HTTP 302" in err
        assert elsewhere.requests == []
    finally:
        elsewhere.server.shutdown()
        elsewhere.server.server_close()


def test_no_daemon_is_no_go(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, err = run_gate(capsys, "--url", url)
    assert code == 1 and f"cannot reach the daemon at {url}" in err


def test_a_chunked_answer_is_read(daemon: Daemon) -> None:
    daemon.chunked = True
    daemon.answer(409, {"go": False, "reasons": ["a reason long enough to span chunks"]})
    verdict = control.DaemonClient(daemon.url).preflight(1.0, None)
    assert verdict.reasons == ["a reason long enough to span chunks"]


# -- what is asked --------------------------------------------------------------------------------


def test_cost_runway_and_key_are_passed_url_encoded(
    daemon: Daemon, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_SERVER__TOKEN", "s3cret")
    args = ["--url", daemon.url + "/", "--cost", "3", "--min-runway-days", "1e20"]
    assert run_gate(capsys, *args, "--key", "batch jobs/ü&x=1")[0] == 0
    method, path, headers = daemon.requests[-1]
    assert method == "GET"
    assert path == ("/preflight?cost=3.0&min_runway_days=1e%2B20&key=batch%20jobs%2F%C3%BC%26x%3D1")
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Host"] == daemon.url.removeprefix("http://")


def test_a_path_prefix_in_the_url_is_kept(daemon: Daemon) -> None:
    control.DaemonClient(daemon.url + "/watchdog/").preflight(None, None)
    assert daemon.requests[-1][1] == "/watchdog/preflight"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1",
        "127.0.0.1:8787",
        "http://",
        "http://:8787",
        "http://127.0.0.1:port",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:",
        "http://user@127.0.0.1",
        "http://127.0.0.1/?x=1",
        "http://127.0.0.1 /",
        "http://127.0.0.1\r\nX: y",
        "http://[::1",
        "http://::1:80",
        "http://exämple.org",
    ],
)
def test_a_url_that_is_not_a_daemons_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    with pytest.raises(ValueError):
        control.DaemonClient(url)
    code, err = run_gate(capsys, "--url", url)
    assert code == 2 and err.count("\n") == 1


def test_a_token_with_control_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="control characters"):
        control.DaemonClient("http://127.0.0.1:1", token="abc\r\nX-Evil: 1")


def test_the_token_never_shows_in_the_clients_repr() -> None:
    assert "s3cret" not in repr(control.DaemonClient("http://127.0.0.1:1", token="s3cret"))


# -- never a hang ------------------------------------------------------------------------------


def stall(connection: socket.socket) -> None:
    time.sleep(3)


def drip(connection: socket.socket) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(30):
        connection.sendall(b"X: y\r\n")
        time.sleep(0.1)


def garbage(connection: socket.socket) -> None:
    connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")


def half(connection: socket.socket) -> None:
    connection.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"go": true}')


@pytest.mark.parametrize(
    ("behave", "said"),
    [
        (stall, "did not answer within 0.5 s"),
        (drip, "did not answer within 0.5 s"),
        (garbage, "did not answer in HTTP (not an HTTP answer)"),
        (half, "did not answer in HTTP (a truncated answer)"),
    ],
)
def test_a_daemon_that_stalls_drips_or_babbles_is_no_go_within_the_timeout(
    behave: Callable[[socket.socket], None], said: str
) -> None:
    server = RawServer(behave)
    try:
        start = time.monotonic()
        verdict = control.DaemonClient(server.url, timeout=0.5).preflight(1.0, None)
        assert time.monotonic() - start < 1.5
        assert not verdict.go and verdict.reasons == [f"the daemon at {server.url} {said}"]
    finally:
        server.close()


# -- status and ticks, for the CLI ------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("0.0.0.0", 8787, "http://127.0.0.1:8787"),
        ("::", 8787, "http://127.0.0.1:8787"),
        ("", 1, "http://127.0.0.1:1"),
        ("::1", 8787, "http://[::1]:8787"),
        ("localhost", 80, "http://localhost:80"),
        ("10.0.0.5", 9000, "http://10.0.0.5:9000"),
    ],
)
def test_base_url(host: str, port: int, url: str) -> None:
    assert control.base_url(host, port) == url


def test_status_is_the_daemons_object_or_none(daemon: Daemon) -> None:
    client = control.DaemonClient(daemon.url, token="t")
    daemon.answer(200, {"state": "ok", "permit": "armed"})
    assert client.status() == {"state": "ok", "permit": "armed"}
    assert daemon.requests[-1][:2] == ("GET", "/status")
    for status, body in ((200, [1, 2]), (200, "ok"), (401, {"error": "token"}), (500, {})):
        daemon.answer(status, body)
        assert client.status() is None
    assert control.DaemonClient(f"http://127.0.0.1:{free_port()}").status() is None
    assert control.DaemonClient(control.base_url("127.0.0.1", 0)).status() is None


def test_request_tick_says_why_not(daemon: Daemon) -> None:
    client = control.DaemonClient(daemon.url)
    daemon.answer(200, {"state": "ok", "permit": "armed", "permit_reason": ""})
    assert client.request_tick() is None
    assert daemon.requests[-1][:2] == ("POST", "/tick")
    assert daemon.requests[-1][2]["Content-Length"] == "0"
    daemon.answer(401, {"error": "token"})
    assert client.request_tick() == (
        f"the daemon at {daemon.url} answered HTTP 401 (is server.token the daemon's?)"
    )
    daemon.answer(503, {"error": "ticks cannot be requested here"})
    assert client.request_tick() == f"the daemon at {daemon.url} answered HTTP 503"
    gone = f"http://127.0.0.1:{free_port()}"
    assert control.DaemonClient(gone).request_tick() == f"no daemon answered at {gone}"
    assert control.DaemonClient(control.base_url("0.0.0.0", 0)).request_tick() == (
        "server.listen has no fixed port to ask"
    )


def test_a_tick_that_takes_too_long_says_so() -> None:
    server = RawServer(stall)
    try:
        said = control.DaemonClient(server.url).request_tick(timeout=0.3)
        assert said == f"the daemon at {server.url} did not finish a tick within 0.3 s"
    finally:
        server.close()


def test_the_clients_verdict_is_the_gates(daemon: Daemon) -> None:
    assert isinstance(control.DaemonClient(daemon.url).preflight(None, None), gate.Verdict)


def test_a_host_name_is_resolved(daemon: Daemon) -> None:
    port = daemon.url.rsplit(":", 1)[1]
    assert control.DaemonClient(f"http://localhost:{port}").preflight(None, None).go


def test_the_client_loads_neither_the_config_nor_urllib() -> None:
    code = (
        "import sys\n"
        "import watchdog.control\n"
        "heavy = {'watchdog.config', 'pydantic', 'urllib.request', 'http.client', 'ssl'}\n"
        "print(' '.join(sorted(heavy & set(sys.modules))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []


# -- an answer must be well-formed to be go ---------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"go": false, "go": true}',
        b'{"go": true, "cost": 1.0, "cost": 2.0}',
        b'{"go": true, "headroom_usd": NaN}',
        b'{"go": true, "headroom_usd": Infinity}',
        b'{"go": true, "reserved_usd": -Infinity}',
        b'{"go": true, "headroom_usd": 1e400}',
        b'{"go": true, "headroom_usd": ' + b"9" * 400 + b"}",
        b'{"go": true, "cost": "1.0"}',
        b'{"go": true, "reserved_usd": true}',
        b'{"go": true, "headroom_usd": [1]}',
        b'{"go": true, "reasons": "none"}',
    ],
)
def test_a_go_answer_that_is_not_well_formed_is_no_go(
    daemon: Daemon, capsys: pytest.CaptureFixture[str], raw: bytes
) -> None:
    daemon.answer(200, raw, raw=True)
    code, err = run_gate(capsys, "--url", daemon.url, "--cost", "1")
    assert code == 1
    assert err.startswith("no-go: the daemon's answer is not well-formed (")
    assert len(err) < 300


def test_go_true_with_reasons_against_it_is_no_go(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.answer(200, {"go": True, "reasons": ["balance is negative"]})
    code, err = run_gate(capsys, "--url", daemon.url)
    assert code == 1
    assert err == (
        f'no-go: the daemon at {daemon.url} answered "go": true with reasons against it; '
        "balance is negative\n"
    )
    daemon.answer(200, {"go": True, "reasons": [5]})
    assert run_gate(capsys, "--url", daemon.url)[0] == 1


def test_go_true_with_finite_numbers_empty_reasons_and_nulls_is_go(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.answer(
        200,
        {"go": True, "cost": 1, "headroom_usd": None, "reserved_usd": 0.0, "reasons": []},
    )
    assert run_gate(capsys, "--url", daemon.url, "--cost", "1") == (0, "go\n")


def test_an_unknown_runway_in_the_answer_is_no_go_under_a_runway_floor(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.answer(200, {"go": True, "headroom_usd": 5.0, "runway_days": None})
    assert run_gate(capsys, "--url", daemon.url)[0] == 0
    code, err = run_gate(capsys, "--url", daemon.url, "--min-runway-days", "3")
    assert code == 1
    assert err == (
        "no-go: runway unknown (no balance known: a management key or a key limit that "
        "never resets gives one), so at least 3 days cannot be promised\n"
    )
    daemon.answer(200, {"go": True, "runway_days": 2.0})
    code, err = run_gate(capsys, "--url", daemon.url, "--min-runway-days", "3")
    assert code == 1 and "credit lasts 2.0 days, under the 3 asked for" in err
    daemon.answer(200, {"go": True, "runway_days": 4.0})
    assert run_gate(capsys, "--url", daemon.url, "--min-runway-days", "3")[0] == 0


# -- a URL with a password never shows it -----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pw-s3cr3t-value@127.0.0.1:9",
        "http://pw-s3cr3t-value@127.0.0.1:9",
        "https://user:pw-s3cr3t-value@127.0.0.1:9/x?y",
        "ftp://user:pw-s3cr3t-value@127.0.0.1:9",
        "user:pw-s3cr3t-value@127.0.0.1:9",
        "http://user:pw-s3cr3t-value@exämple.org",
        "http://u:pw-s3cr3t-value@host:port",
    ],
)
def test_a_password_in_the_url_is_never_echoed(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    with pytest.raises(ValueError) as exc:
        control.DaemonClient(url)
    assert "s3cr3t" not in str(exc.value)
    code, err = run_gate(capsys, "--url", url)
    assert code == 2 and "s3cr3t" not in err and "****@" in err


def test_a_password_in_a_stray_argument_is_never_echoed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run_gate(capsys, "http://user:pw-s3cr3t-value@127.0.0.1:9")
    assert code == 2 and "s3cr3t" not in err
