"""install.sh, proved the way the unit runs what it installs.

One install into a throwaway root (`install.sh --destdir`, so /opt and /etc stay
untouched), over a venv that an earlier run left behind made from a Python the service
user cannot reach: install.sh must rebuild it from the system Python. Then the INSTALLED
command runs as an unprivileged user (`runuser -u nobody`), from /, with the unit's
UMask=, a clean environment and $CREDENTIALS_DIRECTORY holding what LoadCredential= gives
(0400 files owned by that user), against the installed config and a fake OpenRouter on
127.0.0.1, and /healthz must answer 200: once with only the API key (the keys/ directory
beside the config is root's 0700, as install.sh makes it), once with a management key too.

The install is given `--state-url-file` (a PostgreSQL URL with a password): the URL
becomes root's 0600 keys/state_url, is never printed, and the installed `check-config`
shows it masked both as root (keys/ beside the config) and as the service user (the
credential state_url the unit passes).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fake_openrouter import API_KEY, MANAGEMENT_KEY, FakeOpenRouter

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    ".demo",
    "*.db*",
)
UNIT = ROOT / "systemd" / "budget-watchdog.service"
STATE_PASSWORD = "st4te-Pa55-never-printed"
STATE_URL = f"postgresql://watchdog:{STATE_PASSWORD}@db.internal:5432/watchdog?sslmode=require"
STATE_SHOWN = "postgresql://watchdog:***@db.internal:5432/watchdog?sslmode=require"
RUNUSER = shutil.which("runuser")
USER = "nobody"  # exists on every Debian/Ubuntu; install.sh checks the venv as this user
SYSTEM_PYTHONS = (Path("/usr/bin/python3"), Path("/usr/local/bin/python3"))  # install.sh's order
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

needs_runuser = pytest.mark.skipif(
    RUNUSER is None or os.geteuid() != 0,
    reason="needs runuser (util-linux) and root, to run the installed service as another user",
)


def install_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DESTDIR", "PYTHON", "BUDGET_WATCHDOG_USER")
        and not k.startswith(("WATCHDOG_", "PYTHON"))
    }
    return env | extra


def install(*args: str, script: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    """Run install.sh of the checkout at `script` (it installs the code beside it)."""
    return subprocess.run(
        ["bash", str(script / "deploy" / "install.sh"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=install_env(**env),
    )


def unit_umask() -> int:
    match = re.search(r"^UMask=([0-7]+)\s*$", UNIT.read_text(), re.MULTILINE)
    return int(match.group(1), 8) if match else 0o077


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@dataclass
class Installed:
    base: Path  # a 0755 scratch directory the test user can enter
    source: Path  # the snapshot of this checkout install.sh ran from
    root: Path  # the --destdir
    output: str
    seconds: float

    @property
    def command(self) -> Path:
        return self.root / "opt/budget-watchdog/bin/budget-watchdog"

    @property
    def config(self) -> Path:
        return self.root / "etc/budget-watchdog/watchdog.toml"


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    if RUNUSER is None or os.geteuid() != 0:
        pytest.skip("needs runuser and root")
    # Not under pytest's tmp_path: /tmp/pytest-of-root is 0700, so nobody could enter it.
    base = Path(tempfile.mkdtemp(prefix="bw-install-test-", dir="/tmp"))
    try:
        base.chmod(0o755)
        root = base / "root"
        # What an earlier run could leave: a venv made from a Python only root can reach
        # (here: through a 0700 directory, like a pyenv under /root), without pip.
        hidden = base / "root-only" / "bin"
        hidden.mkdir(parents=True)
        (base / "root-only").chmod(0o700)
        system_python = next((p for p in SYSTEM_PYTHONS if p.exists()), None)
        if system_python is None:
            pytest.fail("no system Python 3 (.ci/run installs python3 and python3-venv)")
        (hidden / "python3").symlink_to(system_python)
        subprocess.run(
            [
                str(hidden / "python3"),
                "-m",
                "venv",
                "--without-pip",
                str(root / "opt/budget-watchdog"),
            ],
            check=True,
            timeout=60,
        )
        # install.sh from a snapshot of this checkout, so the code it installs is fixed
        # for the module (a re-run below compares it) and can be changed on purpose.
        source = base / "src"
        shutil.copytree(ROOT, source, ignore=SNAPSHOT_IGNORE)
        # The shared state's URL, as an operator would hand it over: a root-only file.
        url_file = base / "root-only" / "state_url"
        url_file.write_text(STATE_URL + "\n")
        url_file.chmod(0o600)
        started = time.monotonic()
        run = install(
            "--destdir",
            str(root),
            "--state-url-file",
            str(url_file),
            script=source,
            BUDGET_WATCHDOG_USER=USER,
        )
        seconds = time.monotonic() - started
        assert run.returncode == 0, run.stdout + run.stderr
        # The keys as the README's steps put them: root's, 0600, in root's 0700 keys/.
        keys = root / "etc/budget-watchdog/keys"
        (keys / "api_key").write_text(API_KEY + "\n")
        (keys / "api_key").chmod(0o600)
        yield Installed(base, source, root, run.stdout, seconds)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@needs_runuser
def test_a_venv_the_service_cannot_run_is_rebuilt_from_the_system_python(
    installed: Installed,
) -> None:
    out = installed.output
    assert "rebuilding it: it was made from" in out, out
    used = re.search(r"^    using (\S+) \(", out, re.MULTILINE)
    assert used and Path(used.group(1)) in SYSTEM_PYTHONS, out
    assert f"runs as {USER}" in out, out
    venv_python = installed.root / "opt/budget-watchdog/bin/python"
    real = venv_python.resolve()
    assert not str(real).startswith(("/root/", "/home/")), real
    config = installed.root / "etc/budget-watchdog/watchdog.toml"
    info = config.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert info.st_gid == pwd.getpwnam(USER).pw_gid  # readable by the service's group
    keys = installed.root / "etc/budget-watchdog/keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700 and keys.stat().st_uid == 0
    print(f"install.sh took {installed.seconds:.1f} s")


def serve_once(installed: Installed, credentials: dict[str, str], name: str) -> dict[str, object]:
    """Start the installed ExecStart= as the unit would, wait for /healthz 200, stop it with
    SIGTERM; return what /healthz said, the log and the state file's mode."""
    user = pwd.getpwnam(USER)
    scratch = installed.base / name
    scratch.mkdir(mode=0o755)
    # systemd: StateDirectory= 0700 and RuntimeDirectory= 0755, both owned by the user;
    # LoadCredential= files 0400 owned by the user in a directory only it can read.
    state, runtime, creds = scratch / "state", scratch / "runtime", scratch / "credentials"
    for directory, mode in ((state, 0o700), (runtime, 0o755), (creds, 0o500)):
        directory.mkdir()
        os.chown(directory, user.pw_uid, user.pw_gid)
        directory.chmod(mode)
    # The unit's SetCredential= defaults, for a host whose keys/ holds neither file.
    credentials = {"state_url": "\n", "server_token": "\n"} | credentials
    for credential, value in credentials.items():
        path = creds / credential
        path.write_text(value)
        os.chown(path, user.pw_uid, user.pw_gid)
        path.chmod(0o400)

    unit = (installed.root / "etc/systemd/system/budget-watchdog.service").read_text()
    match = re.search(r"^ExecStart=(.+)$", unit, re.MULTILINE)
    assert match, unit
    command = [
        str(installed.root) + arg if arg.startswith(("/opt/", "/etc/")) else arg
        for arg in shlex.split(match.group(1))
    ]
    port = free_port()
    fake = FakeOpenRouter().start()
    env = {
        "PATH": CLEAN_PATH,
        "LANG": "C.UTF-8",
        "CREDENTIALS_DIRECTORY": str(creds),
        "WATCHDOG_PROVIDER__BASE_URL": fake.base_url,
        "WATCHDOG_STATE__PATH": str(state / "state.db"),
        "WATCHDOG_KILLSWITCH__PATH": str(runtime / "permit"),
        "WATCHDOG_SERVER__LISTEN": f"127.0.0.1:{port}",
    }
    log_path = scratch / "log"
    as_unit = f'umask {unit_umask():04o} && exec "$@"'  # the unit's UMask=, then ExecStart=
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [RUNUSER or "runuser", "-u", USER, "--", "sh", "-c", as_unit, "sh", *command],
            cwd="/",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    health: dict[str, object] = {"status": None}
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    health = {"status": r.status, "body": json.loads(r.read())}
                    break
            except urllib.error.HTTPError as exc:
                health = {"status": exc.code, "body": exc.read().decode(errors="replace")}
            except OSError:
                pass
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            # SIGTERM to the daemon itself, as systemd's stop does (runuser, told to stop,
            # would kill it after 2 s and report the signal instead of its exit status).
            for pid in children(proc.pid) or [proc.pid]:
                os.kill(pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        fake.stop()
    db = state / "state.db"
    return {
        **health,
        "returncode": proc.returncode,
        "log": log_path.read_text(),
        "state_mode": stat.S_IMODE(db.stat().st_mode) if db.exists() else None,
        "requests": list(fake.requests),
    }


@needs_runuser
def test_the_installed_service_runs_as_its_user_with_only_the_api_key(
    installed: Installed,
) -> None:
    # The crash loop this guards against: keys/ beside the config is root's 0700, and the
    # default lookup of keys/management_key raised PermissionError.
    got = serve_once(installed, {"openrouter_api_key": API_KEY + "\n"}, "api-key-only")
    assert got["status"] == 200, got
    assert got["returncode"] == 0, got["log"]  # SIGTERM: a clean stop
    state_mode = got["state_mode"]
    assert isinstance(state_mode, int) and state_mode & ~(0o777 & ~unit_umask()) == 0, got
    requests = got["requests"]
    assert isinstance(requests, list) and requests
    assert all(headers.get("Authorization") == f"Bearer {API_KEY}" for *_, headers in requests)


@needs_runuser
def test_the_installed_service_runs_with_a_management_key_too(installed: Installed) -> None:
    got = serve_once(
        installed,
        {"openrouter_api_key": API_KEY + "\n", "openrouter_management_key": MANAGEMENT_KEY},
        "with-management-key",
    )
    assert got["status"] == 200, got
    assert got["returncode"] == 0, got["log"]
    requests = got["requests"]
    assert isinstance(requests, list)
    assert any(h.get("Authorization") == f"Bearer {MANAGEMENT_KEY}" for *_, h in requests)


@pytest.mark.slow  # two more installs (~12 s): make test-slow
@needs_runuser
def test_a_rerun_says_whether_the_running_service_needs_a_restart(installed: Installed) -> None:
    args = ("--destdir", str(installed.root))
    same = install(*args, script=installed.source, BUDGET_WATCHDOG_USER=USER)
    assert same.returncode == 0, same.stderr
    assert "reusing it (made from /usr/" in same.stdout, same.stdout
    assert "unchanged: no restart needed" in same.stdout, same.stdout
    with (installed.source / "watchdog" / "log.py").open("a") as module:
        module.write("# an upgrade\n")
    upgraded = install(*args, script=installed.source, BUDGET_WATCHDOG_USER=USER)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "the installed code changed: 0." in upgraded.stdout, upgraded.stdout
    # No systemd here (--destdir): it says how instead of restarting.
    assert "restart it with: systemctl restart budget-watchdog" in upgraded.stdout


# -- the script's own contract, without a full install ---------------------------------------


def test_purge_without_uninstall_is_a_usage_error(tmp_path: Path) -> None:
    run = install("--purge", "--destdir", str(tmp_path / "root"))
    assert run.returncode == 2
    assert "--purge only goes with --uninstall" in run.stderr
    assert not (tmp_path / "root").exists()  # nothing was installed


def test_unknown_options_and_missing_values_are_usage_errors(tmp_path: Path) -> None:
    assert install("--bogus", "--destdir", str(tmp_path)).returncode == 2
    assert install("--destdir", str(tmp_path), "--prefix").returncode == 2
    assert install("--destdir", str(tmp_path), "--prefix", "relative").returncode == 2


def test_uninstall_names_the_destdir_paths_and_purge_removes_them(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/budget-watchdog/keys").mkdir(parents=True)
    (root / "etc/budget-watchdog/watchdog.toml").write_text("")
    (root / "var/lib/budget-watchdog").mkdir(parents=True)
    kept = install("--uninstall", "--destdir", str(root))
    assert kept.returncode == 0, kept.stderr
    assert f"Kept: {root}/etc/budget-watchdog" in kept.stdout
    assert f"{root}/var/lib/budget-watchdog" in kept.stdout
    assert (root / "etc/budget-watchdog/watchdog.toml").exists()
    purged = install("--uninstall", "--purge", "--destdir", str(root))
    assert purged.returncode == 0, purged.stderr
    assert not (root / "etc/budget-watchdog").exists()
    assert not (root / "var/lib/budget-watchdog").exists()


def test_uninstall_refuses_to_delete_a_prefix_that_is_not_a_venv(tmp_path: Path) -> None:
    root = tmp_path / "root"
    precious = root / "srv/data"
    precious.mkdir(parents=True)
    (precious / "file").write_text("keep me")
    run = install("--uninstall", "--destdir", str(root), "--prefix", "/srv/data")
    assert run.returncode == 1
    assert "not a virtualenv" in run.stderr
    assert (precious / "file").read_text() == "keep me"


# -- --state-url-file: the state in PostgreSQL, shared by several hosts ----------------------


@needs_runuser
def test_the_state_url_is_installed_as_roots_credential_and_never_printed(
    installed: Installed,
) -> None:
    keys = installed.root / "etc/budget-watchdog/keys"
    dest = keys / "state_url"
    info = dest.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, 0)
    assert dest.read_text() == STATE_URL + "\n"
    assert f"installed the state's URL as {dest} (600 root; the credential state_url)" in (
        installed.output
    )
    assert STATE_PASSWORD not in installed.output
    assert "The state is in PostgreSQL" in installed.output
    # The config made from the sample names no SQLite path: nothing to comment out.
    state = installed.config.read_text().split("\n[state]\n", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"(?m)^\s*path\s*=", state), state
    assert "commented out [state] path" not in installed.output


def shown_state(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The [state] lines check-config printed; fails on a leaked password or an error."""
    assert result.returncode == 0, result.stderr
    assert STATE_PASSWORD not in result.stdout + result.stderr
    return result.stdout.split("\n[state]\n", 1)[1].split("\n\n", 1)[0].splitlines()


@needs_runuser
def test_check_config_as_root_shows_the_url_masked(installed: Installed) -> None:
    """Root, without systemd's credentials, reads keys/state_url beside the config."""
    result = subprocess.run(
        [str(installed.command), "check-config", "--config", str(installed.config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={"PATH": CLEAN_PATH, "LANG": "C.UTF-8"},
    )
    keys = installed.root / "etc/budget-watchdog/keys"
    assert shown_state(result) == [
        "# path is not used: the state is in PostgreSQL (url)",
        f'url = "{STATE_SHOWN}"',
        f'url_file = "{keys / "state_url"}"',
    ]


@needs_runuser
def test_the_service_user_gets_the_url_as_its_credential(installed: Installed) -> None:
    """What the unit does: LoadCredential=state_url: puts a 0400 copy of keys/state_url in
    $CREDENTIALS_DIRECTORY, owned by the service user, who cannot read keys/ itself."""
    user = pwd.getpwnam(USER)
    scratch = installed.base / "credential-check"
    creds = scratch / "credentials"
    creds.mkdir(parents=True)
    scratch.chmod(0o755)
    given = {
        "state_url": (installed.root / "etc/budget-watchdog/keys/state_url").read_text(),
        "openrouter_api_key": API_KEY + "\n",
    }
    for name, value in given.items():
        (creds / name).write_text(value)
        os.chown(creds / name, user.pw_uid, user.pw_gid)
        (creds / name).chmod(0o400)
    os.chown(creds, user.pw_uid, user.pw_gid)
    creds.chmod(0o500)
    result = subprocess.run(
        [
            RUNUSER or "runuser",
            "-u",
            USER,
            "--",
            str(installed.command),
            "check-config",
            "--config",
            str(installed.config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "CREDENTIALS_DIRECTORY": str(creds)},
    )
    assert shown_state(result) == [
        "# path is not used: the state is in PostgreSQL (url)",
        f'url = "{STATE_SHOWN}"',
        f'url_file = "{creds / "state_url"}"',
    ]


@pytest.mark.slow  # one more install (~8 s): make test-slow
@needs_runuser
def test_a_new_state_url_replaces_the_old_and_comments_out_a_path(
    installed: Installed,
) -> None:
    """An older install's config names the SQLite file; moving to PostgreSQL comments it
    out (a state is kept in one place) and says the service needs a restart."""
    text = installed.config.read_text()
    installed.config.write_text(
        text.replace("\n[state]\n", '\n[state]\npath = "/var/lib/budget-watchdog/state.db"\n')
    )
    moved = STATE_URL.replace("db.internal", "db2.internal")
    url_file = installed.base / "root-only" / "state_url.new"
    url_file.write_text(moved + "\n")
    url_file.chmod(0o600)
    run = install(
        "--destdir",
        str(installed.root),
        "--state-url-file",
        str(url_file),
        script=installed.source,
        BUDGET_WATCHDOG_USER=USER,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert STATE_PASSWORD not in run.stdout + run.stderr
    assert (installed.root / "etc/budget-watchdog/keys/state_url").read_text() == moved + "\n"
    assert "commented out [state] path" in run.stdout
    assert "the state's URL or [state] changed" in run.stdout
    info = installed.config.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert info.st_gid == pwd.getpwnam(USER).pw_gid
    assert '# path = "/var/lib/budget-watchdog/state.db"  # commented out by install.sh' in (
        installed.config.read_text()
    )
    result = subprocess.run(
        [str(installed.command), "check-config", "--config", str(installed.config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={"PATH": CLEAN_PATH, "LANG": "C.UTF-8"},
    )
    assert f'url = "{STATE_SHOWN.replace("db.internal", "db2.internal")}"' in shown_state(result)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "not a readable file"),
        ("", "must hold one line, the postgresql:// URL (it has 0 that are not blank)"),
        (f"{STATE_URL}\n# the old one\n", "must hold one line"),
        (STATE_URL.replace("postgresql", "mysql") + "\n", "does not hold a postgresql://"),
    ],
)
def test_a_state_url_file_that_is_not_one_url_is_a_usage_error(
    tmp_path: Path, content: str | None, said: str
) -> None:
    url_file = tmp_path / "state_url"
    if content is not None:
        url_file.write_text(content)
    root = tmp_path / "root"
    run = install("--destdir", str(root), "--state-url-file", str(url_file))
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"--state-url-file {url_file}: {said}" in run.stderr
    assert STATE_PASSWORD not in run.stdout + run.stderr
    assert not root.exists()  # checked before anything was installed


def test_a_state_url_file_does_not_go_with_uninstall(tmp_path: Path) -> None:
    url_file = tmp_path / "state_url"
    url_file.write_text(STATE_URL)
    run = install("--uninstall", "--destdir", str(tmp_path), "--state-url-file", str(url_file))
    assert run.returncode == 2
    assert "--state-url-file goes with an install" in run.stderr
