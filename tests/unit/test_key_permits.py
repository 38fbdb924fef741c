"""Per-key permits: the daemon's writer (`permitfile.KeyPermits`) and `gate --key`.

Key files are written by the real writer into tmp_path, the account permit beside them as
the daemon writes it (with `keys_epoch`), and gate runs with a fixed clock.
"""

from __future__ import annotations

import gc
import json
import os
import re
import stat
import subprocess
import sys
import threading
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watchdog import atomicfile, gate, permitfile
from watchdog.permit_json import key_file_name
from watchdog.permitfile import KeyPermit, KeyPermits

NOW = datetime(2026, 11, 27, 14, tzinfo=UTC)
TTL = timedelta(minutes=5)
SAFE = re.compile(r"[A-Za-z0-9_%-]+(~[0-9a-f]{32})?")


def at(when: datetime = NOW) -> float:
    return when.timestamp()


def files(directory: Path) -> list[str]:
    """The permit files in a keys directory: not the dot files beside them (the spares
    each is swapped with, the writer's lock); no key's file name starts with a dot."""
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def armed(name: str, headroom: float | None = None, key_hash: str | None = None) -> KeyPermit:
    return KeyPermit(name, key_hash or f"h-{name}", True, "", headroom)


def revoked(name: str, reason: str, headroom: float | None = None) -> KeyPermit:
    return KeyPermit(name, f"h-{name}", False, reason, headroom)


def states(*permits: KeyPermit) -> dict[str, KeyPermit]:
    return {p.name: p for p in permits}


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def account(
    tmp_path: Path, keys_epoch: object = "absent", issued: datetime = NOW, **overrides: object
) -> Path:
    """The account permit as the daemon writes it (keys_epoch given, or left out)."""
    path = tmp_path / "permit"
    if keys_epoch == "absent":
        body = permitfile.permit_body(issued, TTL, 80.0, 6.0, 12.0)
        del body["keys_epoch"]
    else:
        body = permitfile.permit_body(issued, TTL, 80.0, 6.0, 12.0)
        body["keys_epoch"] = keys_epoch
    body.update(overrides)
    path.write_text(json.dumps(body))
    return path


def daemon(
    tmp_path: Path, *permits: KeyPermit, clock: Clock | None = None, issued: datetime = NOW
) -> tuple[Path, KeyPermits]:
    """A daemon run: key files for `permits` (issued by `clock`) and the account permit
    (issued at `issued`) vouching for them."""
    path = tmp_path / "permit"
    keys = KeyPermits(permitfile.keys_directory(path), clock or Clock())
    epoch = keys.start()
    keys.sync(states(*permits))
    account(tmp_path, epoch, issued=issued)
    return path, keys


@pytest.fixture
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """gate.main reads the clock at NOW (only gate's view of `time` changes)."""
    monkeypatch.setattr(gate, "time", types.SimpleNamespace(time=lambda: at()))
    for name in ("WATCHDOG_CONFIG", "WATCHDOG_KILLSWITCH__PATH", "WATCHDOG_KILLSWITCH__TTL"):
        monkeypatch.delenv(name, raising=False)


def run(capsys: pytest.CaptureFixture[str], path: Path, *args: str) -> tuple[int, str]:
    code = gate.main(["--permit", str(path), *args])
    return code, capsys.readouterr().err


# -- file names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "file_name"),
    [
        ("batch-1", "batch-1"),
        ("Batch_2", "Batch_2"),
        ("a/b", "a%2Fb"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        (".hidden", "%2Ehidden"),
        ("a b", "a%20b"),
        ("a.b", "a%2Eb"),
        ("100%", "100%25"),
        ("a%2Fb", "a%252Fb"),
        ("ü", "%C3%BC"),
        ("键", "%E9%94%AE"),
        ("x\ny", "x%0Ay"),
    ],
)
def test_a_key_name_becomes_a_safe_file_name(name: str, file_name: str) -> None:
    assert key_file_name(name) == file_name


