"""[state]: SQLite by default, or a PostgreSQL URL (url, url_file, the credential state_url)
whose password never shows: not in check-config, an error, a log line."""

from __future__ import annotations

import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import as_nobody
from watchdog import config, log
from watchdog.cli import main

PASSWORD = "pg-Pa55:w/ord@x"  # ":" "/" "@": written percent-encoded in a URL
ENCODED = "pg-Pa55%3Aw%2Ford%40x"
URL = f"postgresql://watchdog:{ENCODED}@db.internal:5432/watchdog?sslmode=verify-full"
SHOWN = "postgresql://watchdog:***@db.internal:5432/watchdog?sslmode=verify-full"
KEY = 'api_key = "sk-or-v1-0123456789abcdef"'


def write(directory: Path, text: str, mode: int = 0o600) -> Path:
    path = directory / "watchdog.toml"
    path.write_text(f"[provider]\n{KEY}\n{text}")
    path.chmod(mode)
    return path


def url_file(directory: Path, text: str = URL + "\n", name: str = "state_url") -> Path:
    path = directory / name
    path.write_text(text)
    path.chmod(0o600)
    return path


def refused(path: Path | None) -> list[config.ConfigProblem]:
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    for problem in exc.value.problems:
        assert PASSWORD not in str(problem) and ENCODED not in str(problem)
    return exc.value.problems


def check_config(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check-config", "--config", str(path)])
    out, err = capsys.readouterr()
    for text in (out, err):
        assert PASSWORD not in text and ENCODED not in text
        assert "Traceback" not in text
    return code, out, err


# -- where the state is --------------------------------------------------------------------


def test_without_a_url_the_state_is_the_sqlite_file(tmp_path: Path) -> None:
    state = config.load(write(tmp_path, "")).settings.state
    assert not state.shared
    assert state.target == Path("/var/lib/budget-watchdog/state.db")
    assert state.shown == "/var/lib/budget-watchdog/state.db"


def test_a_url_in_the_config_is_what_the_store_opens_and_is_shown_masked(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, f'[state]\nurl = "{URL}"\n')).settings
    assert settings.state.shared
    assert settings.state.target == URL  # Store.open(target): with the password
    assert settings.state.shown == SHOWN


def test_postgres_is_a_scheme_too(tmp_path: Path) -> None:
    short = URL.replace("postgresql://", "postgres://")
    state = config.load(write(tmp_path, f'[state]\nurl = "{short}"\n')).settings.state
    assert state.target == short


def test_the_url_may_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_STATE__URL", URL)
    assert config.load(write(tmp_path, "")).settings.state.target == URL


def test_url_file_is_read_without_its_newline_and_a_bom(tmp_path: Path) -> None:
    source = url_file(tmp_path, f"\ufeff{URL}\r\n\n")
    state = config.load(write(tmp_path, f'[state]\nurl_file = "{source}"\n')).settings.state
    assert state.target == URL
    assert state.url_file == source


def test_a_url_given_directly_wins_over_url_file_as_keys_do(tmp_path: Path) -> None:
    other = URL.replace("db.internal", "other.internal")
    source = url_file(tmp_path, other)
    text = f'[state]\nurl = "{URL}"\nurl_file = "{source}"\n'
    assert config.load(write(tmp_path, text)).settings.state.target == URL


def test_a_relative_url_file_is_a_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    url_file(creds, name="db")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    state = config.load(write(tmp_path, '[state]\nurl_file = "db"\n')).settings.state
    assert state.target == URL and state.url_file == creds / "db"


# -- by convention: the credential state_url, keys/state_url ------------------------------------


def test_the_credential_state_url_is_used_without_any_state_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    url_file(creds)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    state = config.load(write(tmp_path, "")).settings.state
    assert state.target == URL and state.url_file == creds / "state_url"


@pytest.mark.parametrize("blank", ["", "\n"])
def test_a_blank_credential_is_the_units_default_and_means_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    """The unit's SetCredential=state_url:\\n gives every host without keys/state_url a
    blank one: SQLite, with path set or not, and keys/ beside the config is not looked at
    (the unit loads the credential from there: it has answered)."""
    creds = tmp_path / "credentials"
    creds.mkdir()
    url_file(creds, blank)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    (tmp_path / "keys").mkdir()
    url_file(tmp_path / "keys")
    loaded = config.load(write(tmp_path, '[state]\npath = "/tmp/x/state.db"\n'))
    assert loaded.settings.state.target == Path("/tmp/x/state.db")
    assert loaded.notes == [] and loaded.warnings == []
    assert not config.load(write(tmp_path, "")).settings.state.shared


