"""The real `budget-watchdog gate` process, as a batch job runs it: exit codes, no hang on a
FIFO, no traceback on an odd daemon answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "budget-watchdog"


def commands() -> list[list[str]]:
    """`python -m watchdog`, and the installed console script when it is the current one."""
    found = [[sys.executable, "-m", "watchdog"]]
    if SCRIPT.exists() and "watchdog.entry" in SCRIPT.read_text():
        found.append([str(SCRIPT)])
    return found


@pytest.fixture(params=commands(), ids=lambda command: Path(command[-1]).name)
def command(request: pytest.FixtureRequest) -> list[str]:
    return list(request.param)


def gate(command: list[str], *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `gate ARGS`; fail the test (after killing it) if it takes more than 20 s."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_")}
    done = subprocess.run(
        [*command, "gate", *args],
        capture_output=True,
        text=True,
        timeout=20,
        env={**clean, **(env or {})},
    )
    assert "Traceback" not in done.stderr
    return done.returncode, done.stderr


def test_a_fresh_permit_is_go(tmp_path: Path, command: list[str]) -> None:
    now = datetime.now(UTC)
    permit = tmp_path / "permit"
    permit.write_text(
        json.dumps(
            {
                "state": "armed",
                "issued_at": now.isoformat(),
                "expires_at": (now + timedelta(minutes=5)).isoformat(),
                "balance": 50.0,
                "runway_days": 9.5,
                "headroom_usd": 12.0,
            }
        )
    )
    assert gate(command, "--permit", str(permit), "--cost", "3") == (0, "go\n")
    code, err = gate(command, "--permit", str(permit), "--cost", "30")
    assert code == 1 and "exceeds the $12.00 of headroom" in err


def test_a_fifo_at_the_permit_path_is_no_go_and_does_not_hang(
    tmp_path: Path, command: list[str]
) -> None:
    fifo = tmp_path / "permit"
    os.mkfifo(fifo)
    code, err = gate(command, "--permit", str(fifo))
    assert (code, err) == (1, f"no-go: the permit {fifo} is a FIFO, not a regular file\n")
    # Found through the environment instead of --permit, too.
    code, _ = gate(command, env={"WATCHDOG_KILLSWITCH__PATH": str(fifo)})
    assert code == 1


class OddDaemon:
    def __init__(self, status: int, body: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()


@pytest.fixture
def odd_daemon() -> Iterator[list[OddDaemon]]:
    servers: list[OddDaemon] = []
    yield servers
    for server in servers:
        server.server.shutdown()
        server.server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "exit_code"),
    [
        (200, b"[1,2]", 1),
        (200, b'{"go": "false"}', 1),
        (200, b'{"go": true}', 0),
        (409, b'{"go": false, "reasons": ["spike critical"]}', 1),
        (401, b'{"error": "missing or wrong bearer token"}', 2),
        (500, b"Internal Server Error", 1),
    ],
)
def test_the_daemons_answer_decides_without_a_traceback(
    command: list[str], odd_daemon: list[OddDaemon], status: int, body: bytes, exit_code: int
) -> None:
    server = OddDaemon(status, body)
    odd_daemon.append(server)
    code, err = gate(command, "--url", server.url, "--cost", "1")
    assert code == exit_code, err
    assert err.count("\n") == 1


def test_an_unknown_runway_under_a_runway_floor_is_no_go(
    tmp_path: Path, command: list[str]
) -> None:
    now = datetime.now(UTC)
    permit = tmp_path / "permit"
    permit.write_text(
        json.dumps(
            {
                "state": "armed",
                "issued_at": now.isoformat(),
                "expires_at": (now + timedelta(minutes=5)).isoformat(),
                "balance": None,
                "runway_days": None,
                "headroom_usd": None,
            }
        )
    )
    assert gate(command, "--permit", str(permit), "--cost", "3") == (0, "go\n")
    code, err = gate(command, "--permit", str(permit), "--min-runway-days", "2")
    assert code == 1
    assert err == (
        "no-go: runway unknown (no balance known: a management key or a key limit that "
        "never resets gives one), so at least 2 days cannot be promised\n"
    )


def test_a_password_in_the_daemons_url_is_never_printed(command: list[str]) -> None:
    code, err = gate(command, "--url", "http://user:pw-s3cr3t-value@127.0.0.1:9")
    assert code == 2 and "s3cr3t" not in err and "http://****@127.0.0.1:9" in err


@pytest.mark.parametrize("cost", ["1_0", "\u0663", "+1", " 1 ", "1e3"])
def test_a_cost_that_is_not_plain_decimal_digits_is_a_usage_error(
    tmp_path: Path, command: list[str], cost: str
) -> None:
    code, err = gate(command, "--permit", str(tmp_path / "permit"), "--cost", cost)
    assert code == 2 and "--cost must be a plain decimal number" in err
