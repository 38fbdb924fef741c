"""The configuration contract: one pydantic model, loaded from TOML and the environment.

Sources, strongest first: `WATCHDOG_<SECTION>__<KEY>` environment variables,
`OPENROUTER_API_KEY` / `OPENROUTER_MANAGEMENT_KEY`, the TOML file, then the defaults.
Every key carries its description and an example here, in one place: the sample config
(`watchdog.example.toml`) is generated from this module and a test fails when they drift.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
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
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

CONFIG_ENV = "WATCHDOG_CONFIG"
API_KEY_ENV = "OPENROUTER_API_KEY"
MANAGEMENT_KEY_ENV = "OPENROUTER_MANAGEMENT_KEY"
# systemd's LoadCredential= puts secrets here; the credential names we look for by default.
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
API_KEY_CREDENTIAL = "openrouter_api_key"
MANAGEMENT_KEY_CREDENTIAL = "openrouter_management_key"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")


def parse_duration(value: object) -> timedelta:
    """Given "90s", "5m", "4h", "7d", "1h30m", a number of seconds or a timedelta, return
    a timedelta. Raise ValueError for anything else or a negative duration.

    Hand-written: the format is four units and a regex; a dependency would cost more.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError("expected a duration like '90s', '5m', '4h', '7d' or seconds")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif text and re.fullmatch(rf"(?:{_DURATION_RE.pattern}\s*)+", text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_RE.findall(text))
        else:
            raise ValueError(f"{value!r} is not a duration like '90s', '5m', '4h', '7d'")
    else:
        raise ValueError("expected a duration like '90s', '5m', '4h', '7d' or seconds")
    if seconds < 0:
        raise ValueError("must not be negative")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Given a timedelta, return the shortest exact form ("90s", "5m", "4h", "7d")."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
Severity = Literal["warning", "critical"]
NonNegative = Annotated[float, Field(ge=0)]


