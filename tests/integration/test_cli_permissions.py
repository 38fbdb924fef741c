"""Commands run by someone who may not read the service's state: a clear line, never a
traceback (a member of the service group, a user on the same host)."""

from __future__ import annotations

import getpass  # noqa: F401 - used by trip/arm, loaded before dropping root
import json  # noqa: F401
import shutil  # noqa: F401
import sqlite3  # noqa: F401
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import watchdog.config
import watchdog.control
import watchdog.core.view
import watchdog.offline
import watchdog.permitfile
import watchdog.providers.openrouter
import watchdog.report
import watchdog.store
from tests.fakes import as_nobody
from tests.servers import free_port
from watchdog.cli import main

# What the commands import lazily is imported now: as `nobody` this test's interpreter
# (under root's home) could not load its own standard library.
PRELOADED = (watchdog.config, watchdog.control, watchdog.core.view, watchdog.offline)
PRELOADED_TOO = (watchdog.permitfile, watchdog.providers.openrouter, watchdog.report)
PRELOADED_STORE = watchdog.store


@pytest.fixture
def setup() -> Iterator[Path]:
    """A config anyone may read, beside a state directory only root may enter."""
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        root.chmod(0o755)
        private = root / "state"
        private.mkdir(mode=0o700)
        (private / "state.db").write_bytes(b"")
        config = root / "watchdog.toml"
        config.write_text(
            f'[state]\npath = "{private}/state.db"\n'
            f'[killswitch]\npath = "{root}/run/permit"\n'
            f'[server]\nlisten = "127.0.0.1:{free_port()}"\n'
        )
        config.chmod(0o644)
        yield config


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["status", "--json"],
        ["report"],
        ["trip", "--reason", "x"],
        ["arm"],
        ["silence", "spike", "--for", "1h"],
        ["unsilence", "spike"],
    ],
)
def test_a_state_the_user_may_not_read_is_one_clear_line(
    setup: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with as_nobody():
        code = main([*command, "--config", str(setup)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "run it as root or as the service user" in err
    assert "Traceback" not in out + err and len(err.strip().splitlines()) == 1