def test_keys_state_url_beside_the_config_is_what_root_sees(tmp_path: Path) -> None:
    """What install.sh --state-url-file puts there: check-config as root shows the same
    state the service gets as its credential."""
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    url_file(keys)
    assert config.load(write(tmp_path, "")).settings.state.target == URL


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory another user can enter (pytest's tmp_path is private to root)."""
    with tempfile.TemporaryDirectory() as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


def test_a_keys_directory_that_cannot_be_read_is_skipped_with_a_note(open_dir: Path) -> None:
    keys = open_dir / "keys"
    keys.mkdir(mode=0o700)
    url_file(keys)
    path = write(open_dir, "", mode=0o644)
    with as_nobody():
        loaded = config.load(path)
    assert not loaded.settings.state.shared
    assert any("state_url" in note for note in loaded.notes)


def test_a_url_file_that_cannot_be_read_is_an_error_naming_it(open_dir: Path) -> None:
    source = url_file(open_dir)
    path = write(open_dir, f'[state]\nurl_file = "{source}"\n', mode=0o644)
    with as_nobody():
        (problem,) = refused(path)
    assert (problem.path, problem.origin) == ("state.url_file", str(source))
    assert problem.message == "cannot read: Permission denied"


# -- exactly one place -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (f'path = "/tmp/state.db"\nurl = "{URL}"\n', "url (PostgreSQL)"),
        ('path = "/tmp/state.db"\nurl_file = "/etc/budget-watchdog/keys/state_url"\n', "url_file"),
    ],
)
def test_path_with_a_url_is_a_config_error(tmp_path: Path, text: str, named: str) -> None:
    (problem,) = refused(write(tmp_path, f"[state]\n{text}"))
    assert problem.path == "state.path"
    assert named in problem.message and "path (SQLite)" in problem.message


def test_path_with_the_credential_is_a_config_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staying on SQLite while the other hosts share PostgreSQL would split the budget."""
    creds = tmp_path / "credentials"
    creds.mkdir()
    url_file(creds)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    (problem,) = refused(write(tmp_path, '[state]\npath = "/tmp/state.db"\n'))
    assert problem.path == "state.path"
    assert f"the credential state_url ({creds / 'state_url'})" in problem.message


def test_a_path_from_the_environment_with_a_url_in_the_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_STATE__PATH", "/tmp/state.db")
    (problem,) = refused(write(tmp_path, f'[state]\nurl = "{URL}"\n'))
    assert problem.path == "state.path"


def test_check_config_says_so_in_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f'[state]\npath = "/tmp/state.db"\nurl = "{URL}"\n')
    code, out, err = check_config(path, capsys)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"Invalid configuration ({path}): 1 error",
        "  At 'state.path': path (SQLite) and url (PostgreSQL) are both set: the state is "
        "kept in one place; remove path to use PostgreSQL, or url to stay on SQLite",
    ]


def test_an_override_of_the_state_replaces_the_files_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo keeps its own state: a host's URL (file or credential) must not clash."""
    creds = tmp_path / "credentials"
    creds.mkdir()
    url_file(creds)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    path = write(tmp_path, f'[state]\nurl = "{URL}"\n')
    demo = {"state": {"path": str(tmp_path / "demo.db")}}
    state = config.load(path, overrides=demo).settings.state
    assert state.target == tmp_path / "demo.db"


# -- what a URL must be ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (f"mysql://watchdog:{ENCODED}@db/watchdog", "not mysql://"),
        (f"POSTGRESQL://watchdog:{ENCODED}@db/watchdog", "not POSTGRESQL://"),
        (f"watchdog:{ENCODED}@db/watchdog", "must be a postgresql:// (or postgres://) URL"),
        (f"postgresql://watchdog:{ENCODED}@db/watchdog x", "whitespace"),
        # libpq reads ?, # and / in a password otherwise than it looks: refused, not shown
        ("postgresql://watchdog:pa?ss#LeakMe42@db/watchdog", "percent-encode"),
        ("postgresql://watchdog:pa/ssLeakMe42@db/watchdog", "percent-encode"),
        # what libpq would refuse at start is refused when the config loads
        ("postgresql://watchdog:LeakMe42@db:99999/watchdog", "port 99999 is not a port"),
        ("postgresql://watchdog:LeakMe42@db/watchdog?sslmode=bogus", "sslmode 'bogus'"),
        (
            "postgresql://watchdog:LeakMe42@db/watchdog?foo=bar",
            'invalid URI query parameter: "foo"',
        ),
        ("postgresql://watchdog:LeakMe42@[db/watchdog", "libpq cannot read it"),
    ],
)
def test_a_url_that_is_not_postgresql_is_an_error_without_the_password(
    tmp_path: Path, url: str, said: str
) -> None:
    (problem,) = refused(write(tmp_path, f'[state]\nurl = "{url}"\n'))
    assert problem.path == "state.url"
    assert said in problem.message
    assert "LeakMe42" not in problem.message


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("", "is empty"),
        (f"{URL}\n# the old one\n", "more than one line"),
        (f"mysql://watchdog:{ENCODED}@db/watchdog\n", "not mysql://"),
    ],
)
def test_a_url_file_that_holds_no_single_url_is_an_error_naming_it(
    tmp_path: Path, content: str, said: str
) -> None:
    source = url_file(tmp_path, content)
    (problem,) = refused(write(tmp_path, f'[state]\nurl_file = "{source}"\n'))
    assert (problem.path, problem.origin) == ("state.url_file", str(source))
    assert said in problem.message