def _doc(description: str, example: object = None) -> Any:
    """Field metadata read by the example generator: a description and, for optional keys,
    the example value shown commented out."""
    extra: dict[str, Any] = {"doc": description}
    if example is not None:
        extra["example"] = example
    return extra


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ProviderConfig(_Section):
    """[provider]: where spend is read from."""

    name: Literal["openrouter"] = Field(
        "openrouter", json_schema_extra=_doc("Provider; only OpenRouter for now.")
    )
    base_url: str = Field(
        "https://openrouter.ai/api/v1",
        json_schema_extra=_doc("API root; point it at a local fake for tests."),
    )
    api_key: SecretStr | None = Field(
        None,
        json_schema_extra=_doc(
            "The key whose spend is watched. Prefer api_key_file or OPENROUTER_API_KEY.",
            "sk-or-v1-...",
        ),
    )
    api_key_file: Path | None = Field(
        None,
        json_schema_extra=_doc(
            "File holding the watched key; relative paths resolve in $CREDENTIALS_DIRECTORY.",
            "/etc/budget-watchdog/openrouter_api_key",
        ),
    )
    management_key: SecretStr | None = Field(
        None,
        json_schema_extra=_doc(
            "Optional management key: account balance, all keys, activity, key disable. "
            "Prefer management_key_file or OPENROUTER_MANAGEMENT_KEY.",
            "sk-or-v1-...",
        ),
    )
    management_key_file: Path | None = Field(
        None,
        json_schema_extra=_doc(
            "File holding the management key.", "/etc/budget-watchdog/openrouter_management_key"
        ),
    )
    poll_interval: Duration = Field(
        timedelta(seconds=60),
        json_schema_extra=_doc("How often the provider is polled (1s minimum)."),
    )
    timeout: Duration = Field(
        timedelta(seconds=10), json_schema_extra=_doc("Timeout of one HTTP request.")
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

    @model_validator(mode="after")
    def _read_key_files(self) -> ProviderConfig:
        # A key given directly (file, env) wins over a key file; a key file is read here so
        # that a missing or unreadable one is a config error at start, with its path.
        self.api_key_file = _resolve_credential_path(self.api_key_file)
        self.management_key_file = _resolve_credential_path(self.management_key_file)
        if self.api_key is None and self.api_key_file is not None:
            self.api_key = _read_secret(self.api_key_file, "api_key_file")
        if self.management_key is None and self.management_key_file is not None:
            self.management_key = _read_secret(self.management_key_file, "management_key_file")
        for field in ("api_key", "management_key"):
            secret: SecretStr | None = getattr(self, field)
            if secret is not None and not secret.get_secret_value().strip():
                setattr(self, field, None)
        return self


def _resolve_credential_path(path: Path | None) -> Path | None:
    if path is None:
        return None
    path = Path(os.path.expandvars(str(path))).expanduser()
    creds = os.environ.get(CREDENTIALS_ENV)
    if not path.is_absolute() and creds:
        path = Path(creds) / path
    return path


def _key_text(path: Path) -> str:
    """A key file's content without the newline editors add. Raise OSError."""
    return path.read_text(encoding="utf-8").strip()


def _read_secret(path: Path, field: str) -> SecretStr:
    try:
        text = _key_text(path)
    except OSError as exc:
        raise PydanticCustomError(
            "key_file",
            "cannot read {path}: {reason}",
            {"path": str(path), "reason": exc.strerror or type(exc).__name__, "field": field},
        ) from None
    if not text:
        raise PydanticCustomError(
            "key_file", "{path} is empty", {"path": str(path), "field": field}
        )
    return SecretStr(text)


class BudgetConfig(_Section):
    """[budget]: the limits and targets findings are judged against."""

    timezone: str = Field(
        "UTC", json_schema_extra=_doc("Day and month boundaries for our own limits (IANA name).")
    )
    daily_limit: Annotated[float, Field(gt=0)] | None = Field(
        None, json_schema_extra=_doc("Spend allowed per day, USD.", 20.0)
    )
    monthly_limit: Annotated[float, Field(gt=0)] | None = Field(
        None, json_schema_extra=_doc("Spend allowed per calendar month, USD.", 400.0)
    )
    warn_ratio: float = Field(
        0.8,
        gt=0,
        le=1,
        json_schema_extra=_doc("Warning at this share of a limit; critical at 1.0."),
    )
    buffer_days_warning: NonNegative = Field(
        7.0, json_schema_extra=_doc("Warn when credit lasts fewer days at the average burn.")
    )
    buffer_days_critical: NonNegative = Field(
        3.0, json_schema_extra=_doc("Critical when credit lasts fewer days than this.")
    )
    min_balance: NonNegative = Field(
        0.0, json_schema_extra=_doc("Critical when the balance falls to this many USD.")
    )
    spike_factor: float = Field(
        4.0,
        gt=1,
        json_schema_extra=_doc("Spike: 1-hour burn above this many times the 7-day baseline."),
    )
    spike_min_rate: NonNegative = Field(
        0.5,
        json_schema_extra=_doc("Spike: only above this rate in USD/h, so idle keys stay quiet."),
    )
    hysteresis: float = Field(
        0.05,
        ge=0,
        lt=1,
        json_schema_extra=_doc(
            "A finding resolves only when its value is this share back inside its threshold."
        ),
    )
    stale_after: Duration = Field(
        timedelta(minutes=10),
        json_schema_extra=_doc("Stale when no poll succeeded for this long."),
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
    def _warning_before_critical(self) -> BudgetConfig:
        if self.buffer_days_warning < self.buffer_days_critical:
            raise PydanticCustomError(
                "order",
                "buffer_days_warning ({w:g}) is below buffer_days_critical ({c:g}): the "
                "warning would come after the critical alert",
                {
                    "w": self.buffer_days_warning,
                    "c": self.buffer_days_critical,
                    "field": "buffer_days_warning",
                },
            )
        if (
            self.daily_limit is not None
            and self.monthly_limit is not None
            and self.daily_limit > self.monthly_limit
        ):
            raise PydanticCustomError(
                "order",
                "daily_limit ({d:g}) is above monthly_limit ({m:g})",
                {"d": self.daily_limit, "m": self.monthly_limit, "field": "daily_limit"},
            )
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class KillswitchConfig(_Section):
    """[killswitch]: the permit file batch jobs check before they launch."""

    path: Path = Field(
        Path("/run/budget-watchdog/permit"),
        json_schema_extra=_doc("The permit: present while launches are allowed."),
    )
    revoke_on: list[Severity] = Field(
        ["critical"], json_schema_extra=_doc("Finding severities that revoke the permit.")
    )
    ttl: Duration = Field(
        timedelta(minutes=5),
        json_schema_extra=_doc("Permit lease: an expired permit means no-go."),
    )
    latch: bool = Field(False, json_schema_extra=_doc("Stay revoked until `budget-watchdog arm`."))
    on_stale: Literal["revoke", "keep"] = Field(
        "revoke", json_schema_extra=_doc("What stale data does to the permit.")
    )
    disable_keys: bool = Field(
        False,
        json_schema_extra=_doc("Also disable the watched key(s) at the provider (management key)."),
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
        json_schema_extra=_doc("Any Apprise URL (slack://, mailtos://, json://).")
    )
    severities: list[Literal["info", "warning", "critical"]] = Field(
        ["warning", "critical"], json_schema_extra=_doc("Severities sent to this target.")
    )


class NotifyConfig(_Section):
    """[notify]: where alerts go and how often they repeat."""

    repeat_interval: Duration = Field(
        timedelta(hours=4),
        json_schema_extra=_doc("Remind at this interval while a finding lasts (0 = never)."),
    )
    send_resolved: bool = Field(True, json_schema_extra=_doc("Send a message when a finding ends."))
    targets: list[NotifyTarget] = Field(
        [], json_schema_extra=_doc("Apprise targets, each a [[notify.targets]] table.")
    )


class ServerConfig(_Section):
    """[server]: the local status endpoint (/status, /preflight, /metrics)."""

    listen: str = Field(
        "127.0.0.1:8787", json_schema_extra=_doc("host:port of the status endpoint.")
    )
    token: SecretStr = Field(
        SecretStr(""),
        json_schema_extra=_doc("Bearer token; required when listen is not loopback."),
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_listen(value)
        return value

    @model_validator(mode="after")
    def _token_off_loopback(self) -> ServerConfig:
        host, _ = split_listen(self.listen)
        if not is_loopback(host) and not self.token.get_secret_value():
            raise PydanticCustomError(
                "token_required",
                "required when server.listen ({listen}) is not a loopback address",
                {"listen": self.listen, "field": "token"},
            )
        return self

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]


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


class StateConfig(_Section):
    """[state]: where history, alert state and the outbox are kept."""

    path: Path = Field(
        Path("/var/lib/budget-watchdog/state.db"),
        json_schema_extra=_doc("SQLite file (created with its directory)."),
    )


# The TOML file's content for the load under way; a source below reads it (see load()).
_file_data: ContextVar[dict[str, Any] | None] = ContextVar("_file_data", default=None)


class _FileSource(InitSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, init_kwargs=_file_data.get() or {})


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
    """The whole configuration. Build it with load(), which reports errors readably."""

    model_config = SettingsConfigDict(
        env_prefix="WATCHDOG_",
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        validate_default=True,
    )

    provider: ProviderConfig = ProviderConfig()
    budget: BudgetConfig = BudgetConfig()
    killswitch: KillswitchConfig = KillswitchConfig()
    notify: NotifyConfig = NotifyConfig()
    server: ServerConfig = ServerConfig()
    state: StateConfig = StateConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _OpenRouterEnvSource(settings_cls),
            _FileSource(settings_cls),
        )

    @property
    def has_key(self) -> bool:
        return self.provider.api_key is not None or self.provider.management_key is not None

    def secrets(self) -> list[str]:
        """Every secret value this config holds, for scrubbing output."""
        values = [self.provider.api_key, self.provider.management_key, self.server.token]
        values += [target.url for target in self.notify.targets]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


@dataclass(frozen=True)
class ConfigProblem:
    """One config error: the dotted path of the key and what is wrong with it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"At '{self.path}': {self.message}" if self.path else self.message


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
    """A loaded config, where it came from, and warnings for the operator."""

    settings: Settings
    source: Path | None
    warnings: list[str]


def config_path(cli_path: str | None) -> Path | None:
    """Given --config (or None), return the file to read: --config, else $WATCHDOG_CONFIG."""
    value = cli_path or os.environ.get(CONFIG_ENV)
    return Path(value) if value else None


def load(
    path: Path | None,
    *,
    require_key: bool = True,
    check_targets: bool = False,
    overrides: dict[str, Any] | None = None,
) -> Loaded:
    """Given a TOML path (or None for defaults and env only), return the loaded config.

    Raise ConfigError listing every problem with its path when the file cannot be read or
    parsed, a value is invalid, no key is configured (with require_key), or a notification
    URL is not understood by Apprise (with check_targets). `overrides` replace file values
    (the demo uses it) and yield to the environment like the file does.
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
        data = _deep_merge(data, overrides)

    token = _file_data.set(data)
    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigError(list(_problems(exc)), source) from None
    except SettingsError as exc:
        raise ConfigError([_env_problem(exc)], source) from None
    finally:
        _file_data.reset(token)

    problems: list[ConfigProblem] = list(_default_credentials(settings, path))
    if require_key and not settings.has_key:
        problems.append(
            ConfigProblem(
                "provider.api_key",
                "no key configured: set provider.api_key_file (or api_key, or "
                f"{API_KEY_ENV}), or a management key",
            )
        )
    if check_targets:
        problems += check_notify_targets(settings)
    if problems:
        raise ConfigError(problems, source)
    return Loaded(settings, path, warnings)


def _default_credentials(settings: Settings, config: Path | None) -> Iterator[ConfigProblem]:
    """Keys nobody configured explicitly, found by convention: under systemd the
    LoadCredential= files ($CREDENTIALS_DIRECTORY/openrouter_api_key, …), elsewhere
    keys/api_key and keys/management_key beside the config file (what install.sh sets up,
    so `check-config` as root sees the same keys the service gets as credentials)."""
    provider = settings.provider
    creds = os.environ.get(CREDENTIALS_ENV)
    places = []
    if creds:
        places.append((Path(creds), API_KEY_CREDENTIAL, MANAGEMENT_KEY_CREDENTIAL))
    if config is not None:
        places.append((config.parent / "keys", "api_key", "management_key"))
    for directory, api_name, mgmt_name in places:
        for field, name in (("api_key", api_name), ("management_key", mgmt_name)):
            candidate = directory / name
            if getattr(provider, field) is not None or not candidate.is_file():
                continue
            try:
                text = _key_text(candidate)
            except OSError as exc:
                yield ConfigProblem(
                    f"provider.{field}_file", f"cannot read {candidate}: {exc.strerror}"
                )
                continue
            if text:
                setattr(provider, field, SecretStr(text))
                setattr(provider, f"{field}_file", candidate)


def check_notify_targets(settings: Settings) -> list[ConfigProblem]:
    """Given settings, return a problem for every notification URL Apprise cannot use.

    Imports Apprise, which is slow: only commands that notify call this.
    """
    from watchdog.notify import describe_target, url_problem

    problems = []
    for index, target in enumerate(settings.notify.targets):
        problem = url_problem(target.url.get_secret_value())
        if problem:
            shown = describe_target(target.url.get_secret_value())
            problems.append(ConfigProblem(f"notify.targets[{index}].url", f"{shown}: {problem}"))
    return problems


def _permission_warnings(path: Path, data: dict[str, Any]) -> list[str]:
    held = [
        dotted
        for dotted, present in (
            ("provider.api_key", _get(data, "provider", "api_key")),
            ("provider.management_key", _get(data, "provider", "management_key")),
            ("server.token", _get(data, "server", "token")),
            ("notify.targets", _get(data, "notify", "targets")),
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
    prefix = f"WATCHDOG_{section.upper()}__" if section else "WATCHDOG_"
    return ConfigProblem(
        section,
        f"a {prefix}* environment variable is not valid: lists and tables must be JSON, "
        f"e.g. WATCHDOG_KILLSWITCH__REVOKE_ON='[\"critical\"]'",
    )


def _problems(exc: ValidationError) -> Iterator[ConfigProblem]:
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error["loc"]]
        ctx = error.get("ctx") or {}
        if "field" in ctx:
            loc.append(str(ctx["field"]))
        path = ""
        for part in loc:
            path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        yield ConfigProblem(path, message)


# ----------------------------------------------------------------------------------------
# Presentation: the effective config (check-config) and the sample config (--example).

_SECTIONS: dict[str, type[_Section]] = {
    "provider": ProviderConfig,
    "budget": BudgetConfig,
    "killswitch": KillswitchConfig,
    "notify": NotifyConfig,
    "server": ServerConfig,
    "state": StateConfig,
}
MASK = "********"


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


def _doc_of(model: type[BaseModel], name: str) -> dict[str, Any]:
    extra = model.model_fields[name].json_schema_extra
    return extra if isinstance(extra, dict) else {}


def render_effective(settings: Settings) -> str:
    """Given settings, return them as TOML with every secret masked."""
    from watchdog.notify import describe_target

    lines: list[str] = []
    for section, model in _SECTIONS.items():
        lines.append(f"[{section}]")
        values = getattr(settings, section)
        for name in model.model_fields:
            value = getattr(values, name)
            if name == "targets":
                continue
            if isinstance(value, SecretStr):
                value = MASK if value.get_secret_value() else ""
            if value is None:
                lines.append(f"# {name} is not set")
            else:
                lines.append(f"{name} = {_toml_value(value)}")
        lines.append("")
    for target in settings.notify.targets:
        lines.append("[[notify.targets]]")
        lines.append(f"url = {_toml_value(describe_target(target.url.get_secret_value()))}")
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
        for name, field in model.model_fields.items():
            doc = _doc_of(model, name)
            lines.append(f"# {doc['doc']}")
            if name == "targets":
                url_doc = _doc_of(NotifyTarget, "url")["doc"]
                sev_doc = _doc_of(NotifyTarget, "severities")["doc"]
                lines += [
                    "# [[notify.targets]]",
                    f'# url = "slack://TokenA/TokenB/TokenC"    # {url_doc}',
                    f'# severities = ["warning", "critical"]  # {sev_doc}',
                    "# [[notify.targets]]",
                    '# url = "mailtos://user:pass@example.com?to=ops@example.com"',
                    '# severities = ["critical"]',
                ]
            elif field.default is None:
                lines.append(f"# {name} = {_toml_value(doc.get('example', ''))}")
            else:
                lines.append(f"{name} = {_toml_value(field.default)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
