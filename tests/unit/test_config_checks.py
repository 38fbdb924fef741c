"""Cross-field checks and how problems are reported: path, source, formatted message."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from watchdog import config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "watchdog.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def refused(path: Path | None) -> config.ConfigError:
    with pytest.raises(config.ConfigError) as exc:
        config.load(path, require_key=False)
    return exc.value


def test_the_permit_ttl_must_cover_two_polls(tmp_path: Path) -> None:
    path = write(tmp_path, '[provider]\npoll_interval = "2m"\n[killswitch]\nttl = "3m"\n')
    (problem,) = refused(path).problems
    assert problem.path == "killswitch.ttl"
    assert problem.message.startswith("3m is less than twice provider.poll_interval (2m)")
    assert "flicker" in problem.message
    ok = write(tmp_path, '[provider]\npoll_interval = "2m"\n[killswitch]\nttl = "4m"\n')
    assert config.load(ok, require_key=False).settings.killswitch.ttl.total_seconds() == 240


def test_stale_after_must_cover_two_polls(tmp_path: Path) -> None:
    path = write(tmp_path, '[provider]\npoll_interval = "6m"\n[killswitch]\nttl = "12m"\n')
    (problem,) = refused(path).problems
    assert problem.path == "budget.stale_after"
    assert "10m is less than twice provider.poll_interval (6m)" in problem.message


def test_the_default_stale_after_fits_a_five_minute_poll(tmp_path: Path) -> None:
    path = write(tmp_path, '[provider]\npoll_interval = "5m"\n[killswitch]\nttl = "10m"\n')
    assert config.load(path, require_key=False).settings.budget.stale_after.total_seconds() == 600


def test_both_two_poll_checks_are_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, '[provider]\npoll_interval = "1h"\n')
    assert {p.path for p in refused(path).problems} == {"killswitch.ttl", "budget.stale_after"}


def test_a_cross_field_check_names_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_KILLSWITCH__TTL", "90s")
    (problem,) = refused(None).problems
    assert str(problem).startswith("At 'killswitch.ttl' (from WATCHDOG_KILLSWITCH__TTL): 90s")


def test_daily_above_monthly_shows_both_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "[budget]\ndaily_limit = 50.5\nmonthly_limit = 10\n")
    (problem,) = refused(path).problems
    assert str(problem) == "At 'budget.daily_limit': daily_limit (50.5) is above monthly_limit (10)"


def test_warning_after_critical_shows_both_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "[budget]\nbuffer_days_warning = 1.5\nbuffer_days_critical = 3\n")
    (problem,) = refused(path).problems
    assert problem.path == "budget.buffer_days_warning"
    assert problem.message.startswith("buffer_days_warning (1.5) is below buffer_days_critical (3)")


def test_both_budget_order_problems_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path, "[budget]\nbuffer_days_warning = 1\ndaily_limit = 50\nmonthly_limit = 10\n"
    )
    found = {p.path for p in refused(path).problems}
    assert found == {"budget.buffer_days_warning", "budget.daily_limit"}


def test_no_message_shows_a_template_placeholder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        """
        [provider]
        poll_interval = "10m"
        [budget]
        daily_limit = 50
        monthly_limit = 10
        [server]
        listen = "0.0.0.0:8787"
        """,
    )
    text = refused(path).report()
    assert "{" not in text and "}" not in text
    path = write(tmp_path, '[provider]\npoll_interval = "10m"\n')
    text = refused(path).report()
    assert "{" not in text and "}" not in text


def test_a_bad_environment_value_is_reported_as_coming_from_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_BUDGET__DAILY_LIMIT", "abc")
    path = write(tmp_path, "[budget]\ndaily_limit = 20\nmonthly_limit = -1\n")
    found = {p.path: p for p in refused(path).problems}
    assert found["budget.daily_limit"].origin == "WATCHDOG_BUDGET__DAILY_LIMIT"
    assert str(found["budget.daily_limit"]).startswith(
        "At 'budget.daily_limit' (from WATCHDOG_BUDGET__DAILY_LIMIT): "
    )
    assert found["budget.monthly_limit"].origin is None  # from the file


def test_the_variable_is_named_as_it_was_spelled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("watchdog_budget__warn_ratio", "2")
    (problem,) = refused(None).problems
    assert problem.origin == "watchdog_budget__warn_ratio"


def test_a_bad_item_of_an_environment_list_names_the_list_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_NOTIFY__TARGETS", '[{"url": "json://h/x", "severities": ["x"]}]')
    (problem,) = refused(None).problems
    assert problem.path == "notify.targets[0].severities[0]"
    assert problem.origin == "WATCHDOG_NOTIFY__TARGETS"


def test_an_unknown_environment_key_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_BUDGET__DAILYLIMIT", "5")
    (problem,) = refused(None).problems
    assert str(problem) == "At 'budget.dailylimit' (from WATCHDOG_BUDGET__DAILYLIMIT): unknown key"


def test_the_report_lists_every_problem_under_one_heading(tmp_path: Path) -> None:
    path = write(tmp_path, '[budget]\nbogus = 1\n[killswitch]\nlatch = "yes"\n')
    assert refused(path).report() == (
        f"Invalid configuration ({path}): 2 errors\n"
        "  At 'budget.bogus': unknown key\n"
        "  At 'killswitch.latch': must be true or false"
    )


def test_pydantic_settings_options_are_not_config_keys(tmp_path: Path) -> None:
    """The file's tables become Settings() keyword arguments; `_env_file` there would be an
    option of pydantic-settings, not a key."""
    (tmp_path / "dotenv").write_text("WATCHDOG_BUDGET__DAILY_LIMIT=1\n")
    path = write(tmp_path, f'_env_file = "{tmp_path}/dotenv"\n_secrets_dir = "/"\n')
    found = {p.path: p.message for p in refused(path).problems}
    assert found == {"_env_file": "unknown key", "_secrets_dir": "unknown key"}


def test_the_file_is_the_weaker_layer_of_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyword arguments of Settings() are where load() puts the file: env wins over them."""
    monkeypatch.setenv("WATCHDOG_BUDGET__DAILY_LIMIT", "7")
    settings = config.Settings(budget={"daily_limit": 3, "monthly_limit": 30})
    assert (settings.budget.daily_limit, settings.budget.monthly_limit) == (7.0, 30.0)


