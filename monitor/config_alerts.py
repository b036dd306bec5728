"""The `alerts:` section (rule thresholds) and `support_portal:` (the ServiceNow instance)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.config_notify import http_url
from monitor.config_types import Duration, Section
from monitor.model import SupportRequestKind


class OutageSettings(Section):
    """When routers of one organisation going offline together count as one outage."""

    min_routers: int | None = Field(default=None, ge=2)
    window: Duration | None = None
    fire_after: Duration | None = None


class AlertSettings(Section):
    """Rule thresholds and for-durations (unset: the core's defaults, see the example file)."""

    offline_after: Duration | None = None
    wan_down_after: Duration | None = None
    sim_removed_after: Duration | None = None
    cap_warning_ratios: tuple[float, ...] | None = None
    battery_low_percent: int | None = Field(default=None, ge=1, le=99)
    battery_low_after: Duration | None = None
    response_working_days: int | None = Field(default=None, ge=1, le=30)
    holiday_region: Literal["ENG", "WLS"] | None = None
    outage: OutageSettings = OutageSettings()
    # How often the rules are evaluated: for-durations are minutes, so 30s is ample.
    evaluation_interval: Duration = timedelta(seconds=30)

    @field_validator("evaluation_interval")
    @classmethod
    def _evaluation(cls, every: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= every <= timedelta(minutes=5):
            raise ValueError("must be between 1s and 5m")
        return every

    @field_validator("cap_warning_ratios")
    @classmethod
    def _ratios(cls, ratios: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if ratios is not None and not all(0 < ratio < 1 for ratio in ratios):
            raise ValueError("each ratio must lie between 0 and 1 (e.g. [0.8, 0.9])")
        return ratios


# Informational kinds are kept out of the portal unless asked for: the cap cannot be raised.
DEFAULT_SENT = tuple(
    kind for kind in SupportRequestKind if kind is not SupportRequestKind.DATA_CAP_REACHED
)


class SupportPortalSettings(Section):
    """The support portal (a ServiceNow instance) support requests are raised in."""

    url: str
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None  # an OAuth bearer token instead of basic auth
    caller_id: str | None = None  # the portal user requests are raised as
    send: tuple[SupportRequestKind, ...] = DEFAULT_SENT  # other kinds are only recorded
    assignment_groups: dict[SupportRequestKind, str] = Field(default_factory=dict)
    resolve: bool = True  # resolve the incident when the problem clears (else a work note)
    close_code: str = Field(default="Resolved by caller", min_length=1)
    timeout: Duration = timedelta(seconds=10)
    lease: Duration = timedelta(minutes=2)  # a sender that died holds a request this long

    _url = field_validator("url")(lambda cls, url: http_url(url))

    @model_validator(mode="after")
    def _one_login(self) -> SupportPortalSettings:
        basic = self.username is not None or self.password is not None
        if basic and (self.username is None or self.password is None):
            raise ValueError("username and password go together")
        if basic == (self.token is not None):
            raise ValueError("give either username and password, or token")
        if self.lease <= self.timeout * 4:
            raise ValueError("lease must be more than 4 times the timeout")
        return self
