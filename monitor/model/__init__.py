"""Plain typed values shared by every layer (standard library only).

`from monitor.model import X` reaches every value; the submodules group them: `inventory`,
`validation` (rules shared by config and import), `samples` (what a poll learns) and `usage`.
"""

from __future__ import annotations

from monitor.model.health import Health, HealthState, Transition
from monitor.model.inventory import (
    ALLOWED_PARENTS,
    DEFAULT_PORTS,
    Allocation,
    Device,
    DeviceKind,
    DeviceStatus,
    Endpoint,
    HttpLogin,
    Organisation,
    OrganisationKind,
    PollTarget,
    Protocol,
    Router,
    SnmpCredentials,
)
from monitor.model.samples import (
    Counter,
    CounterType,
    FailureKind,
    Identity,
    LinkState,
    PollFailure,
    PollResult,
    Sample,
    Signal,
    SimState,
    Traffic,
    UptimeClock,
)
from monitor.model.usage import (
    MonthUsage,
    UsageDelta,
    UsageState,
)
from monitor.model.validation import (
    iccid_problem,
    identifier_problem,
    imei_problem,
    order_term_problem,
    parent_problem,
)

__all__ = [
    "ALLOWED_PARENTS",
    "DEFAULT_PORTS",
    "Allocation",
    "Counter",
    "CounterType",
    "Device",
    "DeviceKind",
    "DeviceStatus",
    "Endpoint",
    "FailureKind",
    "Health",
    "HealthState",
    "HttpLogin",
    "Identity",
    "LinkState",
    "MonthUsage",
    "Organisation",
    "OrganisationKind",
    "PollFailure",
    "PollResult",
    "PollTarget",
    "Protocol",
    "Router",
    "Sample",
    "Signal",
    "SimState",
    "SnmpCredentials",
    "Traffic",
    "Transition",
    "UptimeClock",
    "UsageDelta",
    "UsageState",
    "iccid_problem",
    "identifier_problem",
    "imei_problem",
    "order_term_problem",
    "parent_problem",
]
