"""The status API's response and request bodies (pydantic), so the OpenAPI document is complete."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from monitor.model import (
    Alert,
    AlertState,
    DeviceStatus,
    Health,
    OrganisationKind,
    Rule,
    Severity,
    SupportRequest,
    SupportRequestKind,
    SupportRequestState,
)


class Page(BaseModel):
    """Where a page sits in the whole listing."""

    total: int = Field(description="how many items match the filters, over every page")
    limit: int
    offset: int


class RouterItem(BaseModel):
    """A router in a listing."""

    id: str
    imei: str | None
    serial: str
    organisation: str
    order_number: str
    device_status: DeviceStatus
    monitored: bool
    state: Health
    state_since: datetime | None


class RouterPage(Page):
    """One page of routers, by router id."""

    items: list[RouterItem]


class HealthOut(BaseModel):
    """The router's health state and since when."""

    state: Health
    since: datetime | None
    changing_to: Health | None = Field(None, description="seen lately, not yet long enough")


class PollOut(BaseModel):
    """The latest polls of the router's management interface (since the daemon started)."""

    last_attempt_at: datetime | None
    last_result: str | None = Field(description="`sample`, or why the poll failed")
    last_success_at: datetime | None
    failures_in_row: int


class SignalOut(BaseModel):
    """Radio quality from the latest sample (null where the router does not report it)."""

    rssi_dbm: float | None
    rsrp_dbm: float | None
    rsrq_db: float | None
    sinr_db: float | None
    network_type: str | None


class SimOut(BaseModel):
    """The SIM: as the inventory knows it and as the router last reported it."""

    iccid: str | None
    reported_iccid: str | None
    state: str | None = Field(description="ready, absent, pin_locked, ... (latest sample)")
    link: str | None = Field(description="the mobile connection (latest sample)")


class UsageOut(BaseModel):
    """This calendar month's data use of the router's SIM against the cap."""

    month: str
    used_bytes: int
    received_bytes: int
    sent_bytes: int
    partial: bool = Field(description="counting began mid-month: a lower bound")
    cap_bytes: int
    remaining_bytes: int
    capped: bool
    resets_at: datetime = Field(description="00:00 UK time on the 1st of next month")
    forecast_bytes: int | None
    forecast_cap_reached_at: datetime | None
    forecast_confidence: str | None


class AlertOut(BaseModel):
    """An alert (firing, pending, or resolved and not yet forgotten)."""

    fingerprint: str
    rule: Rule
    state: AlertState
    severity: Severity
    router_id: str | None
    organisation_id: str | None
    active_since: datetime | None
    starts_at: datetime | None
    ends_at: datetime | None
    episode_id: str | None
    support_request: SupportRequestKind | None
    labels: dict[str, str]
    annotations: dict[str, str]

    @classmethod
    def of(cls, alert: Alert) -> AlertOut:
        """The API's view of an alert."""
        return cls(
            fingerprint=alert.fingerprint,
            rule=alert.rule,
            state=alert.state,
            severity=alert.severity,
            router_id=alert.router_id,
            organisation_id=alert.organisation_id,
            active_since=alert.active_since,
            starts_at=alert.starts_at,
            ends_at=alert.ends_at,
            episode_id=alert.episode_id,
            support_request=alert.request,
            labels=alert.labels,
            annotations=alert.annotations,
        )


class AlertPage(Page):
    """One page of alerts."""

    items: list[AlertOut]


class SupportRequestOut(BaseModel):
    """A support request raised with the portal (or queued for it)."""

    correlation_id: str
    kind: SupportRequestKind
    state: SupportRequestState
    rule: str
    organisation_id: str | None
    on_behalf_of: str | None = Field(description="the LA or trust raising it for a school")
    router_id: str | None
    imei: str | None
    iccid: str | None
    order_number: str | None
    summary: str
    raised_at: datetime
    updated_at: datetime
    portal_number: str | None
    opened_at: datetime | None
    responded_at: datetime | None
    resolved_at: datetime | None
    response_due_at: datetime | None = Field(
        description="when the portal's response is due: the configured working days (3 by "
        "default) after it was opened"
    )
    last_error: str | None = Field(
        description="why the last send failed (for a failed request: why it was refused)"
    )

    @classmethod
    def of(
        cls, request: SupportRequest, response_due: Callable[[datetime], datetime]
    ) -> SupportRequestOut:
        """The API's view of a support request; `response_due` maps opened to due instants."""
        return cls(
            correlation_id=request.correlation_id,
            kind=request.kind,
            state=request.state,
            rule=request.rule,
            organisation_id=request.organisation_id,
            on_behalf_of=request.on_behalf_of,
            router_id=request.router_id,
            imei=request.imei,
            iccid=request.iccid,
            order_number=request.order_number,
            summary=request.summary,
            raised_at=request.raised_at,
            updated_at=request.updated_at,
            portal_number=request.portal_number,
            opened_at=request.opened_at,
            responded_at=request.responded_at,
            resolved_at=request.resolved_at,
            response_due_at=response_due(request.opened_at) if request.opened_at else None,
            last_error=request.last_error,
        )


class SupportRequestPage(Page):
    """One page of support requests, newest first."""

    items: list[SupportRequestOut]


class RouterDetail(RouterItem):
    """Everything known of one router, and what the guidance advises for its state."""

    iccid: str | None
    health: HealthOut
    poll: PollOut
    signal: SignalOut | None
    battery_percent: int | None
    charging: bool | None
    sim: SimOut
    usage: UsageOut
    alerts: list[AlertOut]
    open_support_requests: list[SupportRequestOut]
    advice: list[str]


class OrganisationOut(BaseModel):
    """An LA, trust, school or college."""

    id: str
    name: str
    kind: OrganisationKind
    parent_id: str | None


class OrganisationSummary(BaseModel):
    """An organisation's routers at a glance (an LA's or trust's include its schools')."""

    organisation: OrganisationOut
    covers: list[str] = Field(description="the organisations counted: itself and its schools")
    routers: int = Field(description="monitored routers")
    states: dict[str, int] = Field(description="monitored routers by health state")
    capped: int
    lost_or_stolen: int
    open_support_requests: int
    open_support_requests_by_kind: dict[str, int]
    firing_alerts: int


class ReportLost(BaseModel):
    """What happened to the router."""

    status: Literal["lost", "stolen"]


class ReportLostOut(BaseModel):
    """What the report changed and what will follow."""

    router: str
    serial: str
    device_status: DeviceStatus
    support_request: SupportRequestKind | None
    message: str


class PasswordsOut(BaseModel):
    """A Windows device's BIOS and local admin passwords (every view is audited)."""

    serial: str
    bios_password: str
    local_admin_password: str
    rule: str = Field(description="the guidance's rule that allowed this view")
