"""Support requests: what was asked of the support portal about one alert episode.

A request is born in the same transaction as the alert transition that calls for it (the
outbox), so it is never lost; its `correlation_id` is the episode id, which is also the portal
incident's `correlation_id`, so it is never raised twice. `state` follows it through the portal:

    queued -> open -> resolved          (sent, then closed when the problem cleared)
    queued -> recorded                  (kept here only: the configuration routes it nowhere)
    queued | open -> failed             (the portal refused it for good: 400, 401, 403)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from monitor.model.alerts import SupportRequestKind


class SupportRequestState(StrEnum):
    """Where a support request stands with the portal."""

    QUEUED = "queued"  # written, not yet created in the portal (or the portal is down)
    OPEN = "open"  # an incident exists in the portal
    RESOLVED = "resolved"  # the problem cleared and the incident was resolved (or left to staff)
    RECORDED = "recorded"  # routed to no portal by configuration; kept for the API
    FAILED = "failed"  # the portal refused it for good; an operator must look


OPEN_STATES = frozenset({SupportRequestState.QUEUED, SupportRequestState.OPEN})


@dataclass(frozen=True, slots=True)
class SupportRequest:
    """One support request, with what the guidance says every request must quote."""

    correlation_id: str  # the alert episode id; the portal incident's correlation_id
    kind: SupportRequestKind
    state: SupportRequestState
    fingerprint: str  # the alert's
    rule: str
    organisation_id: str | None  # the organisation the problem is at
    on_behalf_of: str | None  # who raises it: a school's LA or trust, else the organisation
    router_id: str | None
    imei: str | None
    iccid: str | None
    order_number: str | None
    summary: str
    raised_at: datetime  # when the alert fired
    updated_at: datetime
    portal_number: str | None = None  # INC0010001
    portal_sys_id: str | None = None
    opened_at: datetime | None = None  # when the portal accepted it: the 3 working days start
    responded_at: datetime | None = None  # first sign of the support team working on it
    resolved_at: datetime | None = None
    last_error: str | None = None

    @property
    def is_open(self) -> bool:
        """Queued or open: the problem is still being handled."""
        return self.state in OPEN_STATES
