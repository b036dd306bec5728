"""The `routers:` and `router_defaults:` sections: where routers are and how to log in."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from monitor.config_types import Identifier, Section, Text, checked
from monitor.model import (
    DEFAULT_PORTS,
    Device,
    DeviceKind,
    Endpoint,
    HttpLogin,
    PollTarget,
    Protocol,
    Router,
    SnmpCredentials,
    iccid_problem,
    imei_problem,
)

SnmpAuth = Literal["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"]
SnmpPriv = Literal["DES", "AES", "AES-192", "AES-256"]


class SnmpSettings(Section):
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

    def to_credentials(self) -> SnmpCredentials:
        """The credentials as the collectors take them."""

        def reveal(secret: SecretStr | None) -> str:
            return secret.get_secret_value() if secret is not None else ""

        return SnmpCredentials(
            version=self.version,
            community=reveal(self.community),
            user=self.user or "",
            auth_protocol=self.auth_protocol,
            auth_key=reveal(self.auth_key),
            priv_protocol=self.priv_protocol,
            priv_key=reveal(self.priv_key),
        )


class HttpCredentials(Section):
    """Login for a router's web API, where an endpoint asks for it."""

    username: str = Field(min_length=1)
    password: SecretStr

    def to_login(self) -> HttpLogin:
        """The login as the collectors take it."""
        return HttpLogin(self.username, self.password.get_secret_value())


class RouterDefaults(Section):
    """Credentials for inventory routers (from `monitor import`) that `routers:` does not list."""

    snmp: SnmpSettings | None = None
    http: HttpCredentials | None = None


# The profiles that come with router-monitor, found from the package (no file is read here).


class RouterSettings(Section):
    """A router declared in the config file, with how to reach its management interface."""

    id: Identifier
    imei: Annotated[str, BeforeValidator(checked(imei_problem))]
    serial: Text
    order_number: Text
    organisation: Identifier
    iccid: Annotated[str, BeforeValidator(checked(iccid_problem))] | None = None
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

    def to_target(self) -> PollTarget:
        """What a collector needs to poll this router, credentials included."""
        endpoint = self.to_model().endpoint
        assert endpoint is not None  # a configured router always has one
        snmp = self.snmp.to_credentials() if self.snmp else None
        http = self.http.to_login() if self.http else None
        return PollTarget(self.id, endpoint, snmp, http)
