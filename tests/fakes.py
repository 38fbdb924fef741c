"""Hand-written fakes for the narrow interfaces (clock, provider)."""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from watchdog.core import burn
from watchdog.core import keys as keyrules
from watchdog.core.decide import Inputs, KeyInputs, Outcome, decide
from watchdog.core.model import (
    AlertState,
    KeyUsage,
    KnownKey,
    Override,
    Policy,
    PollHealth,
    Recipient,
    Sample,
    Snapshot,
    Trip,
)
from watchdog.core.permit import PermitState
from watchdog.providers.base import AccountAdmin, KeyIdentity, Provider, ProviderError

if TYPE_CHECKING:
    from pathlib import Path

    from tests.fake_openrouter import FakeOpenRouter
    from watchdog.config import Settings
    from watchdog.notify import Target
    from watchdog.tick import Tick


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


class ScriptedProvider:
    """Answers fetch() from a script: a usage number, a Snapshot, or an error to raise."""

    def __init__(
        self, clock: Clock, script: Iterable[float | Snapshot | ProviderError] = ()
    ) -> None:
        self.clock = clock
        self.script = list(script)
        self.calls = 0
        self.closed = False

    def fetch(self) -> Snapshot:
        self.calls += 1
        item = self.script.pop(0)
        if isinstance(item, ProviderError):
            raise item
        if isinstance(item, Snapshot):
            return item
        return Snapshot(taken_at=self.clock(), key=KeyUsage(usage=float(item)))

    def admin(self) -> AccountAdmin | None:
        return None  # a key without a management key: no account side

    def close(self) -> None:
        self.closed = True


class KeysTicks:
    """Every key of an account, decided tick by tick with plain values (no store, no
    provider): `usage` and `names` by key hash, moved by hand between ticks; a subclass's
    `listed()` turns them into this tick's facts (and extends `histories`)."""

    def __init__(self, usage: dict[str, float], policy: Policy, start: datetime) -> None:
        self.policy = policy
        self.usage = dict(usage)
        self.names = {h: h for h in usage}
        self.histories: dict[str, burn.History] = {}
        self.judgements: dict[str, keyrules.KeyJudgement] = {}
        self.known: dict[str, KnownKey] = {}
        self.alerts: dict[tuple[str, str], AlertState] = {}
        self.start = self.now = start

    def listed(self) -> list[keyrules.KeyFacts]:
        raise NotImplementedError

    def tick(
        self,
        minutes: float = 1.0,
        *,
        armed: bool = True,
        policy: Policy | None = None,
        trip: str = "test",
    ) -> Outcome:
        """`decide` one tick later (the account itself idle; `armed=False`: tripped by
        "ops", saying `trip`)."""
        self.now += timedelta(minutes=minutes)
        account = burn.History.from_samples([Sample(self.start, 0.0), Sample(self.now, 0.0)])
        o = decide(
            Inputs(
                now=self.now,
                policy=policy or self.policy,
                history=account,
                prior=burn.Prior(),
                poll=PollHealth(started_at=self.start, last_success=self.now),
                alerts=self.alerts,
                permit=PermitState(armed=True),
                override=Override() if armed else Override(trip=Trip(trip, "ops", self.start)),
                silences={},
                recipients=[Recipient("ops", ("warning", "critical"))],
                key_name="the account",
                keys=KeyInputs(self.listed(), self.histories, self.judgements, self.known),
            )
        )
        self.alerts, self.judgements, self.known = o.alerts, o.judgements, o.known
        return o


class ListingAccount:
    """A provider whose `fetch` (a subclass's) lists the account's keys, with a management
    side that does nothing a tick would notice: no workspaces, no activity, a disable
    accepted, limits not to be changed. Its `admin()` is itself."""

    def fetch(self) -> Snapshot:
        raise NotImplementedError

    def admin(self) -> ListingAccount:
        return self

    def close(self) -> None:
        return None

    # AccountAdmin, as far as a tick uses it
    def list_keys(self) -> list[KeyUsage]:
        return list(self.fetch().keys)

    def workspaces(self) -> list[object]:
        return []

    def activity(self, *, api_key_hash: str | None = None, day: date | None = None) -> list[Any]:
        return []

    def set_key_disabled(self, key_hash: str, disabled: bool) -> None:
        return None

    def update_key_limit(self, key_hash: str, limit: float | None, reset: str | None) -> object:
        raise NotImplementedError

    def workspace_budget(self, workspace_id: str, interval: str) -> None:
        return None

    def set_workspace_budget(self, workspace_id: str, interval: str, limit: float) -> object:
        raise NotImplementedError

    def remember_watched_key(self, key_hash: str) -> None:
        return None

    def watched_key_identity(self) -> KeyIdentity:
        return KeyIdentity(problem="no watched key")


def build_tick(
    settings: Settings,
    provider: Provider,
    clock: Callable[[], datetime],
    *,
    admin: AccountAdmin | bool | None = True,
    targets: Sequence[Target] = (),
    log: Any = None,
) -> Tick:
    """A Tick wired as `budget-watchdog run` wires it, on the settings' state and permit
    (`admin`: True for the provider's own management side, or an explicit one, or None)."""
    from watchdog.log import get_logger
    from watchdog.permitfile import Issuer
    from watchdog.store import Store
    from watchdog.tick import Tick

    return Tick(
        policy=settings.policy(),
        provider=provider,
        admin=provider.admin() if admin is True else (admin or None),
        store=Store(settings.state.path),
        permit=Issuer(settings.killswitch.path, clock),
        clock=clock,
        log=log or get_logger(),
        targets=targets,
    )


@contextmanager
def as_nobody() -> Iterator[None]:
    """Run the block with permissions that apply: as `nobody` (effective ids) when the
    tests run as root, who reads everything; as ourselves otherwise."""
    if os.geteuid() != 0:
        yield
        return
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root and there is no 'nobody' user to drop to")
    uid, gid = os.geteuid(), os.getegid()
    os.setegid(nobody.pw_gid)
    os.seteuid(nobody.pw_uid)
    try:
        yield
    finally:
        os.seteuid(uid)
        os.setegid(gid)


def management_config(
    tmp_path: Path, fake: FakeOpenRouter, *, state: bool = True, extra: str = ""
) -> Path:
    """A config file for a CLI command against `fake` with only a management key (mode
    0600), and the daemon's state file beside it unless `state` is false."""
    from tests.fake_openrouter import MANAGEMENT_KEY
    from watchdog.store import Store

    path = tmp_path / "watchdog.toml"
    path.write_text(
        f'[provider]\nbase_url = "{fake.base_url}"\nmanagement_key = "{MANAGEMENT_KEY}"\n'
        f'[state]\npath = "{tmp_path}/state.db"\n{extra}'
    )
    path.chmod(0o600)
    if state:
        Store(tmp_path / "state.db").close()  # as the daemon leaves it
    return path
