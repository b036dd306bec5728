"""Plain typed values shared by every layer (standard library only).

`from monitor.model import X` reaches every value; the submodules group them: `inventory`,
`validation` (rules shared by config and import), `samples` (what a poll learns) and `usage`.
"""

from __future__ import annotations

from monitor.model.alerts import (
    Advance,
    Alert,
    AlertState,
    Condition,
    Rule,
    Severity,
    SupportRequestKind,
    alert_fingerprint,
    episode_id,
)
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
from monitor.model.live import LiveRecord
from monitor.model.samples import (
    Counter,
    CounterType,
    FailureKind,
    Identity,
    LinkState,
    PollFailure,
    PollResult,
    PollStatus,
    Sample,
    Signal,
    SimState,
    Traffic,
    UptimeClock,
)
from monitor.model.support import OPEN_STATES, SupportRequest, SupportRequestState
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
    "OPEN_STATES",
    "Advance",
    "Alert",
    "AlertState",
    "Allocation",
    "Condition",
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
    "LiveRecord",
    "MonthUsage",
    "Organisation",
    "OrganisationKind",
    "PollFailure",
    "PollResult",
    "PollStatus",
    "PollTarget",
    "Protocol",
    "Router",
    "Rule",
    "Sample",
    "Severity",
    "Signal",
    "SimState",
    "SnmpCredentials",
    "SupportRequest",
    "SupportRequestKind",
    "SupportRequestState",
    "Traffic",
    "Transition",
    "UptimeClock",
    "UsageDelta",
    "UsageState",
    "alert_fingerprint",
    "episode_id",
    "iccid_problem",
    "identifier_problem",
    "imei_problem",
    "order_term_problem",
    "parent_problem",
]
