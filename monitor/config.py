"""Configuration: one YAML file plus `MONITOR_<SECTION>__<KEY>` environment overrides.

`load_settings(path, environ)` is the only entry point. It reads nothing but the file it is given
and the mapping it is handed, validates everything, and raises one `ConfigError` listing every
problem with its key path (`poll.interval: must be a duration like 60s`). The reference for every
key is `config/monitor.example.yaml`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from monitor import units
from monitor.config_alerts import AlertSettings, SupportPortalSettings
from monitor.config_notify import NotificationSettings
from monitor.config_report import cross_check, describe_errors
from monitor.config_routers import (
    HttpCredentials,
    RouterDefaults,
    RouterSettings,
    SnmpSettings,
)
from monitor.config_types import ByteSize, Duration, Identifier, ListenAddress, Section, Text
from monitor.errors import ConfigError, Problem
from monitor.model import Organisation, OrganisationKind

__all__ = [
    "HttpCredentials",
    "OrganisationSettings",
    "RouterDefaults",
    "RouterSettings",
    "Settings",
    "SnmpSettings",
    "load_settings",
]

ENV_PREFIX = "MONITOR_"
DEFAULT_DATA_CAP_BYTES = 20 * 10**9  # the programme's 20GB a month, decimal gigabytes


class DatabaseSettings(Section):
    """Where inventory and state are kept: a SQLite file (default) or PostgreSQL."""

    # repr=False: a PostgreSQL URL may carry a password.
    url: str = Field(default="sqlite:///var/monitor.db", repr=False)

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        scheme = url.partition("://")[0]
        if not url.partition("://")[2]:
            raise ValueError("must be a URL such as sqlite:///var/monitor.db")
        if scheme in ("postgresql", "postgres"):
            return "postgresql+psycopg://" + url.partition("://")[2]
        if scheme not in ("sqlite", "postgresql+psycopg"):
            raise ValueError("must start with sqlite:// or postgresql:// (psycopg 3)")
        return url


class HttpSettings(Section):
    """The status API, /metrics and /healthz."""

    listen: ListenAddress = units.HostPort("127.0.0.1", 8080)
    # Where `monitor api` (the status API in a process of its own, for large fleets) listens.
    api_listen: ListenAddress = units.HostPort("127.0.0.1", 8081)
    # If set, /metrics wants `Authorization: Bearer <it>` (its series name every tenant's routers).
    metrics_token: SecretStr | None = None

    @field_validator("metrics_token")
    @classmethod
    def _usable_token(cls, token: SecretStr | None) -> SecretStr | None:
        # Never echoed: the problem is described, not the value.
        if token is None:
            return None
        value = token.get_secret_value()
        if len(value) < 16:
            raise ValueError("must be at least 16 characters")
        if not all("!" <= char <= "~" for char in value):
            raise ValueError("must be printable ASCII without spaces (it is sent in a header)")
        return token


class PollSettings(Section):
    """How often and how hard routers are polled."""

    interval: Duration = timedelta(seconds=60)
    timeout: Duration = timedelta(seconds=10)
    concurrency: int = Field(default=200, ge=1, le=100_000)

    @model_validator(mode="after")
    def _timeout_fits(self) -> PollSettings:
        if self.interval < timedelta(seconds=1):
            raise ValueError("interval must be at least 1s")
        if not timedelta(0) < self.timeout < self.interval:
            raise ValueError("timeout must be more than 0s and shorter than interval")
        return self


class DataCapSettings(Section):
    """The monthly data allowance of each SIM; the contract decides it, it cannot be raised."""

    bytes: ByteSize = DEFAULT_DATA_CAP_BYTES


class HealthSettings(Section):
    """For-durations of the health states (unset: the core's defaults, see the example file)."""

    unreachable_after: Duration | None = None
    wan_down_after: Duration | None = None
    sim_absent_after: Duration | None = None
    capped_after: Duration | None = None
    unreadable_after: Duration | None = None
    recovery_after: Duration | None = None
    recovery_hold: Duration | None = None


class LogSettings(Section):
    """Logging to standard error."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class OrganisationSettings(Section):
    """An organisation declared in the config file (more come from `monitor import`)."""

    id: Identifier
    name: Text
    kind: OrganisationKind
    parent: Identifier | None = None

    def to_model(self) -> Organisation:
        """The inventory value this entry declares."""
        return Organisation(self.id, self.name, self.kind, self.parent)


def _shipped_profiles() -> str:
    """The profiles that come with router-monitor: `config/profiles` of a source checkout (or
    editable install), else where a wheel installs them (`<prefix>/share/router-monitor`)."""
    checkout = Path(__file__).resolve().parent.parent / "config" / "profiles"
    installed = Path(sys.prefix) / "share" / "router-monitor" / "profiles"
    return str(checkout if checkout.is_dir() or not installed.is_dir() else installed)


SHIPPED_PROFILES = _shipped_profiles()


class ProfileSettings(Section):
    """Where the per-model profiles are (relative paths: from the daemon's working directory)."""

    directory: str = SHIPPED_PROFILES


class Settings(Section):
    """Everything the daemon is told; built only by `load_settings`."""

    database: DatabaseSettings = DatabaseSettings()
    http: HttpSettings = HttpSettings()
    poll: PollSettings = PollSettings()
    timezone: str = "Europe/London"
    data_cap: DataCapSettings = DataCapSettings()
    health: HealthSettings = HealthSettings()
    notifications: NotificationSettings = NotificationSettings()
    alerts: AlertSettings = AlertSettings()
    support_portal: SupportPortalSettings | None = None
    log: LogSettings = LogSettings()
    profiles: ProfileSettings = ProfileSettings()
    router_defaults: RouterDefaults = RouterDefaults()
    organisations: tuple[OrganisationSettings, ...] = ()
    routers: tuple[RouterSettings, ...] = ()

    def without_routers(self) -> Settings:
        """These settings less the routers they declare, for a process done with them: parsed,
        each is about 7 objects that stay in memory and in every full garbage collection (the
        bench's 100k routers: ~730k objects)."""
        return self.model_copy(update={"routers": ()})

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}; use an IANA name") from None
        return name

    @property
    def zone(self) -> ZoneInfo:
        """The time zone months and working days are counted in."""
        return ZoneInfo(self.timezone)


PASSWORD_KEY_ENV = "MONITOR_PASSWORD_KEY"  # noqa: S105 - a variable name; the key: 32 bytes, base64
PASSWORD_KEY_FILE_ENV = "MONITOR_PASSWORD_KEY_FILE"  # noqa: S105 - or a file holding it


def password_key(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The device password key's text and where it came from ($MONITOR_PASSWORD_KEY, else the
    file named by $MONITOR_PASSWORD_KEY_FILE); None if neither is set. Kept out of the config
    file on purpose (docs/api.md); an unreadable file is a ConfigError."""
    text = environ.get(PASSWORD_KEY_ENV, "").strip()
    if text:
        return text, PASSWORD_KEY_ENV
    path = environ.get(PASSWORD_KEY_FILE_ENV)
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a text file"
        raise ConfigError(
            "password key", [Problem(PASSWORD_KEY_FILE_ENV, f"cannot read: {reason}")]
        ) from None
    return (text, PASSWORD_KEY_FILE_ENV) if text else None


def load_settings(path: str | Path | None, environ: Mapping[str, str]) -> Settings:
    """Read, merge and validate the file and `MONITOR_*__*` variables; raise ConfigError."""
    source = str(path) if path is not None else "configuration"
    raw = _read_yaml(path) if path is not None else {}
    problems: list[Problem] = []
    env_sources = _apply_environment(raw, environ, problems)
    problems.extend(cross_check(raw))
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems = describe_errors(exc, raw, env_sources, Settings) + problems
        settings = None
    if problems or settings is None:
        raise ConfigError(source, sorted(set(problems), key=problems.index))
    return settings


def _read_yaml(path: str | Path) -> dict[str, Any]:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [Problem("", f"cannot read the file: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [Problem("", "is not UTF-8 text")]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or "is not valid YAML"
        raise ConfigError(source, [Problem(where, f"invalid YAML: {reason}")]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, [Problem("", "must be a YAML mapping of sections")])
    # An empty section (`routers:` with nothing under it) means "the defaults", not null.
    return {key: value for key, value in data.items() if value is not None}


def _apply_environment(
    raw: dict[str, Any], environ: Mapping[str, str], problems: list[Problem]
) -> dict[tuple[str | int, ...], str]:
    """Write `MONITOR_A__B__C=v` into raw["a"]["b"]["c"]; list items are picked by their id."""
    sources: dict[tuple[str | int, ...], str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        keys = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if not all(keys):
            problems.append(Problem(name, "empty key in the variable's name"))
            continue
        node: Any = raw
        path: list[str | int] = []
        for depth, key in enumerate(keys):
            last = depth == len(keys) - 1
            if isinstance(node, list):
                index = _item_index(node, key)
                if index is None:
                    problems.append(Problem(name, f"no entry with id {key!r} in {path[0]}"))
                    break
                path.append(index)
                if last:
                    problems.append(Problem(name, "names a whole list entry; name a key in it"))
                    break
                node = node[index]
                continue
            if not isinstance(node, dict):
                problems.append(Problem(name, f"{_dotted(path)} is not a section"))
                break
            path.append(key)
            if last:
                node[key] = environ[name]
                sources[tuple(path)] = name
            else:
                node = node.setdefault(key, {})
    return sources


def _item_index(items: list[Any], key: str) -> int | None:
    def norm(text: str) -> str:
        return text.lower().replace("-", "_").replace(".", "_")

    for index, item in enumerate(items):
        if isinstance(item, dict) and norm(str(item.get("id", ""))) == norm(key):
            return index
    return None


def _dotted(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