@pytest.mark.parametrize("name", ["", "\0", "a\0b", "\udcff"])
def test_a_name_no_key_has_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a key's name"):
        key_file_name(name)


def test_a_long_name_is_cut_and_hashed_within_name_max() -> None:
    names = ["键" * 40, "键" * 40 + "x", "x" * 231, "x" * 232, "x" * 230]
    files = [key_file_name(n) for n in names]
    assert len(set(files)) == len(names)
    # At most 230 bytes: the writer's temp file ".NAME.XXXXXXXX.tmp" must fit in 255 too.
    assert all(len(f.encode()) <= 230 and SAFE.fullmatch(f) for f in files)
    assert files[-1] == "x" * 230  # 230 bytes fit as they are
    assert "~" in files[0] and "%" not in files[0][-35:-33]  # no %XX cut in half


# -- the writer ------------------------------------------------------------------------------------


def test_a_key_file_is_padded_to_a_few_sizes_and_reads_whole_after_a_longer_one(
    tmp_path: Path, fixed_now: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files are padded (spaces before the newline) to a multiple of PAD_TO bytes, so a
    rewrite writes over its spare without cutting it; a short permit after a long one
    still reads whole, for json and for gate's own parser."""
    long_reason = "over its daily cap; " * 30
    path, keys = daemon(tmp_path, revoked("a", long_reason))
    file = permitfile.keys_directory(path) / "a"
    for permit in (armed("a", 4.8), revoked("a", long_reason), armed("a", 1.2), armed("a")):
        keys.update(states(permit))
        data = file.read_bytes()
        assert len(data) % permitfile.PAD_TO == 0 and data.endswith(b" \n")
        body = json.loads(data)
        assert (body["state"], body["reason"], body["headroom_usd"]) == (
            "armed" if permit.armed else "revoked",
            permit.reason,
            permit.headroom,
        )
    assert run(capsys, path, "--key", "a")[0] == 0


def test_start_makes_a_0755_directory_and_a_new_epoch(tmp_path: Path) -> None:
    directory = tmp_path / "run" / "permit.keys"
    old = os.umask(0o077)
    try:
        keys = KeyPermits(directory, Clock())
        before = keys.epoch
        epoch = keys.start()
    finally:
        os.umask(old)
    assert before is None
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    assert re.fullmatch(r"[0-9a-f]{16}", epoch) and keys.epoch == epoch
    assert KeyPermits(directory, Clock()).start() != epoch


def test_start_removes_an_earlier_runs_files(tmp_path: Path) -> None:
    directory = tmp_path / "permit.keys"
    earlier = KeyPermits(directory, Clock())
    earlier.start()
    earlier.sync(states(armed("a"), armed("b")))
    (directory / ".b.x1y2.tmp").write_text("{")  # a temp file a crash left
    (directory / "stray").symlink_to(tmp_path / "nowhere")
    keys = KeyPermits(directory, Clock())
    keys.start()
    assert [p.name for p in directory.iterdir()] == [".lock"]  # held while it runs
    assert keys.sync(states(armed("a"))) == 1
    epoch = keys.epoch
    assert keys.start() != epoch  # started again: all new
    assert keys.sync(states(armed("a"))) == 1
    assert json.loads((directory / "a").read_text())["epoch"] == keys.epoch


def test_sync_writes_each_key_as_a_flat_world_readable_object(tmp_path: Path) -> None:
    directory = tmp_path / "permit.keys"
    keys = KeyPermits(directory, Clock())
    epoch = keys.start()
    old = os.umask(0o077)
    try:
        written = keys.sync(
            states(armed("batch/1", 12.345), revoked("ui", "daily cap reached", None))
        )
    finally:
        os.umask(old)
    assert written == 2
    assert files(directory) == ["batch%2F1", "ui"]  # no temp file
    assert json.loads((directory / "batch%2F1").read_text()) == {
        "key": "batch/1",
        "hash": "h-batch/1",
        "state": "armed",
        "reason": "",
        "epoch": epoch,
        "issued_at": NOW.isoformat(),
        "headroom_usd": 12.0,  # two significant digits, rounded down
    }
    ui = json.loads((directory / "ui").read_text())
    assert (ui["state"], ui["reason"], ui["headroom_usd"]) == ("revoked", "daily cap reached", None)
    assert stat.S_IMODE((directory / "ui").stat().st_mode) == 0o644


def test_only_changed_keys_are_rewritten(tmp_path: Path) -> None:
    directory = tmp_path / "permit.keys"
    clock = Clock()
    keys = KeyPermits(directory, clock)
    keys.start()
    names = [f"key-{i}" for i in range(50)]
    assert keys.sync(states(*(armed(n, 10.0) for n in names))) == 50

    def inodes() -> dict[str, int]:  # an atomic rewrite is a new inode
        return {name: (directory / name).stat().st_ino for name in files(directory)}

    before = inodes()
    clock.now = NOW + timedelta(minutes=1)
    assert keys.sync(states(*(armed(n, 10.0) for n in names))) == 0
    assert inodes() == before
    # Under a cent more or less is no change; a cent is; a new reason only when revoked.
    changed = states(*(armed(n, 10.0) for n in names))
    changed["key-1"] = armed("key-1", 10.004)
    changed["key-2"] = armed("key-2", 9.99)
    changed["key-3"] = KeyPermit("key-3", "h-key-3", True, "ignored while armed", 10.0)
    changed["key-4"] = revoked("key-4", "spike", 10.0)
    changed["key-5"] = armed("key-5", 10.0, key_hash="h-replaced")
    changed["key-6"] = armed("key-6", None)
    assert keys.sync(changed) == 4
    after = inodes()
    assert {n for n in names if after[n] != before[n]} == {"key-2", "key-4", "key-5", "key-6"}
    assert json.loads((directory / "key-2").read_text())["issued_at"] == clock.now.isoformat()
    changed["key-4"] = revoked("key-4", "spike, still", 10.0)
    assert keys.sync(changed) == 1


def test_keys_gone_from_the_account_lose_their_files(tmp_path: Path) -> None:
    directory = tmp_path / "permit.keys"
    keys = KeyPermits(directory, Clock())
    keys.start()
    keys.sync(states(armed("a"), armed("b"), armed("c d")))
    assert keys.sync(states(armed("a"))) == 2
    assert files(directory) == ["a"]
    assert keys.sync(states(armed("a"), armed("b"))) == 1  # back: written again


def test_clear_removes_every_file_and_the_next_sync_writes_them_again(tmp_path: Path) -> None:
    directory = tmp_path / "permit.keys"
    keys = KeyPermits(directory, Clock())
    epoch = keys.start()
    keys.sync(states(armed("a"), armed("b")))
    assert keys.clear() == 2
    assert [p.name for p in directory.iterdir()] == [".lock"] and keys.epoch == epoch
    assert keys.sync(states(armed("a"), armed("b"))) == 2


def test_names_that_are_paths_or_other_scripts_get_distinct_files_inside(tmp_path: Path) -> None:
    directory = tmp_path / "d" / "permit.keys"
    names = [
        "a/b",
        "a%2Fb",
        "..",
        ".",
        "../permit",
        ".hidden",
        "a b",
        "a.b",
        "\u00fc",
        "u\u0308",
        "键" * 90,
    ]
    keys = KeyPermits(directory, Clock())
    keys.start()
    assert keys.sync(states(*(armed(n) for n in names))) == len(names)
    written = files(directory)
    assert len(written) == len(names) and all(SAFE.fullmatch(f) for f in written)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["permit.keys"]
    for name in names:
        assert json.loads((directory / key_file_name(name)).read_text())["key"] == name


def test_a_name_no_file_can_have_is_skipped(tmp_path: Path) -> None:
    keys = KeyPermits(tmp_path / "permit.keys", Clock())
    keys.start()
    assert keys.sync(states(armed(""), armed("a\0b"), armed("ok"))) == 1


def test_sync_needs_start_and_consistent_names(tmp_path: Path) -> None:
    keys = KeyPermits(tmp_path / "permit.keys", Clock())
    with pytest.raises(RuntimeError):
        keys.sync({})
    keys.start()
    with pytest.raises(ValueError):
        keys.sync({"a": armed("b")})


def test_a_failed_rewrite_propagates_and_leaves_no_file_saying_too_much(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "permit.keys"
    keys = KeyPermits(directory, Clock())
    keys.start()
    keys.sync(states(armed("a"), armed("b")))

    def full(path: Path, spare: Path, data: bytes, mode: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomicfile, "rewrite", full)
    with pytest.raises(OSError):
        keys.sync(states(revoked("a", "spike"), armed("b")))
    assert files(directory) == ["b"]  # a's "armed" is gone
    monkeypatch.undo()
    assert keys.sync(states(revoked("a", "spike"), armed("b"))) == 1  # tried again


def test_syncs_from_two_threads_end_in_one_consistent_directory(tmp_path: Path) -> None:
    directory = tmp_path / "permit.keys"
    keys = KeyPermits(directory, Clock())
    keys.start()

    def churn(offset: int) -> None:
        for i in range(40):
            keys.sync(states(*(armed(f"k{j}", float(i + offset)) for j in range(5))))

    threads = [threading.Thread(target=churn, args=(n,)) for n in (0, 100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = states(*(armed(f"k{j}", 1.0) for j in range(5)))
    keys.sync(final)
    assert files(directory) == [f"k{j}" for j in range(5)]
    spares = {p.name for p in directory.iterdir() if p.name.startswith(".")} - {".lock"}
    assert spares == {f".k{j}.spare" for j in range(5)}  # nothing else left beside them
    assert all(
        json.loads((directory / f).read_text())["headroom_usd"] == 1.0 for f in files(directory)
    )


@pytest.mark.parametrize(("given", "written"), [(-3.0, 0.0), (float("nan"), 0.0), (1e400, None)])
def test_a_headroom_that_is_no_amount_is_written_safely(
    tmp_path: Path, given: float, written: float | None
) -> None:
    keys = KeyPermits(tmp_path / "permit.keys", Clock())
    keys.start()
    keys.sync(states(armed("a", given)))
    assert json.loads((tmp_path / "permit.keys" / "a").read_text())["headroom_usd"] == written


# -- gate --key ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("fixed_now")
def test_an_armed_key_under_an_armed_account_is_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = daemon(tmp_path, armed("batch-1", 5.0))
    assert run(capsys, path, "--key", "batch-1", "--cost", "3") == (0, "go\n")
    assert gate.check(cost=3, permit=str(path), now=at(), key="batch-1").go


@pytest.mark.usefixtures("fixed_now")
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("removed", "no permit at"),
        ("state", "the permit's state is 'revoked', not 'armed'"),
        ("expired", "the permit expired 5 min ago"),
    ],
)
def test_a_revoked_account_is_no_go_whatever_the_key_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str, reason: str
) -> None:
    path, keys = daemon(tmp_path, armed("batch-1", 5.0))
    if change == "removed":
        path.unlink()
    elif change == "state":
        account(tmp_path, keys.epoch, state="revoked")
    else:
        account(tmp_path, keys.epoch, issued=NOW - 2 * TTL)
    code, err = run(capsys, path, "--key", "batch-1")
    assert code == 1 and reason in err


@pytest.mark.usefixtures("fixed_now")
def test_a_revoked_key_is_no_go_with_its_reason_and_other_keys_still_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = "$5.10 spent today, over the key's $5.00 daily cap"
    path, _ = daemon(tmp_path, revoked("batch-1", reason), armed("batch-2"))
    assert run(capsys, path, "--key", "batch-1") == (1, f"no-go: key 'batch-1': {reason}\n")
    assert run(capsys, path, "--key", "batch-2")[0] == 0
    assert run(capsys, path)[0] == 0  # the account itself is armed


@pytest.mark.usefixtures("fixed_now")
def test_a_revocation_reason_is_one_line_and_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = daemon(tmp_path, revoked("k", "line one\nline two\x1b[31m" + "x" * 1000), armed("e"))
    code, err = run(capsys, path, "--key", "k")
    assert code == 1 and err.count("\n") == 1 and "\x1b" not in err and len(err) < 400
    write_key(tmp_path, "e", state="revoked", reason="")
    assert "revoked (no reason given)" in run(capsys, path, "--key", "e")[1]


@pytest.mark.usefixtures("fixed_now")
def test_key_files_of_an_earlier_run_are_no_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, keys = daemon(tmp_path, armed("batch-1"))
    account(tmp_path, "feedfacefeedface")  # a later run's account permit, its keys not synced
    code, err = run(capsys, path, "--key", "batch-1")
    assert (code, err) == (
        1,
        "no-go: key 'batch-1': its permit is from an earlier run of the watchdog\n",
    )
    # The next run starts by emptying the directory: no permit for the key until it syncs.
    later = KeyPermits(keys.directory, Clock())
    account(tmp_path, later.start())
    assert "the watchdog keeps no permit for it" in run(capsys, path, "--key", "batch-1")[1]
    later.sync(states(armed("batch-1")))
    assert run(capsys, path, "--key", "batch-1")[0] == 0


@pytest.mark.usefixtures("fixed_now")
def test_a_key_the_watchdog_keeps_no_permit_for_is_no_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = daemon(tmp_path, armed("batch-1"))
    assert run(capsys, path, "--key", "other") == (
        1,
        "no-go: key 'other': the watchdog keeps no permit for it (not a key of the account, "
        "or not listed yet)\n",
    )
    code, err = run(capsys, path, "--key", "f01d5260" * 8)  # a key's hash, not its name
    assert code == 1 and err.endswith(
        "give the key's name: its permit file is named after it, not its hash\n"
    )


@pytest.mark.usefixtures("fixed_now")
@pytest.mark.parametrize("keys_epoch", [None, "absent"])
def test_without_per_key_permits_a_key_is_no_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys_epoch: object
) -> None:
    path = account(tmp_path, keys_epoch)
    assert run(capsys, path)[0] == 0  # the account alone is go
    assert run(capsys, path, "--key", "batch-1") == (
        1,
        "no-go: key 'batch-1': the watchdog keeps no per-key permits (it needs a management key)\n",
    )


