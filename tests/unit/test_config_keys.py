"""Keys: one token each, read by load() from files with their paths in every error."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import as_nobody
from watchdog import config

SECRET = "sk-or-v1-0123456789abcdef-do-not-print"


def write(directory: Path, text: str, mode: int = 0o600) -> Path:
    path = directory / "watchdog.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def refused(path: Path | None) -> list[config.ConfigProblem]:
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    return exc.value.problems


@pytest.mark.parametrize(
    "content",
    [
        f"{SECRET}\n# rotated 2026-11-01\n",
        f"# rotated 2026-11-01\n{SECRET}\n",
        f"{SECRET}\n\n{SECRET}\n",
    ],
)
def test_a_key_file_with_a_second_line_is_an_error_naming_the_file(
    tmp_path: Path, content: str
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(content)
    (problem,) = refused(write(tmp_path, f'[provider]\napi_key_file = "{key_file}"\n'))
    assert problem.path == "provider.api_key_file"
    assert problem.origin == str(key_file)
    assert "more than one line" in problem.message
    assert SECRET not in str(problem) and "rotated" not in str(problem)


@pytest.mark.parametrize(
    "content",
    [
        f"{SECRET}\n",
        f"{SECRET}\r\n",
        f"  {SECRET}  \n\n",
        f"\ufeff{SECRET}\n",
    ],
)
def test_a_key_file_loses_surrounding_whitespace_and_a_bom(tmp_path: Path, content: str) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(content, encoding="utf-8")
    key = config.load(write(tmp_path, f'[provider]\napi_key_file = "{key_file}"\n'))
    assert key.settings.provider.api_key is not None
    assert key.settings.provider.api_key.get_secret_value() == SECRET


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"sk-or v1-abc", "whitespace"),
        (b"sk-or\tv1-abc", "whitespace"),
        (b"sk-or-\x00v1", "non-printable"),
        (b"sk-or-\x1b[31mv1", "non-printable"),
        ("sk-or-v1-\u00e9".encode(), "non-ASCII"),
        (b"sk-or-v1-\xff\xfe", "non-ASCII"),
    ],
)
def test_a_key_file_that_is_not_one_printable_token_is_an_error(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(content)
    (problem,) = refused(write(tmp_path, f'[provider]\nmanagement_key_file = "{key_file}"\n'))
    assert problem.path == "provider.management_key_file"
    assert str(key_file) in str(problem)
    assert reason in problem.message
    assert "sk-or" not in str(problem)


def test_an_empty_key_file_named_in_the_config_is_an_error(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("\n")
    (problem,) = refused(write(tmp_path, f'[provider]\napi_key_file = "{key_file}"\n'))
    assert str(problem) == f"At 'provider.api_key_file' (from {key_file}): is empty"


def test_a_huge_file_is_not_read_as_a_key(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"x" * (config.KEY_FILE_MAX_BYTES + 1))
    (problem,) = refused(write(tmp_path, f'[provider]\napi_key_file = "{key_file}"\n'))
    assert "not a key file" in problem.message


def test_a_key_in_the_environment_is_checked_and_named_by_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", f"{SECRET}\n# rotated 2026-11-01")
    (problem,) = refused(None)
    assert problem.path == "provider.api_key"
    assert problem.origin == "OPENROUTER_API_KEY"
    assert str(problem).startswith("At 'provider.api_key' (from OPENROUTER_API_KEY): ")
    assert SECRET not in str(problem)


def test_a_watchdog_variable_key_is_named_by_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_PROVIDER__MANAGEMENT_KEY", "two words")
    monkeypatch.setenv("OPENROUTER_MANAGEMENT_KEY", SECRET)  # weaker: not the one judged
    (problem,) = refused(None)
    assert problem.origin == "WATCHDOG_PROVIDER__MANAGEMENT_KEY"
    assert "whitespace" in problem.message


def test_a_key_in_the_config_file_is_checked_without_echoing_it(tmp_path: Path) -> None:
    path = write(tmp_path, f'[provider]\napi_key = "{SECRET} {SECRET}"\n')
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    (problem,) = exc.value.problems
    assert (problem.path, problem.origin) == ("provider.api_key", None)
    assert SECRET not in exc.value.report()


def test_a_key_given_directly_loses_surrounding_whitespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", f"\ufeff {SECRET}\n")
    key = config.load(None).settings.provider.api_key
    assert key is not None and key.get_secret_value() == SECRET


def test_a_blank_key_in_the_file_counts_as_no_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[provider]\napi_key = "  "\n')
    assert config.load(path, require_key=False).settings.provider.api_key is None


def test_a_malformed_key_at_a_conventional_place_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "api_key").write_text(f"{SECRET}\n# rotated 2026-11-01\n")
    (problem,) = refused(write(tmp_path, "[budget]\ndaily_limit = 5\n"))
    assert problem.path == "provider.api_key_file"
    assert problem.origin == str(tmp_path / "keys" / "api_key")
    assert SECRET not in str(problem)


def test_problems_of_both_key_files_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one two")
    path = write(
        tmp_path,
        f'[provider]\napi_key_file = "{tmp_path}/a"\nmanagement_key_file = "{tmp_path}/b"\n',
    )
    found = {p.path: p for p in refused(path)}
    assert set(found) == {"provider.api_key_file", "provider.management_key_file"}
    assert "whitespace" in found["provider.api_key_file"].message
    assert "No such file" in found["provider.management_key_file"].message


def test_validation_alone_reads_no_key_file() -> None:
    """Settings() validates; reading key files is load()'s job, after validation."""
    settings = config.Settings(provider={"api_key_file": "/nonexistent/key"})
    assert settings.provider.api_key is None
    assert settings.provider.api_key_file == Path("/nonexistent/key")


