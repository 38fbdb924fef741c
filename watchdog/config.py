"""The configuration contract: one pydantic model, loaded from TOML and the environment.

Sources, strongest first: `WATCHDOG_<SECTION>__<KEY>` environment variables,
`OPENROUTER_API_KEY` / `OPENROUTER_MANAGEMENT_KEY`, the TOML file, then the defaults.
Key files (`*_file` keys, systemd credentials, `keys/` beside the config file) are read by
`load()` after validation. Every key carries its description and an example here, in one
place: the sample config (`watchdog.example.toml`) is generated from this module and a test
fails when they drift. `Settings.policy()` hands the core its plain, frozen view.

Imports nothing from `watchdog` but the core's types, and `watchdog.db` (standard library
only) lazily to mask the state's PostgreSQL URL, so every other module may import this one.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from watchdog.core.audit import AuditPolicy
from watchdog.core.model import (
    BudgetPolicy,
    CapsPolicy,
    KeyBudget,
    KillswitchPolicy,
    NotifyPolicy,
    Policy,
)
from watchdog.core.words import format_duration, parse_duration

CONFIG_ENV = "WATCHDOG_CONFIG"
ENV_PREFIX = "WATCHDOG_"
API_KEY_ENV = "OPENROUTER_API_KEY"
MANAGEMENT_KEY_ENV = "OPENROUTER_MANAGEMENT_KEY"
# systemd's LoadCredential= puts secrets here; the credential names we look for by default.
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
API_KEY_CREDENTIAL = "openrouter_api_key"
MANAGEMENT_KEY_CREDENTIAL = "openrouter_management_key"
# The status endpoint's bearer token, as keys are found: the unit's
# LoadCredential=server_token:…/keys/server_token (blank by default), keys/server_token.
SERVER_TOKEN_CREDENTIAL = "server_token"  # noqa: S105 (a credential's name, not its value)
# The PostgreSQL URL of a shared state: the unit's LoadCredential=state_url:…/keys/state_url
# (its SetCredential= default is blank: no URL, SQLite), keys/state_url beside the config
# otherwise.
STATE_URL_CREDENTIAL = "state_url"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")  # what libpq takes (lower case only)

MAX_AMOUNT = 1e9  # USD; anything above is a typo, and floats stay exact well beyond it
KEY_FILE_MAX_BYTES = 64 * 1024  # a key is ~100 bytes; this bounds a read of the wrong file
TLS_FILE_MAX_BYTES = 1024 * 1024  # a certificate chain is a few KiB


# -- value types ---------------------------------------------------------------------------


def _flag(value: object) -> bool:
    """A boolean: true/false in TOML, or the strings "true"/"false" (any case), which is
    how the environment writes them. "yes", 1 or "on" are refused rather than guessed."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError("must be true or false")