@pytest.mark.usefixtures("fixed_now")
def test_a_keys_epoch_of_the_wrong_type_makes_the_account_permit_no_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = account(tmp_path, 7)
    assert run(capsys, path) == (1, "no-go: the permit's keys_epoch is 7, not a string or null\n")
    assert run(capsys, path, "--key", "k")[0] == 1


@pytest.mark.usefixtures("fixed_now")
def test_the_cost_must_fit_the_keys_headroom_and_the_accounts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = daemon(tmp_path, armed("small", 2.0), armed("large", 50.0), armed("open", None))
    assert run(capsys, path, "--key", "small", "--cost", "3") == (
        1,
        "no-go: key 'small': a $3.00 job exceeds the $2.00 of headroom left\n",
    )
    assert run(capsys, path, "--key", "small", "--cost", "2")[0] == 0
    assert run(capsys, path, "--key", "open", "--cost", "11")[0] == 0
    # The account's $12.00 rules a key with more.
    assert run(capsys, path, "--key", "large", "--cost", "13") == (
        1,
        "no-go: a $13.00 job exceeds the $12.00 of headroom left\n",
    )


@pytest.mark.usefixtures("fixed_now")
def test_a_runway_floor_is_the_accounts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = daemon(tmp_path, armed("k"))
    assert run(capsys, path, "--key", "k", "--min-runway-days", "5")[0] == 0
    code, err = run(capsys, path, "--key", "k", "--min-runway-days", "7")
    assert code == 1 and "credit lasts 6.0 days" in err and "key 'k'" not in err