def test_a_loaded_key_file_path_is_the_resolved_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mgmt").write_text(SECRET)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    path = write(tmp_path, '[provider]\nmanagement_key_file = "mgmt"\n')
    assert config.load(path).settings.provider.management_key_file == tmp_path / "mgmt"


# -- unreadable places -------------------------------------------------------------------


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory another user can enter (pytest's tmp_path is private to root)."""
    with tempfile.TemporaryDirectory() as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


@pytest.fixture
def locked_keys(open_dir: Path) -> Iterator[Path]:
    """keys/ beside the config, holding a key but closed to us (like a 0700 root dir)."""
    keys = open_dir / "keys"
    keys.mkdir()
    (keys / "api_key").write_text(SECRET)
    keys.chmod(0o000)
    try:
        yield keys
    finally:
        keys.chmod(0o700)


def test_an_unreadable_conventional_key_place_is_skipped_with_a_note(
    open_dir: Path, locked_keys: Path
) -> None:
    path = write(open_dir, "[budget]\ndaily_limit = 5\n", mode=0o644)
    with as_nobody():
        loaded = config.load(path, require_key=False)
    assert loaded.settings.provider.api_key is None
    assert loaded.warnings == []
    assert any(str(locked_keys / "api_key") in note for note in loaded.notes)
    assert all(SECRET not in note for note in loaded.notes)


def test_an_unreadable_conventional_place_gives_way_to_the_next(
    open_dir: Path, locked_keys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = open_dir / "conf"
    (conf / "keys").mkdir(parents=True)
    for directory in (conf, conf / "keys"):
        directory.chmod(0o755)
    (conf / "keys" / "api_key").write_text(SECRET)
    (conf / "keys" / "api_key").chmod(0o644)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(locked_keys))  # looked at first
    path = write(conf, "", mode=0o644)
    with as_nobody():
        loaded = config.load(path)
    provider = loaded.settings.provider
    assert provider.api_key is not None and provider.api_key.get_secret_value() == SECRET
    assert provider.api_key_file == conf / "keys" / "api_key"
    assert any(str(locked_keys) in note for note in loaded.notes)


def test_an_unreadable_key_file_named_in_the_config_is_an_error(
    open_dir: Path, locked_keys: Path
) -> None:
    path = write(open_dir, f'[provider]\napi_key_file = "{locked_keys}/api_key"\n', mode=0o644)
    with as_nobody(), pytest.raises(config.ConfigError) as exc:
        config.load(path)
    (problem,) = exc.value.problems
    assert problem.path == "provider.api_key_file"
    assert problem.origin == f"{locked_keys}/api_key"
    assert "Permission denied" in problem.message