def test_a_missing_url_file_is_an_error_naming_it(tmp_path: Path) -> None:
    (problem,) = refused(write(tmp_path, f'[state]\nurl_file = "{tmp_path / "none"}"\n'))
    assert problem.path == "state.url_file"
    assert problem.message == "cannot read: No such file or directory"


# -- never shown -----------------------------------------------------------------------------


def test_check_config_shows_the_url_with_the_password_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = url_file(tmp_path)
    code, out, _ = check_config(write(tmp_path, f'[state]\nurl_file = "{source}"\n'), capsys)
    assert code == 0
    state = out.split("[state]\n", 1)[1].split("\n\n", 1)[0]
    assert state.splitlines() == [
        "# path is not used: the state is in PostgreSQL (url)",
        f'url = "{SHOWN}"',
        f'url_file = "{source}"',
    ]
    tomllib.loads(out)


def test_a_password_parameter_is_masked_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql://watchdog@db.internal/watchdog?password={ENCODED}&sslmode=require"
    code, out, _ = check_config(write(tmp_path, f'[state]\nurl = "{url}"\n'), capsys)
    assert code == 0
    assert 'url = "postgresql://watchdog@db.internal/watchdog?password=***&sslmode=require"' in out


def test_the_log_scrubber_learns_every_form_of_the_password(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, f'[state]\nurl = "{URL}"\n')).settings
    assert PASSWORD in settings.secrets() and ENCODED in settings.secrets()
    log.set_secrets(settings.secrets())
    line = f"connection to {URL} failed for {PASSWORD!r}"
    scrubbed = log.scrub(line)
    assert PASSWORD not in scrubbed and ENCODED not in scrubbed
    assert "db.internal" in scrubbed


def test_a_url_without_a_password_adds_no_secret(tmp_path: Path) -> None:
    url = "postgresql://watchdog@db.internal/watchdog?sslmode=verify-full"
    settings = config.load(write(tmp_path, f'[state]\nurl = "{url}"\n')).settings
    assert settings.secrets() == ["sk-or-v1-0123456789abcdef"]
    assert settings.state.shown == url


def test_a_config_holding_the_password_readable_by_others_gets_a_warning(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, f'[state]\nurl = "{URL}"\n', mode=0o644))
    assert any("state.url" in warning for warning in loaded.warnings)
    no_password = "postgresql://watchdog@db.internal/watchdog?sslmode=verify-full"
    quiet = config.load(write(tmp_path, f'[state]\nurl = "{no_password}"\n', mode=0o644))
    assert not any("state.url" in warning for warning in quiet.warnings)


# -- start warnings about the database connection ------------------------------------------------


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("postgresql://watchdog@db.internal/watchdog", "db.internal"),
        ("postgresql://watchdog@db1:5432,db2:5433/watchdog?sslmode=prefer", "db1, db2"),
        ("postgresql://watchdog@[2001:db8::5]:5432/watchdog?sslmode=disable", "2001:db8::5"),
        ("postgresql://watchdog@db.internal/watchdog?sslmode=require", None),
        ("postgresql://watchdog@db.internal/watchdog?sslmode=verify-full", None),
        ("postgresql://watchdog@localhost/watchdog", None),
        ("postgresql://watchdog@127.0.0.1:5432/watchdog", None),
        ("postgresql:///watchdog", None),  # the Unix socket
        ("postgresql://watchdog@/watchdog?host=/var/run/postgresql", None),
    ],
)
def test_a_remote_database_without_required_tls_is_a_start_warning(
    url: str, warned: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    warnings = config.Settings(state={"url": url}).start_warnings()
    if warned is None:
        assert warnings == []
    else:
        (warning,) = warnings
        assert f"the connection to {warned} does not require TLS" in warning
        assert "sslmode=verify-full" in warning


def test_pgsslmode_in_the_environment_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    url = "postgresql://watchdog@db.internal/watchdog"
    assert config.Settings(state={"url": url}).start_warnings() == []