@pytest.mark.usefixtures("fixed_now")
def test_a_key_file_issued_in_the_future_is_no_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = daemon(tmp_path, armed("k"), clock=Clock(NOW + timedelta(seconds=4)))
    assert run(capsys, path, "--key", "k")[0] == 0  # within the clocks' slack
    daemon(tmp_path, armed("k"), clock=Clock(NOW + timedelta(minutes=2)))
    assert run(capsys, path, "--key", "k") == (
        1,
        "no-go: key 'k': its permit was issued 2 min in the future: the writer's clock runs "
        "ahead of this one\n",
    )


@pytest.mark.usefixtures("fixed_now")
def test_an_old_key_file_of_this_run_is_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Key files are not leased: the account permit's lease covers them."""
    path, _ = daemon(tmp_path, armed("k"), clock=Clock(NOW - timedelta(days=3)))
    assert run(capsys, path, "--key", "k")[0] == 0


@pytest.mark.usefixtures("fixed_now")
@pytest.mark.parametrize(
    ("names", "ask"),
    [(["a/b", "a%2Fb"], "a/b"), ([".."], ".."), (["a b"], "a b"), (["ü"], "ü"), ([".x"], ".x")],
)
def test_names_that_are_paths_or_other_scripts_gate_on_their_own_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], names: list[str], ask: str
) -> None:
    path, _ = daemon(tmp_path, *(revoked(n, "not this one") for n in names if n != ask), armed(ask))
    assert run(capsys, path, "--key", ask)[0] == 0


