"""Configuration: one YAML file plus `MONITOR_<SECTION>__<KEY>` environment overrides.

`load_settings(path, environ)` is the only entry point. It reads nothing but the file it is given
and the mapping it is handed, validates everything, and raises one `ConfigError` listing every
problem with its key path (`poll.interval: must be a duration like 60s`). The reference for every
key is `config/monitor.example.yaml`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
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

from monitor import units
from monitor.config_report import cross_check, describe_errors
from monitor.errors import ConfigError, Problem
from monitor.model import (
    DEFAULT_PORTS,
    Device,
    DeviceKind,
    Endpoint,
    Organisation,
    OrganisationKind,
    Protocol,
    Router,
    iccid_problem,
    identifier_problem,
    imei_problem,
)

ENV_PREFIX = "MONITOR_"
DEFAULT_DATA_CAP_BYTES = 20 * 10**9  # the programme's 20GB a month, decimal gigabytes


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a duration like 60s, 5m or 1h30m")
    return units.parse_duration(value)


def _byte_size(value: Any) -> int:
    if not isinstance(value, str | int):
        raise ValueError("must be a size like 20GB or a number of bytes")
    return units.parse_byte_size(value)


def _host_port(value: Any) -> units.HostPort:
    if isinstance(value, units.HostPort):
        return value
    if not isinstance(value, str):
        raise ValueError("must be host:port, such as 127.0.0.1:8080")
    return units.parse_host_port(value)


def _checked(check: Any) -> Any:
    def validate(value: str) -> str:
        problem = check(value)
        if problem:
            raise ValueError(problem)
        return value

    return validate


Duration = Annotated[timedelta, BeforeValidator(_duration), PlainSerializer(units.format_duration)]
ByteSize = Annotated[int, BeforeValidator(_byte_size)]
ListenAddress = Annotated[units.HostPort, BeforeValidator(_host_port), PlainSerializer(str)]
Identifier = Annotated[str, BeforeValidator(_checked(identifier_problem))]
Text = Annotated[str, Field(min_length=1, max_length=200)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class DatabaseSettings(_Section):
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


class HttpSettings(_Section):
    """The status API, /metrics and /healthz."""

    listen: ListenAddress = units.HostPort("127.0.0.1", 8080)


class PollSettings(_Section):
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


class DataCapSettings(_Section):
    """The monthly data allowance of each SIM; the contract decides it, it cannot be raised."""

    bytes: ByteSize = DEFAULT_DATA_CAP_BYTES


class LogSettings(_Section):
    """Logging to standard error."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class OrganisationSettings(_Section):
    """An organisation declared in the config file (more come from `monitor import`)."""

    id: Identifier
    name: Text
    kind: OrganisationKind
    parent: Identifier | None = None

    def to_model(self) -> Organisation:
        """The inventory value this entry declares."""
        return Organisation(self.id, self.name, self.kind, self.parent)


SnmpAuth = Literal["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"]
SnmpPriv = Literal["DES", "AES", "AES-192", "AES-256"]


class SnmpSettings(_Section):
    """SNMP credentials: v2c `community`, or v3 USM `user` with optional auth and privacy."""

    version: Literal["2c", "3"]
    community: SecretStr | None = None
    user: str | None = None
    auth_protocol: SnmpAuth | None = None
    auth_key: SecretStr | None = None
    priv_protocol: SnmpPriv | None = None
    priv_key: SecretStr | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        # YAML reads `version: 3` as a number and `version: 2c` as text; accept both spellings.
        return {2: "2c", 3: "3", "2": "2c", "v2c": "2c", "v3": "3"}.get(value, value)

    @model_validator(mode="after")
    def _complete(self) -> SnmpSettings:
        v3_keys = ("user", "auth_protocol", "auth_key", "priv_protocol", "priv_key")
        if self.version == "2c":
            if self.community is None:
                raise ValueError("community is required for SNMP v2c")
            stray = [key for key in v3_keys if getattr(self, key) is not None]
            if stray:
                raise ValueError(f"{', '.join(stray)} only apply to SNMP v3")
            return self
        problems = []
        if self.community is not None:
            problems.append("community only applies to SNMP v2c")
        if not self.user:
            problems.append("user is required for SNMP v3")
        for proto, key in (("auth_protocol", "auth_key"), ("priv_protocol", "priv_key")):
            secret = getattr(self, key)
            if (getattr(self, proto) is None) != (secret is None):
                problems.append(f"{proto} and {key} go together")
            elif secret is not None and len(secret.get_secret_value()) < 8:
                problems.append(f"{key} must be at least 8 characters (RFC 3414)")
        if self.priv_protocol is not None and self.auth_protocol is None:
            problems.append("privacy needs authentication: set auth_protocol and auth_key")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class HttpCredentials(_Section):
    """Login for a router's web API, where an endpoint asks for it."""

    username: str = Field(min_length=1)
    password: SecretStr


class RouterSettings(_Section):
    """A router declared in the config file, with how to reach its management interface."""

    id: Identifier
    imei: Annotated[str, BeforeValidator(_checked(imei_problem))]
    serial: Text
    order_number: Text
    organisation: Identifier
    iccid: Annotated[str, BeforeValidator(_checked(iccid_problem))] | None = None
    protocol: Protocol
    host: str = Field(min_length=1, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)
    profile: Identifier
    snmp: SnmpSettings | None = None
    http: HttpCredentials | None = None

    @field_validator("imei", "iccid", "serial", "order_number", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        # An unquoted IMEI or order number reads as a YAML integer; the digits are what matter.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _credentials_match_protocol(self) -> RouterSettings:
        if self.protocol is Protocol.SNMP:
            if self.snmp is None:
                raise ValueError("protocol snmp needs an snmp: section with credentials")
            if self.http is not None:
                raise ValueError("http: credentials only apply to protocol hilink")
        elif self.snmp is not None:
            raise ValueError("snmp: credentials only apply to protocol snmp")
        return self

    def to_model(self) -> Router:
        """The inventory value this entry declares (credentials stay in the settings)."""
        device = Device(
            serial=self.serial,
            kind=DeviceKind.ROUTER,
            organisation_id=self.organisation,
            order_number=self.order_number,
            imei=self.imei,
        )
        port = self.port or DEFAULT_PORTS[self.protocol]
        endpoint = Endpoint(self.protocol, self.host, port, self.profile)
        return Router(self.id, device, self.iccid, endpoint)


class Settings(_Section):
    """Everything the daemon is told; built only by `load_settings`."""

    database: DatabaseSettings = DatabaseSettings()
    http: HttpSettings = HttpSettings()
    poll: PollSettings = PollSettings()
    timezone: str = "Europe/London"
    data_cap: DataCapSettings = DataCapSettings()
    log: LogSettings = LogSettings()
    organisations: tuple[OrganisationSettings, ...] = ()
    routers: tuple[RouterSettings, ...] = ()

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