def _number(value: object) -> object:
    """A number for a float field. pydantic would read true as 1.0, and would check `inf`
    against a bound first ("less than or equal to …"): say what is wrong instead."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    try:
        number = float(value) if isinstance(value, str | int | float) else None
    except (ValueError, OverflowError):  # not a number at all: pydantic says so
        return value
    if number is not None and not math.isfinite(number):
        raise ValueError("must be a finite number")
    return value


def key_token(text: str) -> str:
    """Given a key as written (a key file's content, an environment value, a config value),
    return it without surrounding whitespace or a UTF-8 byte-order mark ("" when nothing is
    left). Raise ValueError when it is not one token of printable ASCII; the message never
    contains the text, which may be a secret."""
    text = text.strip().removeprefix("\ufeff").strip()
    if sum(1 for line in text.splitlines() if line.strip()) > 1:
        raise ValueError("holds more than one line: only the key, no comments or second key")
    if any(c.isspace() for c in text):
        raise ValueError("contains whitespace: a key is a single token")
    if not all("!" <= c <= "~" for c in text):
        raise ValueError("contains a non-printable or non-ASCII character")
    return text


def _checked_secret(
    value: SecretStr | None, check: Callable[[str], str], error: str
) -> SecretStr | None:
    """A secret as `check` returns it (None when nothing is left); its ValueError becomes
    the config error `error`, worded without the secret."""
    if value is None:
        return None
    try:
        text = check(value.get_secret_value())
    except ValueError as exc:
        raise PydanticCustomError(error, "{reason}", {"reason": str(exc)}) from None
    return SecretStr(text) if text else None


def _key_value(value: SecretStr | None) -> SecretStr | None:
    return _checked_secret(value, key_token, "key_format")


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
Flag = Annotated[bool, BeforeValidator(_flag)]
Number = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False)]
Amount = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False, le=MAX_AMOUNT)]
Key = Annotated[SecretStr | None, AfterValidator(_key_value)]
Severity = Literal["warning", "critical"]


def _reject(problems: Sequence[tuple[str, str]]) -> None:
    """Raise one error carrying every cross-field problem of a model, each with the dotted
    path (relative to the model) it belongs to. pydantic stops a model validator at its
    first error; load() unpacks these so that all of them are reported together."""
    if problems:
        raise PydanticCustomError(
            "cross_field",
            "{summary}",
            {
                "summary": "; ".join(f"{path}: {message}" for path, message in problems),
                "problems": tuple(problems),
            },
        )


# -- the schema ----------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, hide_input_in_errors=True)


class ProviderConfig(_Section):
    """[provider]: where spend is read from."""

    name: Literal["openrouter"] = Field(
        "openrouter", description="Provider; only OpenRouter for now."
    )
    base_url: str = Field(
        "https://openrouter.ai/api/v1",
        description="API root; point it at a local fake for tests.",
    )
    api_key: Key = Field(
        None,
        description="The key whose spend is watched. Prefer api_key_file or OPENROUTER_API_KEY.",
        examples=["sk-or-v1-..."],
    )
    api_key_file: Path | None = Field(
        None,
        description="File holding the watched key; relative paths resolve in "
        "$CREDENTIALS_DIRECTORY.",
        examples=["/etc/budget-watchdog/openrouter_api_key"],
    )
    management_key: Key = Field(
        None,
        description="Optional management key: account balance, all keys, activity, key "
        "disable. Prefer management_key_file or OPENROUTER_MANAGEMENT_KEY.",
        examples=["sk-or-v1-..."],
    )
    management_key_file: Path | None = Field(
        None,
        description="File holding the management key.",
        examples=["/etc/budget-watchdog/openrouter_management_key"],
    )
    key_hash: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,128}$",
        description="The watched key's hash at the provider (GET /api/v1/keys): the surest "
        "way to find the key the kill switch disables.",
        examples=["f01d52606dc8f0a8303a7b5cc3fa07109c2e346cec7c0a16b40de462992ce943"],
    )
    key_name: str | None = Field(
        None,
        min_length=1,
        description="The watched key's name at the provider, if it names exactly one key "
        "(used when key_hash is not set).",
        examples=["batch jobs"],
    )
    poll_interval: Duration = Field(
        timedelta(seconds=60), description="How often the provider is polled (1s minimum)."
    )
    timeout: Duration = Field(timedelta(seconds=10), description="Timeout of one HTTP request.")
    workspaces: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        ["*"],
        min_length=1,
        description='Workspaces whose keys are watched (management key): "*" for every one, '
        "or ids/slugs. The provider lists only the default workspace unless asked.",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("poll_interval")
    @classmethod
    def _min_interval(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be more than 0s")
        return value


class KeyBudgetConfig(_Section):
    """One [[budget.keys]] entry: limits for the keys it matches (first match wins)."""

    match: str = Field(
        min_length=1,
        max_length=256,
        description="Glob on the key's name or label, or a full key hash.",
        examples=["batch-*"],
    )
    daily_limit: Annotated[Amount, Field(gt=0)] | None = Field(
        None, description="This key's spend allowed per day, USD.", examples=[5.0]
    )
    monthly_limit: Annotated[Amount, Field(gt=0)] | None = Field(
        None, description="This key's spend allowed per calendar month, USD.", examples=[100.0]
    )
    action: Literal["alert", "revoke", "disable"] = Field(
        "alert",
        description='What its findings do: "alert"; "revoke" this key\'s permit; "disable" '
        "this key at the provider (and revoke its permit).",
        examples=["revoke"],
    )

    @model_validator(mode="after")
    def _daily_below_monthly(self) -> KeyBudgetConfig:
        if (
            self.daily_limit is not None
            and self.monthly_limit is not None
            and self.daily_limit > self.monthly_limit
        ):
            _reject(
                [
                    (
                        "daily_limit",
                        f"daily_limit ({self.daily_limit:g}) is above monthly_limit "
                        f"({self.monthly_limit:g}) for keys matching {self.match!r}",
                    )
                ]
            )
        return self

    def policy(self) -> KeyBudget:
        return KeyBudget(self.match, self.daily_limit, self.monthly_limit, self.action)


class BudgetConfig(_Section):
    """[budget]: the limits and targets findings are judged against."""

    timezone: str = Field(
        "UTC", description="Day and month boundaries for our own limits (IANA name)."
    )
    daily_limit: Annotated[Amount, Field(gt=0)] | None = Field(
        None, description="Spend allowed per day, USD.", examples=[20.0]
    )
    monthly_limit: Annotated[Amount, Field(gt=0)] | None = Field(
        None, description="Spend allowed per calendar month, USD.", examples=[400.0]
    )
    warn_ratio: Number = Field(
        0.8, gt=0, le=1, description="Warning at this share of a limit; critical at 1.0."
    )
    buffer_days_warning: Number = Field(
        7.0, ge=0, description="Warn when credit lasts fewer days at the average burn."
    )
    buffer_days_critical: Number = Field(
        3.0, ge=0, description="Critical when credit lasts fewer days than this."
    )
    min_balance: Amount = Field(
        0.0, ge=0, description="Critical when the balance falls to this many USD."
    )
    spike_factor: Number = Field(
        4.0, gt=1, description="Spike: 1-hour burn above this many times the 7-day baseline."
    )
    spike_min_rate: Amount = Field(
        0.5, ge=0, description="Spike: only above this rate in USD/h, so idle keys stay quiet."
    )
    hysteresis: Number = Field(
        0.05,
        ge=0,
        lt=1,
        description="A finding resolves only when its value is this share back inside its "
        "threshold.",
    )
    stale_after: Duration = Field(
        timedelta(minutes=10),
        description="Stale when no poll succeeded for this long. At least twice "
        "provider.poll_interval.",
    )
    keys: list[KeyBudgetConfig] = Field(
        [],
        description="Per-key limits, each a [[budget.keys]] table; first match wins. Needs "
        "a management key (every key of the account is watched).",
        examples=[
            [
                {
                    "match": "batch-*",
                    "daily_limit": 5.0,
                    "monthly_limit": 100.0,
                    "action": "revoke",
                },
                {"match": "interactive", "daily_limit": 20.0, "action": "alert"},
            ]
        ],
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @model_validator(mode="after")
    def _limits_in_order(self) -> BudgetConfig:
        problems = []
        if self.buffer_days_warning < self.buffer_days_critical:
            problems.append(
                (
                    "buffer_days_warning",
                    f"buffer_days_warning ({self.buffer_days_warning:g}) is below "
                    f"buffer_days_critical ({self.buffer_days_critical:g}): the warning "
                    "would come after the critical alert",
                )
            )
        if (
            self.daily_limit is not None
            and self.monthly_limit is not None
            and self.daily_limit > self.monthly_limit
        ):
            problems.append(
                (
                    "daily_limit",
                    f"daily_limit ({self.daily_limit:g}) is above monthly_limit "
                    f"({self.monthly_limit:g})",
                )
            )
        _reject(problems)
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class CapsConfig(_Section):
    """[caps]: provider-side daily limits on every key, kept at factor × expected spend."""

    manage: Flag = Field(
        False, description="Keep the caps current from the daemon (management key)."
    )
    factor: Annotated[Number, Field(ge=1, le=100)] = Field(
        1.3, description="Daily cap = factor × the key's expected daily spend."
    )
    min_daily: Annotated[Amount, Field(gt=0)] = Field(
        1.0, description="Never set a daily cap below this, USD."
    )
    every: Duration = Field(timedelta(days=1), description="How often the daemon recomputes.")

    @field_validator("every")
    @classmethod
    def _at_least_an_hour(cls, value: timedelta) -> timedelta:
        if value < timedelta(hours=1):
            raise ValueError("must be at least 1h (caps follow days of spend)")
        return value

    def policy(self) -> CapsPolicy:
        return CapsPolicy(self.manage, self.factor, self.min_daily, self.every)


class KillswitchConfig(_Section):
    """[killswitch]: the permit file batch jobs check before they launch."""

    path: Path = Field(
        Path("/run/budget-watchdog/permit"),
        description="The permit: present while launches are allowed.",
    )
    revoke_on: list[Severity] = Field(
        ["critical"], description="Finding severities that revoke the permit."
    )
    ttl: Duration = Field(
        timedelta(minutes=5),
        description="Permit lease: an expired permit means no-go. At least twice "
        "provider.poll_interval.",
    )
    latch: Flag = Field(False, description="Stay revoked until `budget-watchdog arm`.")
    on_stale: Literal["revoke", "keep"] = Field(
        "revoke", description="What stale data does to the permit."
    )
    disable_keys: Flag = Field(
        False, description="Also disable the watched key(s) at the provider (management key)."
    )

    @field_validator("ttl")
    @classmethod
    def _positive_ttl(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value


class NotifyTarget(_Section):
    """One [[notify.targets]] entry: an Apprise URL and the severities it receives."""

    url: SecretStr = Field(
        description="Any Apprise URL (slack://, mailtos://, json://).",
        examples=["slack://TokenA/TokenB/TokenC"],
    )
    severities: list[Literal["info", "warning", "critical", "digest"]] = Field(
        ["warning", "critical"],
        description='Severities sent to this target ("digest": the scheduled digest).',
    )


class NotifyConfig(_Section):
    """[notify]: where alerts go and how often they repeat."""

    repeat_interval: Duration = Field(
        timedelta(hours=4),
        description="Remind at this interval while a finding lasts (0 = never).",
    )
    send_resolved: Flag = Field(True, description="Send a message when a finding ends.")
    targets: list[NotifyTarget] = Field(
        [],
        description="Apprise targets, each a [[notify.targets]] table.",
        examples=[
            [
                {"url": "slack://TokenA/TokenB/TokenC", "severities": ["warning", "critical"]},
                {
                    "url": "mailtos://user:pass@example.com?to=ops@example.com",
                    "severities": ["critical"],
                },
            ]
        ],
    )


class ServerConfig(_Section):
    """[server]: the local status endpoint (/status, /preflight, /metrics)."""

    listen: str = Field("127.0.0.1:8787", description="host:port of the status endpoint.")
    token: SecretStr = Field(
        SecretStr(""), description="Bearer token; required when listen is not loopback."
    )
    token_file: Path | None = Field(
        None,
        description="File holding the token; relative paths resolve in "
        "$CREDENTIALS_DIRECTORY. Without token or token_file: the credential server_token, "
        "or keys/server_token beside the config, when present.",
        examples=["/etc/budget-watchdog/keys/server_token"],
    )
    tls_cert: str = Field(
        "",
        description="PEM certificate (chain) file: with tls_key, the endpoint speaks HTTPS "
        "and remote gates' tokens cross the network encrypted.",
    )
    tls_key: str = Field(
        "",
        description="PEM private key file of tls_cert, without a passphrase. Relative paths "
        "(both) resolve in $CREDENTIALS_DIRECTORY.",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_listen(value)
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        # A token off loopback is checked by load(), once token_file and the credential
        # server_token have been read.
        problems = []
        for given, missing in (("tls_cert", "tls_key"), ("tls_key", "tls_cert")):
            if getattr(self, given) and not getattr(self, missing):
                problems.append(
                    (missing, f"{given} is set but {missing} is not: give both (HTTPS) or neither")
                )
        _reject(problems)
        return self

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def tls(self) -> tuple[Path, Path] | None:
        """(certificate, key) when the endpoint speaks HTTPS, else None. After load() both
        are absolute paths to files that were readable and hold a matching pair."""
        if not (self.tls_cert and self.tls_key):
            return None
        return Path(self.tls_cert), Path(self.tls_key)

    @property
    def scheme(self) -> Literal["http", "https"]:
        return "https" if self.tls else "http"


def split_listen(value: str) -> tuple[str, int]:
    """Given "host:port" or "[v6]:port", return (host, port). Raise ValueError if malformed."""
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^:\[\]\s]+):(\d+)", value.strip())
    if not match:
        raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:8787)")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def state_url(text: str) -> str:
    """Given a PostgreSQL URL as written (a config value, a file's content), return it
    without surrounding whitespace or a UTF-8 byte-order mark ("" when nothing is left).
    Raise ValueError when it is not one postgresql:// (or postgres://) URL on one line;
    the message never contains the URL, whose password is a secret."""
    text = text.strip().removeprefix("\ufeff").strip()
    if not text:
        return ""
    if sum(1 for line in text.splitlines() if line.strip()) > 1:
        raise ValueError("holds more than one line: only the URL, no comments or second URL")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError("contains whitespace or a control character: a URL is one token")
    if not text.startswith(POSTGRES_SCHEMES):
        scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]{0,20}://", text)
        said = f", not {scheme.group(0)}" if scheme else ""
        raise ValueError(f"must be a postgresql:// (or postgres://) URL{said}")
    rest = text.partition("://")[2]
    if "@" in rest and any(c in rest.rpartition("@")[0] for c in "/?#@"):
        # libpq reads these characters in a user part as its end (or not), so such a URL
        # means something else than it says, and a password in it may end up printed.
        raise ValueError(
            "holds /, ?, # or @ before its last @ (in the user or password, or a "
            "parameter): percent-encode them there (%2F, %3F, %23, %40)"
        )
    from watchdog import db  # its check imports the driver: only for a URL

    problem = db.url_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return text


def _state_url_value(value: SecretStr | None) -> SecretStr | None:
    return _checked_secret(value, state_url, "url_format")


class StateConfig(_Section):
    """[state]: where history, alert state and the outbox are kept (SQLite, or PostgreSQL)."""

    path: Path = Field(
        Path("/var/lib/budget-watchdog/state.db"),
        description="SQLite file (created with its directory), for one host: the default. "
        "Not together with a URL.",
    )
    url: Annotated[SecretStr | None, AfterValidator(_state_url_value)] = Field(
        None,
        description="PostgreSQL URL of a state shared by several instances (one leads). "
        "Its password is a secret: prefer url_file or the credential state_url.",
        examples=["postgresql://watchdog@db.internal:5432/watchdog?sslmode=verify-full"],
    )
    url_file: Path | None = Field(
        None,
        description="File holding the PostgreSQL URL with its password; relative paths "
        "resolve in $CREDENTIALS_DIRECTORY. Without url or url_file: the credential "
        "state_url, or keys/state_url beside the config, when present.",
        examples=["/etc/budget-watchdog/keys/state_url"],
    )

    @model_validator(mode="after")
    def _one_place(self) -> StateConfig:
        if "path" in self.model_fields_set:
            given = [name for name in ("url", "url_file") if getattr(self, name) is not None]
            if given:
                _reject([("path", _BOTH_PLACES.format(url=" and ".join(given)))])
        return self

    @property
    def shared(self) -> bool:
        """Whether the state is in PostgreSQL (after load(): from url, url_file or the
        credential), shared with other instances."""
        return self.url is not None

    @property
    def target(self) -> str | Path:
        """What `Store.open` takes: the PostgreSQL URL WITH its password (never print
        it: `shown` is for people), or the SQLite file's path."""
        return self.path if self.url is None else self.url.get_secret_value()

    @property
    def shown(self) -> str:
        """Where the state is, for people and logs: the URL with its password masked
        (watchdog.db.mask_url), or the SQLite file's path."""
        if self.url is None:
            return str(self.path)
        from watchdog import db  # stdlib only; only where a URL is shown

        return db.mask_url(self.url.get_secret_value())


_BOTH_PLACES = (
    "path (SQLite) and {url} (PostgreSQL) are both set: the state is kept in one place; "
    "remove path to use PostgreSQL, or {url} to stay on SQLite"
)


def _database_hosts(url: str) -> tuple[list[str], str]:
    """The hosts a libpq URL names (its host list, or a host= parameter) and its sslmode
    (the URL's, else $PGSSLMODE, else libpq's default "prefer")."""
    from urllib.parse import parse_qsl, unquote, urlsplit  # only with a shared state

    try:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
    except ValueError:
        return [], "prefer"
    mode = query.get("sslmode") or os.environ.get("PGSSLMODE") or "prefer"
    if query.get("host"):
        return [h.strip() for h in query["host"].split(",")], mode
    hosts = []
    for item in parts.netloc.rpartition("@")[2].split(","):
        host = item[1:].partition("]")[0] if item.startswith("[") else item.partition(":")[0]
        hosts.append(unquote(host))
    return hosts, mode


def _local_database_host(host: str) -> bool:
    """Whether a libpq host is this machine: none (the default Unix socket), a socket
    directory, or a loopback name or address."""
    return not host or host.startswith(("/", "@")) or is_loopback(host)


class AuditConfig(_Section):
    """[audit]: how `budget-watchdog audit` and the digest judge where the money goes."""

    frontier_min: Annotated[Amount, Field(gt=0)] = Field(
        3.0,
        description='USD per million output tokens at or above which a model is "frontier".',
    )
    light_max: Annotated[Amount, Field(gt=0)] = Field(
        0.20, description='Below this (USD per million output tokens), "light"; between, "mid".'
    )
    reference_mid: str = Field(
        "meta-llama/llama-3.3-70b-instruct",
        pattern=r"^[^/\s]+/[^/\s]+$",
        description="The model (author/slug) a tier-down is priced against.",
    )

    @model_validator(mode="after")
    def _tiers_in_order(self) -> AuditConfig:
        if self.light_max > self.frontier_min:
            _reject(
                [
                    (
                        "light_max",
                        f"light_max ({self.light_max:g}) is above frontier_min "
                        f"({self.frontier_min:g}): no model could be mid-tier",
                    )
                ]
            )
        return self

    def policy(self) -> AuditPolicy:
        """These settings as the core's audit policy."""
        return AuditPolicy(self.frontier_min, self.light_max, self.reference_mid)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class DigestConfig(_Section):
    """[digest]: the scheduled summary sent to targets whose severities include "digest"."""

    schedule: Literal["daily", "weekly", "off"] = Field(
        "weekly", description='How often the digest is sent: "daily", "weekly" or "off".'
    )
    day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = Field(
        "mon", description="The day of a weekly digest."
    )
    at: str = Field(
        "09:00", description="The time of day it is sent (HH:MM, local time in budget.timezone)."
    )

    @field_validator("day", mode="before")
    @classmethod
    def _lower_day(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("at")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
        if not match:
            raise ValueError(f"{value!r} is not a time of day as HH:MM (e.g. 09:00)")
        return f"{int(match.group(1)):02d}:{match.group(2)}"

    @property
    def hour(self) -> int:
        return int(self.at[:2])

    @property
    def minute(self) -> int:
        return int(self.at[3:])

    @property
    def weekday(self) -> int:
        """The day as datetime.weekday() counts it (Monday 0)."""
        return WEEKDAYS.index(self.day)


class _OpenRouterEnvSource(PydanticBaseSettingsSource):
    """OPENROUTER_API_KEY / OPENROUTER_MANAGEMENT_KEY, the names other tools already use."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        provider = {}
        if os.environ.get(API_KEY_ENV):
            provider["api_key"] = os.environ[API_KEY_ENV]
        if os.environ.get(MANAGEMENT_KEY_ENV):
            provider["management_key"] = os.environ[MANAGEMENT_KEY_ENV]
        return {"provider": provider} if provider else {}


class Settings(BaseSettings):
    """The whole configuration. Build it with load(), which reads the file and the key
    files and reports errors readably.

    Keyword arguments are the file's layer: the environment wins over them (see
    settings_customise_sources). Key files are not read here.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        validate_default=True,
        hide_input_in_errors=True,
    )

    provider: ProviderConfig = ProviderConfig()
    budget: BudgetConfig = BudgetConfig()
    killswitch: KillswitchConfig = KillswitchConfig()
    notify: NotifyConfig = NotifyConfig()
    server: ServerConfig = ServerConfig()
    state: StateConfig = StateConfig()
    audit: AuditConfig = AuditConfig()
    digest: DigestConfig = DigestConfig()
    caps: CapsConfig = CapsConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Strongest first. load() passes the TOML file's tables as init kwargs, so init
        # comes last: the environment overrides the file, as the contract says. No .env
        # file and no secrets directory: key files are read by load(), with their paths.
        return (env_settings, _OpenRouterEnvSource(settings_cls), init_settings)

    @model_validator(mode="after")
    def _leases_outlast_two_polls(self) -> Settings:
        poll = self.provider.poll_interval
        shown = f"provider.poll_interval ({format_duration(poll)})"
        problems = []
        if self.killswitch.ttl < 2 * poll:
            problems.append(
                (
                    "killswitch.ttl",
                    f"{format_duration(self.killswitch.ttl)} is less than twice {shown}: "
                    "the permit would expire between two polls and flicker",
                )
            )
        if self.budget.stale_after < 2 * poll:
            problems.append(
                (
                    "budget.stale_after",
                    f"{format_duration(self.budget.stale_after)} is less than twice {shown}: "
                    "one late poll would already count as stale",
                )
            )
        _reject(problems)
        return self

    @property
    def has_key(self) -> bool:
        return self.provider.api_key is not None or self.provider.management_key is not None

    def secrets(self) -> list[str]:
        """Every secret value this config holds, for scrubbing output: the keys, the
        server's token, the notification URLs, a password in provider.base_url and the
        password of the state's PostgreSQL URL (each form of it: watchdog.db.url_secrets)."""
        values = [self.provider.api_key, self.provider.management_key, self.server.token]
        values += [target.url for target in self.notify.targets]
        found = [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]
        found += _url_credentials(self.provider.base_url)
        if self.state.url is not None:
            from watchdog import db  # stdlib only; only with a shared state

            found += db.url_secrets(self.state.url.get_secret_value())
        return found

    def start_warnings(self) -> list[str]:
        """What the daemon warns about when it starts: settings it runs with that expose
        a secret on the network. A bearer token on a listen address that is not loopback
        without TLS (server.tls_cert/tls_key) crosses the network in clear text with every
        remote gate; a shared state on a remote host without sslmode=require (or
        verify-ca/verify-full) may send the database password in clear text. Each is one
        sentence naming the keys to change; [] when there is nothing to say."""
        warnings = []
        server = self.server
        if server.token.get_secret_value() and not is_loopback(server.host) and not server.tls:
            warnings.append(
                f"server.token is sent in clear text: server.listen ({server.listen}) is not "
                "a loopback address and server.tls_cert/tls_key are not set, so every "
                "remote gate's token can be read on the network; give the status endpoint "
                "a certificate"
            )
        if self.state.url is not None:
            hosts, mode = _database_hosts(self.state.url.get_secret_value())
            remote = [host for host in hosts if not _local_database_host(host)]
            if remote and mode not in ("require", "verify-ca", "verify-full"):
                warnings.append(
                    f"state.url: the connection to {', '.join(remote)} does not require TLS "
                    f"(sslmode={mode}), so the database password can cross the network in "
                    "clear text; add sslmode=verify-full (or require) to the URL"
                )
        return warnings

    def policy(self) -> Policy:
        """Return the part of the config the core decides by, as its frozen dataclasses."""
        budget, killswitch, notify = self.budget, self.killswitch, self.notify
        return Policy(
            budget=BudgetPolicy(
                timezone=budget.timezone,
                tz=budget.tz,
                daily_limit=budget.daily_limit,
                monthly_limit=budget.monthly_limit,
                warn_ratio=budget.warn_ratio,
                buffer_days_warning=budget.buffer_days_warning,
                buffer_days_critical=budget.buffer_days_critical,
                min_balance=budget.min_balance,
                spike_factor=budget.spike_factor,
                spike_min_rate=budget.spike_min_rate,
                hysteresis=budget.hysteresis,
                stale_after=budget.stale_after,
                keys=tuple(k.policy() for k in budget.keys),
            ),
            killswitch=KillswitchPolicy(
                revoke_on=tuple(killswitch.revoke_on),
                ttl=killswitch.ttl,
                latch=killswitch.latch,
                on_stale=killswitch.on_stale,
                disable_keys=killswitch.disable_keys,
            ),
            notify=NotifyPolicy(
                repeat_interval=notify.repeat_interval, send_resolved=notify.send_resolved
            ),
            poll_interval=self.provider.poll_interval,
            caps=self.caps.policy(),
        )


# -- loading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One config error: the dotted path of the key, what is wrong with it, and where the
    value came from when that is not the config file (an environment variable, a key file)."""

    path: str
    message: str
    origin: str | None = None

    def __str__(self) -> str:
        origin = f" (from {self.origin})" if self.origin else ""
        if self.path:
            return f"At '{self.path}'{origin}: {self.message}"
        return f"{self.origin}: {self.message}" if self.origin else self.message


class ConfigError(Exception):
    """The config cannot be used. `problems` lists every error found, each with its path."""

    def __init__(self, problems: Sequence[ConfigProblem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(str(p) for p in self.problems))

    def report(self) -> str:
        head = f"Invalid configuration ({self.source})" if self.source else "Invalid configuration"
        noun = "error" if len(self.problems) == 1 else "errors"
        lines = [f"{head}: {len(self.problems)} {noun}"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass(frozen=True)
class Loaded:
    """A loaded config, where it came from, warnings for the operator, and notes for debug
    output (e.g. a conventional key location that was skipped because it cannot be read)."""

    settings: Settings
    source: Path | None
    warnings: list[str]
    notes: list[str] = field(default_factory=list)


def config_path(cli_path: str | None) -> Path | None:
    """Given --config (or None), return the file to read: --config, else $WATCHDOG_CONFIG."""
    value = cli_path or os.environ.get(CONFIG_ENV)
    return Path(value) if value else None


REVOKE_ON_EMPTY = (
    "killswitch.revoke_on is empty: only stale data (with on_stale = revoke) or a manual "
    "trip revokes the permit"
)


def load(
    path: Path | None,
    *,
    require_key: bool = True,
    overrides: dict[str, Any] | None = None,
) -> Loaded:
    """Given a TOML path (or None for defaults and env only), return the loaded config with
    its keys read from their files.

    Raise ConfigError listing every problem with its path (and the environment variable or
    key file it came from) when the file cannot be read or parsed, a value is invalid, a key
    file named in the config cannot be read or holds more than one token, or no key is
    configured (with require_key), the state's URL cannot be read or is not a PostgreSQL
    URL, a state path is set with a URL, or TLS files cannot be read or do not match.
    `overrides` replace file values (the demo uses it) and yield to the environment like the
    file does; an overridden [state] replaces the file's whole [state], and the credential
    state_url is then not looked for. Notification URLs are not checked here: that needs
    Apprise (`watchdog.notify.url_problem`).
    """
    source = str(path) if path else None
    data: dict[str, Any] = {}
    warnings: list[str] = []
    if path is not None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                [ConfigProblem("", f"cannot read {path}: {exc.strerror}")], source
            ) from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(
                [ConfigProblem("", f"{path} is not valid TOML: {exc}")], source
            ) from None
        warnings += _permission_warnings(path, data)
    if overrides:
        if "state" in overrides:  # where the state is: one choice, not a blend of two
            data = {key: value for key, value in data.items() if key != "state"}
        data = _deep_merge(data, overrides)

    # Top-level keys become keyword arguments of Settings(), where "_env_file",
    # "_secrets_dir" and the like are options of pydantic-settings, not config keys.
    problems = [ConfigProblem(key, "unknown key") for key in data if key.startswith("_")]
    sections = {key: value for key, value in data.items() if not key.startswith("_")}
    try:
        settings = Settings(**sections)
    except ValidationError as exc:
        raise ConfigError(problems + list(_problems(exc)), source) from None
    except SettingsError as exc:
        raise ConfigError([*problems, _env_problem(exc)], source) from None

    provider, key_problems, notes = _resolve_keys(settings.provider, path)
    problems += key_problems
    state, state_problems, state_notes = _resolve_state(
        settings.state, path, conventional="state" not in (overrides or {})
    )
    server, token_problems, token_notes = _resolve_token(settings.server, path)
    server, tls_problems = _resolve_tls(server)
    problems += state_problems + token_problems + tls_problems
    notes += state_notes + token_notes
    settings = settings.model_copy(update={"provider": provider, "state": state, "server": server})
    if require_key and not settings.has_key and not key_problems:  # those say why already
        problems.append(
            ConfigProblem(
                "provider.api_key",
                "no key configured: set provider.api_key_file (or api_key, or "
                f"{API_KEY_ENV}), or a management key",
            )
        )
    if settings.provider.management_key is None and not key_problems:
        needs = [
            (
                "budget.keys",
                "[[budget.keys]] judges every key of the account",
                settings.budget.keys,
            ),
            (
                "caps.manage",
                "caps.manage keeps the keys' provider-side limits",
                settings.caps.manage,
            ),
        ]
        problems += [
            ConfigProblem(
                where,
                f"{what}, which needs a management key (provider."
                "management_key_file or OPENROUTER_MANAGEMENT_KEY)",
            )
            for where, what, used in needs
            if used
        ]
    if problems:
        raise ConfigError(problems, source)
    if not settings.killswitch.revoke_on:
        warnings.append(REVOKE_ON_EMPTY)
    return Loaded(settings, path, warnings, notes)


def _resolve_keys(
    provider: ProviderConfig, config: Path | None
) -> tuple[ProviderConfig, list[ConfigProblem], list[str]]:
    """Given the validated [provider], return it with keys read from their files, the
    problems found, and notes about skipped conventional locations.

    A key given directly (config, environment) wins over a key file. A key file named in
    the config must be readable and hold one token. Keys nobody configured are looked for
    by convention: under systemd the LoadCredential= files ($CREDENTIALS_DIRECTORY/
    openrouter_api_key, …), elsewhere keys/api_key and keys/management_key beside the
    config file (what install.sh sets up, so `check-config` as root sees the same keys the
    service gets as credentials). A conventional location that cannot be read is skipped
    with a note: it is only a guess, and e.g. a root-only keys/ must not stop `status`."""
    update: dict[str, Any] = {}
    problems: list[ConfigProblem] = []
    notes: list[str] = []
    for field_name, credential, beside in (
        ("api_key", API_KEY_CREDENTIAL, "api_key"),
        ("management_key", MANAGEMENT_KEY_CREDENTIAL, "management_key"),
    ):
        file_field = f"{field_name}_file"
        named = _credential_path(getattr(provider, file_field))
        if named is not None:
            update[file_field] = named
        if getattr(provider, field_name) is not None:
            continue
        if named is not None:
            try:
                token = _read_key_file(named)
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                problems.append(
                    ConfigProblem(f"provider.{file_field}", f"cannot read: {reason}", str(named))
                )
                continue
            except ValueError as exc:
                problems.append(ConfigProblem(f"provider.{file_field}", str(exc), str(named)))
                continue
            if not token:
                problems.append(ConfigProblem(f"provider.{file_field}", "is empty", str(named)))
                continue
            update[field_name] = SecretStr(token)
            continue
        for candidate in _conventional_places(credential, beside, config):
            try:
                if not candidate.is_file():  # Python 3.11 raises EACCES here
                    continue
                token = _read_key_file(candidate)
            except OSError as exc:
                notes.append(
                    f"skipped {candidate}: cannot be read ({exc.strerror or type(exc).__name__})"
                )
                continue
            except ValueError as exc:  # readable and meant as a key, but malformed
                problems.append(ConfigProblem(f"provider.{file_field}", str(exc), str(candidate)))
                break
            if not token:
                notes.append(f"skipped {candidate}: empty")
                continue
            update[field_name] = SecretStr(token)
            update[file_field] = candidate
            break
    return provider.model_copy(update=update), problems, notes


@dataclass
class _Found:
    """A secret read by _secret_from_files: its value ("" when none), the file it came
    from, and whether that was a conventional place (a guess) rather than a named file."""

    value: str = ""
    path: Path | None = None
    conventional: bool = False


def _secret_from_files(
    where: str,
    named: Path | None,
    credential: str,
    config: Path | None,
    read: Callable[[Path], str],
    problems: list[ConfigProblem],
    notes: list[str],
) -> _Found:
    """A secret that is not given directly, from the file named at `where` (which must
    be readable and hold it), else from the systemd credential `credential` or keys/
    beside the config (same name), when `credential` is not "". A conventional place that
    cannot be read is skipped with a note; a blank credential means "none" (the unit's
    SetCredential= default) and ends the search. `read` returns the value ("" when blank)
    or raises OSError, or ValueError saying what is wrong without quoting the secret."""
    if named is not None:
        try:
            value = read(named)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            problems.append(ConfigProblem(where, f"cannot read: {reason}", str(named)))
            return _Found()
        except ValueError as exc:
            problems.append(ConfigProblem(where, str(exc), str(named)))
            return _Found()
        if not value:
            problems.append(ConfigProblem(where, "is empty", str(named)))
        return _Found(value, named)
    if not credential:
        return _Found()
    for candidate in _conventional_places(credential, credential, config):
        try:
            if not candidate.is_file():  # Python 3.11 raises EACCES here
                continue
            value = read(candidate)
        except OSError as exc:
            notes.append(
                f"skipped {candidate}: cannot be read ({exc.strerror or type(exc).__name__})"
            )
            continue
        except ValueError as exc:  # readable and meant as the secret, but malformed
            problems.append(ConfigProblem(where, str(exc), str(candidate)))
            break
        # A blank credential is the unit's way to say "none" (keys/ beside the config is
        # where the unit loads it from): the search ends either way.
        return _Found(value, candidate if value else None, conventional=True)
    return _Found()


def _resolve_state(
    state: StateConfig, config: Path | None, *, conventional: bool
) -> tuple[StateConfig, list[ConfigProblem], list[str]]:
    """Given the validated [state], return it with `url` read from its file, the problems
    found, and notes about skipped conventional locations.

    As for keys: a URL given directly (config, $WATCHDOG_STATE__URL) wins over url_file;
    url_file must be readable and hold one postgresql:// URL. With neither, and when
    `conventional`, the credential state_url ($CREDENTIALS_DIRECTORY/state_url, or
    keys/state_url beside the config) is used when it holds a URL: a blank one is the
    unit's default for "none" (SetCredential=state_url:\\n), one that cannot be read is
    skipped with a note. A URL found there while `path` is set is an error: the state is
    kept in exactly one place, and silently staying on SQLite would split the budget."""
    problems: list[ConfigProblem] = []
    notes: list[str] = []
    named = _credential_path(state.url_file)
    update: dict[str, Any] = {} if named is None else {"url_file": named}
    if state.url is not None:
        return state.model_copy(update=update), problems, notes
    credential = STATE_URL_CREDENTIAL if conventional else ""
    found = _secret_from_files(
        "state.url_file", named, credential, config, _read_url_file, problems, notes
    )
    if found.value and found.conventional and "path" in state.model_fields_set:
        problems.append(
            ConfigProblem(
                "state.path",
                f"path (SQLite) is set and the credential {STATE_URL_CREDENTIAL} "
                f"({found.path}) holds a PostgreSQL URL: the state is kept in one place; "
                "remove path to use PostgreSQL, or that file to stay on SQLite",
            )
        )
    elif found.value:
        update |= {"url": SecretStr(found.value), "url_file": found.path}
    return state.model_copy(update=update), problems, notes


def _resolve_token(
    server: ServerConfig, config: Path | None
) -> tuple[ServerConfig, list[ConfigProblem], list[str]]:
    """Given the validated [server], return it with `token` read from token_file, the
    credential server_token or keys/server_token beside the config (as keys are found,
    when no token is given directly), the problems found and notes. A listen address that
    is not loopback needs a token from one of them."""
    problems: list[ConfigProblem] = []
    notes: list[str] = []
    named = _credential_path(server.token_file)
    update: dict[str, Any] = {} if named is None else {"token_file": named}
    if not server.token.get_secret_value():
        found = _secret_from_files(
            "server.token_file",
            named,
            SERVER_TOKEN_CREDENTIAL,
            config,
            _read_key_file,
            problems,
            notes,
        )
        if found.value:
            update |= {"token": SecretStr(found.value), "token_file": found.path}
        elif not problems and not is_loopback(server.host):
            why = f"required when server.listen ({server.listen}) is not a loopback address"
            problems.append(ConfigProblem("server.token", why))
    return server.model_copy(update=update), problems, notes


def _read_url_file(path: Path) -> str:
    """Given a file holding the state's URL, return it ("" when empty). Raise OSError when
    it cannot be read, ValueError when it holds anything but one PostgreSQL URL."""
    with path.open("rb") as handle:
        raw = handle.read(KEY_FILE_MAX_BYTES + 1)
    if len(raw) > KEY_FILE_MAX_BYTES:
        raise ValueError(f"is larger than {KEY_FILE_MAX_BYTES} bytes: not a URL file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("is not UTF-8 text") from None
    return state_url(text)


class _Encrypted(Exception):
    """The TLS key asks for a passphrase: nobody is there to type it."""


def _no_passphrase() -> bytes:
    raise _Encrypted


def _resolve_tls(server: ServerConfig) -> tuple[ServerConfig, list[ConfigProblem]]:
    """Given the validated [server], return it with tls_cert and tls_key as absolute
    paths (relative ones resolve in $CREDENTIALS_DIRECTORY), and the problems found: a file
    that cannot be read, or a certificate and key that are not a PEM pair (loaded into an
    ssl context now, so the server cannot fail on them later)."""
    if not (server.tls_cert and server.tls_key):
        return server, []  # neither (both-or-neither is the model's check)
    problems = []
    paths: dict[str, Path] = {}
    for name, marker, what in (
        ("tls_cert", b"-----BEGIN CERTIFICATE-----", "certificate"),
        ("tls_key", b"PRIVATE KEY-----", "private key"),
    ):
        path = (_credential_path(Path(getattr(server, name))) or Path()).absolute()
        paths[name] = path
        try:
            with path.open("rb") as handle:
                pem = handle.read(TLS_FILE_MAX_BYTES)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            problems.append(ConfigProblem(f"server.{name}", f"cannot read: {reason}", str(path)))
            continue
        if marker not in pem:
            problems.append(ConfigProblem(f"server.{name}", f"holds no PEM {what}", str(path)))
    if problems:
        return server, problems
    import ssl  # only with TLS configured

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(paths["tls_cert"], paths["tls_key"], password=_no_passphrase)
    except _Encrypted:
        problems.append(
            ConfigProblem(
                "server.tls_key",
                "is encrypted: give the key without a passphrase (the service cannot type it)",
                str(paths["tls_key"]),
            )
        )
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            problems.append(
                ConfigProblem(
                    "server.tls_key", "is not the key of server.tls_cert", str(paths["tls_key"])
                )
            )
        else:
            reason = re.sub(r"\s*\(_ssl\.c:\d+\)", "", str(exc.reason or exc))
            problems.append(
                ConfigProblem(
                    "server.tls_cert",
                    f"server.tls_cert and server.tls_key cannot be used together ({reason})",
                )
            )
    update = {name: str(path) for name, path in paths.items()}
    return server.model_copy(update=update), problems


def _credential_path(path: Path | None) -> Path | None:
    """A configured key file's path: ~ and $VARS expanded, relative to
    $CREDENTIALS_DIRECTORY when that is set."""
    if path is None:
        return None
    path = Path(os.path.expandvars(str(path))).expanduser()
    creds = os.environ.get(CREDENTIALS_ENV)
    if not path.is_absolute() and creds:
        path = Path(creds) / path
    return path


def _conventional_places(credential: str, beside: str, config: Path | None) -> list[Path]:
    places = []
    creds = os.environ.get(CREDENTIALS_ENV)
    if creds:
        places.append(Path(creds) / credential)
    if config is not None:
        places.append(config.parent / "keys" / beside)
    return places


def _read_key_file(path: Path) -> str:
    """Given a key file, return its one token ("" when empty). Raise OSError when it cannot
    be read, ValueError when it holds anything but one token (never quoting it)."""
    with path.open("rb") as handle:
        raw = handle.read(KEY_FILE_MAX_BYTES + 1)
    if len(raw) > KEY_FILE_MAX_BYTES:
        raise ValueError(f"is larger than {KEY_FILE_MAX_BYTES} bytes: not a key file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("contains a non-printable or non-ASCII character") from None
    return key_token(text)


def _permission_warnings(path: Path, data: dict[str, Any]) -> list[str]:
    held = [
        dotted
        for dotted, present in (
            ("provider.api_key", _get(data, "provider", "api_key")),
            ("provider.management_key", _get(data, "provider", "management_key")),
            ("server.token", _get(data, "server", "token")),
            ("notify.targets", _get(data, "notify", "targets")),
            ("state.url", _url_has_password(_get(data, "state", "url"))),
        )
        if present
    ]
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if held and mode & (stat.S_IRGRP | stat.S_IROTH):
        return [
            f"{path} is readable by group/others (mode {stat.S_IMODE(mode):o}) and holds "
            f"secrets ({', '.join(held)}): chmod 600 it, or move keys to *_file keys"
        ]
    return []


def _url_has_password(url: object) -> bool:
    if not isinstance(url, str):
        return False
    from watchdog import db  # stdlib only; only for a config that holds a state URL

    return bool(db.url_secrets(url))


def _get(data: dict[str, Any], section: str, key: str) -> Any:
    value = data.get(section)
    return value.get(key) if isinstance(value, dict) else None


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _env_problem(exc: SettingsError) -> ConfigProblem:
    """pydantic-settings cannot decode an environment value (lists and tables must be JSON).
    Its message names the section, never the value, which may be a secret."""
    match = re.search(r'field "(\w+)"', str(exc))
    section = match.group(1) if match else ""
    prefix = f"{ENV_PREFIX}{section.upper()}__" if section else ENV_PREFIX
    return ConfigProblem(
        section,
        f"a {prefix}* environment variable is not valid: lists and tables must be JSON, "
        f"e.g. WATCHDOG_KILLSWITCH__REVOKE_ON='[\"critical\"]'",
    )


def _problems(exc: ValidationError) -> Iterator[ConfigProblem]:
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error["loc"]]
        ctx = error.get("ctx") or {}
        if error["type"] == "cross_field":
            for relative, message in ctx["problems"]:
                yield _problem([*loc, *relative.split(".")], message)
            continue
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        yield _problem(loc, message)


def _problem(loc: Sequence[str], message: str) -> ConfigProblem:
    path = ""
    for part in loc:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return ConfigProblem(path, message, _env_origin(loc))


def _env_origin(loc: Sequence[str]) -> str | None:
    """The environment variable a value at `loc` came from, or None (the file or a default).

    Mirrors how pydantic-settings reads them: WATCHDOG_<SECTION>__<KEY> (any case), a whole
    table or list as JSON in a shorter name, and OPENROUTER_*_KEY below WATCHDOG_*. Where a
    variable is set, its value is the one that was validated, since the environment wins.
    """
    names = {name.upper(): name for name in os.environ}
    fields: list[str] = []
    for part in loc:
        if part.isdigit():  # an item of a list: the list came whole, as JSON
            break
        fields.append(part)
    for end in range(len(fields), 0, -1):
        name = ENV_PREFIX + "__".join(fields[:end]).upper()
        if name in names:
            return names[name]
    for field_name, env in (("api_key", API_KEY_ENV), ("management_key", MANAGEMENT_KEY_ENV)):
        if fields == ["provider", field_name] and os.environ.get(env):
            return env
    return None


# -- presentation: the effective config (check-config) and the sample config ---------------

_SECTIONS: dict[str, type[_Section]] = {
    "provider": ProviderConfig,
    "budget": BudgetConfig,
    "killswitch": KillswitchConfig,
    "notify": NotifyConfig,
    "server": ServerConfig,
    "state": StateConfig,
    "audit": AuditConfig,
    "digest": DigestConfig,
    "caps": CapsConfig,
}
# Keys holding [[section.key]] arrays of tables, and the model of one table.
_TABLE_ARRAYS: dict[str, type[_Section]] = {"targets": NotifyTarget, "keys": KeyBudgetConfig}
MASK = "********"
# Keys the sample shows commented out although they have a default: setting one is a
# choice that excludes others (state.path excludes a PostgreSQL URL: a config made from the
# sample must be able to take the credential state_url without an edit).
_DEFAULT_AS_COMMENT = {("state", "path")}


def mask_url(url: str) -> str:
    """Given a URL, return only its scheme followed by MASK ("slack://********")."""
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    return f"{scheme.group(1)}://{MASK}" if scheme else MASK


def _split_userinfo(url: str) -> tuple[str, str, str] | None:
    """(scheme://, user:password, the rest from the host on) of a URL with a user:password@
    (up to its last "@", so a password with an unescaped "@", "?" or "/" stays in it), or
    None without one."""
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0:
        return None
    return scheme + sep, rest[:at], rest[at + 1 :]


def mask_userinfo(url: str) -> str:
    """Given a URL, return it with the password of its user:password@ masked
    ("https://user:********@host"); a user name alone (it may be a token) is masked too."""
    parts = _split_userinfo(url)
    if parts is None:
        return url
    head, userinfo, rest = parts
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:{MASK}" if colon else MASK
    return f"{head}{shown}@{rest}"


def _url_credentials(url: str) -> list[str]:
    """The password (as written and decoded) of a URL's user:password@, or a user name
    alone of 8 characters or more (a token); [] without one."""
    parts = _split_userinfo(url)
    if parts is None:
        return []
    from urllib.parse import unquote  # only for check-config and the daemon's start

    user, colon, password = parts[1].partition(":")
    secret = password if colon else (user if len(user) >= 8 else "")
    return sorted({secret, unquote(secret)} - {""})


def _plain(value: object) -> object:
    """A config value as TOML shows it: durations as "5m", paths as strings."""
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _toml_value(value: object) -> str:
    value = _plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def render_effective(settings: Settings, describe: Callable[[str], str] | None = None) -> str:
    """Given settings, return them as TOML with every secret masked. `describe` shows a
    notification URL without its secrets (the CLI passes watchdog.notify.describe_target,
    Apprise's privacy form); by default only the scheme is shown (mask_url)."""
    describe = describe or mask_url
    lines: list[str] = []
    for section, model in _SECTIONS.items():
        lines.append(f"[{section}]")
        values = getattr(settings, section)
        for name in model.model_fields:
            value = getattr(values, name)
            if name == "targets":
                continue
            if section == "state" and name == "path" and values.shared:
                lines.append("# path is not used: the state is in PostgreSQL (url)")
                continue
            if section == "state" and name == "url" and value is not None:
                value = values.shown  # the password masked, the rest as libpq reads it
            elif isinstance(value, SecretStr):
                value = MASK if value.get_secret_value() else ""
            elif section == "provider" and name == "base_url" and isinstance(value, str):
                value = mask_userinfo(value)
            if value is None:
                lines.append(f"# {name} is not set")
            else:
                lines.append(f"{name} = {_toml_value(value)}")
        lines.append("")
    for target in settings.notify.targets:
        lines.append("[[notify.targets]]")
        lines.append(f"url = {_toml_value(describe(target.url.get_secret_value()))}")
        lines.append(f"severities = {_toml_value(target.severities)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_example() -> str:
    """Return the sample config: every key with its description and its default, or a
    commented example for keys without one. `watchdog.example.toml` is this output."""
    lines = [
        "# budget-watchdog configuration: every key, its default and what it does.",
        "# Generated by `budget-watchdog check-config --example` from watchdog/config.py.",
        "# Every key can also be set by environment: WATCHDOG_<SECTION>__<KEY>, e.g.",
        '# WATCHDOG_BUDGET__DAILY_LIMIT=20. Durations: "90s", "5m", "4h", "7d" or seconds.',
        "",
    ]
    for section, model in _SECTIONS.items():
        lines.append(f"# {model.__doc__}")
        lines.append(f"[{section}]")
        for name, info in model.model_fields.items():
            lines.append(f"# {info.description}")
            example: Any = info.examples[0] if info.examples else ""
            if name in _TABLE_ARRAYS:
                lines += _example_tables(f"{section}.{name}", _TABLE_ARRAYS[name], example)
            elif info.default is None:
                lines.append(f"# {name} = {_toml_value(example)}")
            elif (section, name) in _DEFAULT_AS_COMMENT:
                lines.append(f"# {name} = {_toml_value(info.default)}")
            else:
                lines.append(f"{name} = {_toml_value(info.default)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _example_tables(dotted: str, model: type[_Section], tables: list[dict[str, Any]]) -> list[str]:
    """Commented [[array]] tables; the first one's keys carry their descriptions."""
    lines = []
    for index, table in enumerate(tables):
        lines.append(f"# [[{dotted}]]")
        entries = [f"# {key} = {_toml_value(value)}" for key, value in table.items()]
        width = max(len(entry) for entry in entries)
        for key, entry in zip(table, entries, strict=True):
            if index == 0:
                entry = f"{entry.ljust(width)}  # {model.model_fields[key].description}"
            lines.append(entry)
    return lines