def write_key(tmp_path: Path, name: str, **overrides: object) -> Path:
    """Rewrite `name`'s key file with some fields changed ("drop" drops one)."""
    key_file = tmp_path / "permit.keys" / key_file_name(name)
    body = json.loads(key_file.read_text())
    body.update(overrides)
    key_file.write_text(json.dumps({k: v for k, v in body.items() if v != "drop"}))
    return key_file


@pytest.mark.usefixtures("fixed_now")
@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"state": "paused"}, "its permit's state is 'paused', not 'armed'"),
        ({"state": "drop"}, "its permit's state is None, not 'armed'"),
        ({"reason": 5}, "its permit's reason is 5, not a string"),
        ({"issued_at": "yesterday"}, "its permit's issued_at is 'yesterday', not an ISO-8601"),
        ({"issued_at": "drop"}, "its permit's issued_at is None, not an ISO-8601 time"),
        ({"headroom_usd": "lots"}, "its permit's headroom_usd is 'lots', not a number or null"),
        ({"headroom_usd": True}, "its permit's headroom_usd is True, not a number or null"),
        ({"headroom_usd": "drop"}, "its permit has no headroom_usd (a number or null)"),
        ({"headroom_usd": -1}, "its permit's headroom_usd is negative (-$1.00)"),
        ({"epoch": "drop"}, "its permit is from an earlier run of the watchdog"),
        ({"key": "other"}, "is the permit of key 'other'"),
    ],
)
def test_a_key_file_of_the_wrong_shape_is_no_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: dict[str, object], reason: str
) -> None:
    path, _ = daemon(tmp_path, armed("k", 5.0))
    write_key(tmp_path, "k", **overrides)
    code, err = run(capsys, path, "--key", "k")
    assert code == 1 and err.startswith("no-go: key 'k': ") and reason in err