# -- [server] TLS: both files or neither, readable, a matching PEM pair ----------------------

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl binary")
SELF_SIGNED = (
    "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
    "-addext subjectAltName=IP:127.0.0.1 -subj"
)


def pem_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its unencrypted key, made by openssl."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    files = f"-keyout {key} -out {cert}"
    subprocess.run(
        [OPENSSL or "openssl", *SELF_SIGNED.split(), f"/CN={name}", *files.split()],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def tls_config(tmp_path: Path, cert: object, key: object, listen: str = "0.0.0.0:8787") -> Path:
    return write(
        tmp_path,
        f'[server]\nlisten = "{listen}"\ntoken = "t0ken-for-remote-gates"\n'
        f'tls_cert = "{cert}"\ntls_key = "{key}"\n',
    )


@pytest.mark.parametrize(("given", "missing"), [("tls_cert", "tls_key"), ("tls_key", "tls_cert")])
def test_tls_needs_both_files_or_neither(tmp_path: Path, given: str, missing: str) -> None:
    (problem,) = refused(write(tmp_path, f'[server]\n{given} = "/etc/ssl/x.pem"\n')).problems
    assert problem.path == f"server.{missing}"
    assert problem.message == f"{given} is set but {missing} is not: give both (HTTPS) or neither"


@needs_openssl
def test_a_matching_pair_makes_the_endpoint_https(tmp_path: Path) -> None:
    cert, key = pem_pair(tmp_path, "daemon")
    server = config.load(tls_config(tmp_path, cert, key), require_key=False).settings.server
    assert server.tls == (cert, key)
    assert server.scheme == "https"
    assert config.Settings().server.tls is None and config.Settings().server.scheme == "http"


@needs_openssl
def test_relative_tls_paths_are_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    pem_pair(creds, "tls")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    server = config.load(tls_config(tmp_path, "tls.pem", "tls.key"), require_key=False)
    assert server.settings.server.tls == (creds / "tls.pem", creds / "tls.key")


@needs_openssl
def test_a_missing_tls_file_is_an_error_naming_the_key_and_the_file(tmp_path: Path) -> None:
    cert, _ = pem_pair(tmp_path, "daemon")
    missing = tmp_path / "nowhere.key"
    (problem,) = refused(tls_config(tmp_path, cert, missing)).problems
    assert (
        str(problem)
        == f"At 'server.tls_key' (from {missing}): cannot read: No such file or directory"
    )


@needs_openssl
def test_a_key_of_another_certificate_is_an_error(tmp_path: Path) -> None:
    cert, _ = pem_pair(tmp_path, "daemon")
    _, other = pem_pair(tmp_path, "other")
    (problem,) = refused(tls_config(tmp_path, cert, other)).problems
    assert (problem.path, problem.message) == (
        "server.tls_key",
        "is not the key of server.tls_cert",
    )


@needs_openssl
def test_files_swapped_or_not_pem_are_errors_naming_them(tmp_path: Path) -> None:
    cert, key = pem_pair(tmp_path, "daemon")
    problems = refused(tls_config(tmp_path, key, cert)).problems
    assert {(p.path, p.message) for p in problems} == {
        ("server.tls_cert", "holds no PEM certificate"),
        ("server.tls_key", "holds no PEM private key"),
    }


@needs_openssl
def test_an_encrypted_key_is_refused_without_asking_for_a_passphrase(tmp_path: Path) -> None:
    cert, key = pem_pair(tmp_path, "daemon")
    locked = tmp_path / "locked.key"
    encrypt = f"pkey -in {key} -aes256 -passout pass:xyz -out {locked}"
    subprocess.run(
        [OPENSSL or "openssl", *encrypt.split()], check=True, capture_output=True, timeout=60
    )
    (problem,) = refused(tls_config(tmp_path, cert, locked)).problems
    assert problem.path == "server.tls_key" and problem.message.startswith("is encrypted")


# -- start warnings: a token in clear text off loopback ------------------------------------------

CLEAR_TEXT = "server.token is sent in clear text: server.listen (0.0.0.0:8787) is not a loopback"


def test_a_token_off_loopback_without_tls_is_a_start_warning_not_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nlisten = "0.0.0.0:8787"\ntoken = "t0ken-for-remote-gates"\n')
    (warning,) = config.load(path, require_key=False).settings.start_warnings()
    assert warning.startswith(CLEAR_TEXT)
    assert "t0ken-for-remote-gates" not in warning


def test_a_token_on_loopback_is_no_warning() -> None:
    assert config.Settings(server={"token": "t0ken-for-local-use"}).start_warnings() == []


@needs_openssl
def test_a_token_off_loopback_with_tls_is_no_warning(tmp_path: Path) -> None:
    cert, key = pem_pair(tmp_path, "daemon")
    settings = config.load(tls_config(tmp_path, cert, key), require_key=False).settings
    assert settings.start_warnings() == []


def test_check_config_prints_the_start_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from watchdog.cli import main

    path = write(
        tmp_path,
        '[provider]\napi_key = "sk-or-v1-0123456789abcdef"\n'
        '[server]\nlisten = "0.0.0.0:8787"\ntoken = "t0ken-for-remote-gates"\n',
    )
    assert main(["check-config", "--config", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {CLEAR_TEXT}" in err
    assert "t0ken-for-remote-gates" not in err


# -- [server] token: given, or from token_file / the credential server_token -----------------

TOKEN = "t0ken-from-a-file-0123456789"


def test_a_token_file_is_read_as_keys_are(tmp_path: Path) -> None:
    token_file = tmp_path / "server_token"
    token_file.write_text(f"\ufeff{TOKEN}\n")
    path = write(tmp_path, f'[server]\nlisten = "0.0.0.0:8787"\ntoken_file = "{token_file}"\n')
    settings = config.load(path, require_key=False).settings
    assert settings.server.token.get_secret_value() == TOKEN
    assert settings.server.token_file == token_file
    assert TOKEN in settings.secrets()


def test_the_credential_server_token_satisfies_a_listen_off_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "server_token").write_text(TOKEN + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    path = write(tmp_path, '[server]\nlisten = "0.0.0.0:8787"\n')
    server = config.load(path, require_key=False).settings.server
    assert server.token.get_secret_value() == TOKEN
    assert server.token_file == creds / "server_token"


def test_keys_server_token_beside_the_config_is_found_too(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir(mode=0o700)
    (tmp_path / "keys" / "server_token").write_text(TOKEN)
    path = write(tmp_path, '[server]\nlisten = "0.0.0.0:8787"\n')
    assert config.load(path, require_key=False).settings.server.token.get_secret_value() == TOKEN


def test_a_token_given_directly_wins_over_the_files(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir(mode=0o700)
    (tmp_path / "keys" / "server_token").write_text(TOKEN)
    path = write(tmp_path, '[server]\ntoken = "given-directly-0123"\n')
    server = config.load(path, require_key=False).settings.server
    assert server.token.get_secret_value() == "given-directly-0123"


def test_a_blank_credential_leaves_a_listen_off_loopback_without_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "server_token").write_text("\n")  # the unit's SetCredential= default
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    (problem,) = refused(write(tmp_path, '[server]\nlisten = "0.0.0.0:8787"\n')).problems
    assert str(problem) == (
        "At 'server.token': required when server.listen (0.0.0.0:8787) is not a loopback address"
    )
    assert config.load(write(tmp_path, ""), require_key=False).settings.server.token_file is None


@pytest.mark.parametrize(
    ("content", "said"),
    [(None, "cannot read: No such file or directory"), ("", "is empty"), ("a b", "whitespace")],
)
def test_a_token_file_that_holds_no_token_is_an_error_naming_it(
    tmp_path: Path, content: str | None, said: str
) -> None:
    token_file = tmp_path / "server_token"
    if content is not None:
        token_file.write_text(content)
    path = write(tmp_path, f'[server]\nlisten = "0.0.0.0:8787"\ntoken_file = "{token_file}"\n')
    (problem,) = refused(path).problems  # and no second "required" for the same cause
    assert (problem.path, problem.origin) == ("server.token_file", str(token_file))
    assert said in problem.message