@pytest.mark.usefixtures("fixed_now")
@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("directory", "is a directory, not a regular file"),
        ("fifo", "is a FIFO, not a regular file"),
        ("huge", "is larger than 64 KiB: not a permit"),
        ("json", "is not valid JSON of the permit's shape"),
        ("nested", "is not valid JSON of the permit's shape (expected a value)"),
        ("bytes", "is not UTF-8 text: not a permit"),
        ("empty", "is not valid JSON of the permit's shape"),
    ],
)
def test_a_key_file_that_is_no_permit_is_no_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, reason: str
) -> None:
    path, _ = daemon(tmp_path, armed("other"))
    key_file = tmp_path / "permit.keys" / "k"
    if kind == "directory":
        key_file.mkdir()
    elif kind == "fifo":
        os.mkfifo(key_file)
    elif kind == "huge":
        key_file.write_text(" " * 70_000 + "{}")
    elif kind == "json":
        key_file.write_text('{"state": "armed",')
    elif kind == "nested":
        key_file.write_text('{"state": {"armed": true}}')
    elif kind == "bytes":
        key_file.write_bytes(b'{"state": "\xff"}')
    else:
        key_file.write_text("")
    code, err = run(capsys, path, "--key", "k")
    assert code == 1 and err.startswith(f"no-go: key 'k': its permit {key_file} ")
    assert reason in err


def test_the_key_gate_path_imports_only_its_own_modules(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    path, _ = daemon(tmp_path, armed("batch/1"), clock=Clock(now), issued=now)
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from watchdog.entry import main\n"
        f"assert main(['gate', '--permit', {str(path)!r}, '--key', 'batch/1', '--quiet']) == 0\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    assert sorted(out) == ["watchdog", "watchdog.entry", "watchdog.gate", "watchdog.permit_json"]


def test_update_touches_only_what_changed_and_headroom_is_coarse(tmp_path: Path) -> None:
    directory = tmp_path / "permit.keys"
    keys = KeyPermits(directory, lambda: NOW)
    keys.start()
    assert keys.sync(states(armed("a", 4.87), armed("b", 0.376), armed("c", 1234.5))) == 3
    heads = {f: json.loads((directory / f).read_text())["headroom_usd"] for f in files(directory)}
    assert heads == {"a": 4.8, "b": 0.37, "c": 1200.0}  # down to two digits, never up
    inode = (directory / "b").stat().st_ino
    # a spent a little (same two digits): nothing to write; c was deleted.
    assert keys.update(states(armed("a", 4.81)), removed=["c"]) == 1
    assert files(directory) == ["a", "b"]
    assert (directory / "b").stat().st_ino == inode
    assert keys.update(states(revoked("a", "daily limit", None))) == 1
    assert json.loads((directory / "a").read_text())["state"] == "revoked"


def test_a_name_at_the_limit_is_written_with_its_temp_file(tmp_path: Path) -> None:
    keys = KeyPermits(tmp_path / "permit.keys", lambda: NOW)
    keys.start()
    long = "夜間バッチ処理パイプライン本番環境用の要約ジョブ第二版"  # 243 bytes once encoded
    assert keys.sync(states(armed(long), armed("x" * 230))) == 2


@pytest.mark.usefixtures("fixed_now")
def test_a_key_file_read_between_two_rewrites_is_read_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read held across two rewrites (the spare written over) finds the file empty, cut
    or mixed: gate reads until two reads in a row agree and answers from that."""
    path, _ = daemon(tmp_path, armed("k", 5.0))
    real, reads = gate._read, []

    def caught_once(p: str) -> tuple[str | None, str | None]:
        text, problem = real(p)
        reads.append(p)
        if p.endswith("permit.keys/k") and reads.count(p) == 1:
            return (text or "")[:7], problem  # the first read met a rewrite
        return text, problem

    monkeypatch.setattr(gate, "_read", caught_once)
    assert run(capsys, path, "--key", "k", "--cost", "3") == (0, "go\n")
    assert reads.count(str(tmp_path / "permit.keys" / "k")) == 3  # cut, whole, whole again
    # Cut the same way twice in a row: what it says is judged (here: no-go, not JSON).
    monkeypatch.setattr(gate, "_read", lambda p: ("{", None) if p.endswith("/k") else real(p))
    code, err = run(capsys, path, "--key", "k")
    assert code == 1 and "is not valid JSON of the permit's shape" in err
    # Never the same twice: no-go.
    texts = iter(range(100))
    monkeypatch.setattr(
        gate, "_read", lambda p: (f"{next(texts)}", None) if p.endswith("/k") else real(p)
    )
    code, err = run(capsys, path, "--key", "k")
    assert code == 1 and "kept changing while it was read (4 reads)" in err


def test_something_not_ours_at_a_spare_never_keeps_a_key_armed(tmp_path: Path) -> None:
    """A directory where a key's spare goes (planted, or left by a restore) neither stops
    the key's file from being removed nor other keys' revocations from being written."""
    directory = tmp_path / "permit.keys"
    keys = KeyPermits(directory, Clock())
    keys.start()
    keys.sync(states(armed("a"), armed("b")))
    keys.sync(states(armed("a", 1.0), armed("b", 1.0)))  # both have spares now
    for name in ("a", "b"):
        (directory / f".{name}.spare").unlink()
        (directory / f".{name}.spare").mkdir()
    keys.update({"b": revoked("b", "daily cap")}, removed=["a"])  # a is gone, b revoked
    assert files(directory) == ["b"]
    assert json.loads((directory / "b").read_text())["state"] == "revoked"
    keys.update({"b": armed("b", 2.0)})
    assert json.loads((directory / "b").read_text())["state"] == "armed"
    assert (directory / ".b.spare").is_dir()  # left alone: not ours to remove


def test_a_directory_at_a_keys_file_is_never_swapped_in_as_its_spare(tmp_path: Path) -> None:
    directory = tmp_path / "permit.keys"
    keys = KeyPermits(directory, Clock())
    keys.start()
    (directory / "a").mkdir()
    with pytest.raises(OSError):
        keys.sync(states(armed("a")))
    assert (directory / "a").is_dir() and not (directory / ".a.spare").is_dir()


def test_a_fifo_at_a_spare_does_not_hang_the_writer(tmp_path: Path) -> None:
    directory = tmp_path / "permit.keys"
    keys = KeyPermits(directory, Clock())
    keys.start()
    keys.sync(states(armed("a")))
    (directory / ".a.spare").unlink()
    os.mkfifo(directory / ".a.spare")
    done = threading.Event()

    def revoke() -> None:
        keys.sync(states(revoked("a", "x")))
        done.set()

    worker = threading.Thread(target=revoke)
    worker.start()
    worker.join(timeout=10)
    assert done.is_set(), "the rewrite waited for a reader of the FIFO"
    assert json.loads((directory / "a").read_text())["state"] == "revoked"


def test_a_second_process_writing_the_same_keys_directory_is_refused(tmp_path: Path) -> None:
    """Two writers would swap each other's spares in (a key back to an older "armed"):
    the directory has one writer, and a second daemon is told whose it is."""
    directory = tmp_path / "permit.keys"
    ours = KeyPermits(directory, Clock())
    ours.start()
    code = (
        "import sys; from datetime import datetime, UTC; from pathlib import Path; "
        "from watchdog.permitfile import KeyPermits, KeyPermitsLocked\n"
        "try:\n"
        f"    KeyPermits(Path({str(directory)!r}), lambda: datetime.now(UTC)).start()\n"
        "except KeyPermitsLocked as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 3, done.stderr
    assert f"another budget-watchdog (pid {os.getpid()}) writes" in done.stdout
    assert "give this one its own killswitch.path" in done.stdout
    del ours  # the lock goes with the last of this process's writers of the directory
    gc.collect()
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr


def test_after_clear_a_reservations_change_writes_no_file_back(tmp_path: Path) -> None:
    directory = tmp_path / "permit.keys"
    keys = KeyPermits(directory, Clock())
    keys.start()
    keys.sync(states(armed("a", 5.0, key_hash="ha")))
    keys.clear()
    assert keys.hold({"ha": 1.0}) == 0 and files(directory) == []
