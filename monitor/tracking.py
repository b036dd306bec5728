"""Folding poll results into usage and health, and persisting both.

The scheduler hands every result here. A `Sample` goes through the usage core (deltas per month
and SIM) and every result through the health state machine. The in-memory state is what the
live process reads (API, metrics, alerts); what the database needs is queued and written behind
the poll path in batches (`monitor.writeback`), each router's new readings with the bytes they
counted in one transaction, so the database stays the truth a restart resumes from. Each poll
also queues the router's live record (poll status, cap month, rate: `monitor.store.live`), which
the status API reads when it runs in a process of its own (`monitor api`).

An ICCID a router reports is used only if it looks like one (18 to 22 digits, the last may be a
hex F): anything else is treated as not reported, logged once per router, so that one router's
junk never reaches the database (where it would be refused) nor splits a SIM's count.

The inventory's facts about each router (IMEI, ICCID, model, organisation and its local
authority) plus the firmware it reports make up its `router_info` series, re-rendered only when
one of them changes; routers that leave the inventory leave the exposition.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.core.calendar import month_key
from monitor.core.forecast import forecast
from monitor.core.health import HealthRules, observe
from monitor.core.rules import RouterFacts
from monitor.core.status import StatusBoard
from monitor.core.usage import account
from monitor.metrics import RouterSample, RouterSeries
from monitor.model import (
    Health,
    HealthState,
    Identity,
    LinkState,
    LiveRecord,
    MonthUsage,
    Organisation,
    OrganisationKind,
    PollResult,
    PollTarget,
    Router,
    Sample,
    SimState,
    UsageState,
)
from monitor.store import HealthStore, UsageStore
from monitor.store.batch import BatchWriter, RouterWrites
from monitor.store.usage import cap_key
from monitor.writeback import WriteBehind

log = logging.getLogger(__name__)

# What the inventory says of a router for `router_info`: imei, iccid, model (the profile's
# name), organisation, local authority. Plain tuples: 100k of them are compared every cycle.
Listed = tuple[str, str, str, str, str]
# What the router itself last reported (the last non-empty value of each): firmware, imei, iccid.
Reported = tuple[str, str, str]
_NOTHING_REPORTED: Reported = ("", "", "")
# An ICCID: 18 to 22 digits; some SIMs pad the last with a hex F.
_ICCID = re.compile(r"[0-9]{18,21}[0-9Ff]?")


@dataclass(frozen=True, slots=True)
class TrackingRules:
    """What tracking is told: the zone months are counted in, the cap, the health durations."""

    zone: ZoneInfo
    cap_bytes: int
    health: HealthRules


class Tracker:
    """Usage and health of every router, kept current from poll results."""

    def __init__(
        self,
        usage: UsageStore,
        health: HealthStore,
        rules: TrackingRules,
        series: RouterSeries | None = None,
        writes: WriteBehind | None = None,
    ) -> None:
        self._usage = usage
        self._health = health
        self._rules = rules
        self.writes = writes or WriteBehind(BatchWriter(usage.engine))
        self.writes.on_stored = self._stored
        self.series = series or RouterSeries()
        self.board = StatusBoard()
        self.usage_states: dict[str, UsageState] = {}
        self.health_states: dict[str, HealthState] = {}
        self._month_of: dict[str, MonthUsage] = {}  # router id -> its SIM's month
        self._listed: dict[str, Listed] | None = None  # None until the inventory is first read
        self._reported: dict[str, Reported] = {}
        self._bad_iccid: set[str] = set()  # routers whose unusable ICCID has been logged

    @property
    def store_errors(self) -> int:
        """Batch writes the database failed (their results stay queued and are retried)."""
        return self.writes.errors

    def load(self) -> None:
        """Resume from the database (blocking: call before polling starts)."""
        self.usage_states = self._usage.load_states()
        self.health_states = self._health.load_states()
        zone = self._rules.zone
        keys = [
            cap_key(state.router_id, state.iccid, month_key(state.at, zone))
            for state in self.usage_states.values()
        ]
        self.writes.know(self._usage.cap_totals(keys))

    async def flush(self) -> bool:
        """Store every queued result now; False if the database failed (kept for a retry)."""
        return await self.writes.flush()

    async def close(self) -> None:
        """Store what is queued and stop writing: call once polling has stopped."""
        await self.writes.close()

    async def handle(self, target: PollTarget, result: PollResult) -> None:
        """Fold one poll result in; the scheduler's result sink."""
        message = self.board.record(result)
        if message:
            log.info("%s", message)
        router_id = result.router_id
        if isinstance(result, Sample):
            result = self._checked_iccid(result)
            self._month_of[router_id] = self._account(result)
        month = self._month_of.get(router_id)
        capped = month is not None and month.total >= self._rules.cap_bytes
        previous = self.health_states.get(router_id)
        state, transition = observe(previous, result, capped, self._rules.health)
        if transition is not None or _damping_changed(previous, state):
            self.writes.add_health(state, transition)
        self.health_states[router_id] = state
        if transition is not None:
            log.info(
                "router %s: %s -> %s: %s",
                router_id, transition.from_state, transition.to_state, transition.reason,
            )  # fmt: skip
        if self._listed is not None and router_id not in self._listed:
            return  # left the inventory while this poll was in flight: show nothing of it
        self._publish(router_id, month)
        self.series.update(router_id, self._samples(router_id, result.at))
        if isinstance(result, Sample):
            self._note_identity(router_id, result.identity)

    def follow_inventory(
        self, routers: Iterable[Router], organisations: Iterable[Organisation]
    ) -> None:
        """Keep `router_info` as the inventory says; drop the series of routers that left it.

        Called on every re-read of the inventory: only routers whose facts changed are
        re-rendered, so a cycle over 100k unchanged routers costs one tuple comparison each.
        """
        authority = local_authorities(organisations)
        before = self._listed or {}
        listed: dict[str, Listed] = {}
        changed: list[str] = []
        for router in routers:
            organisation = router.device.organisation_id
            facts = (
                router.device.imei or "",
                router.iccid or "",
                router.endpoint.profile if router.endpoint is not None else "",
                organisation,
                authority.get(organisation, ""),
            )
            listed[router.id] = facts
            if before.get(router.id) != facts:
                changed.append(router.id)
        self._listed = listed
        for router_id in [r for r in self.series.routers if r not in listed]:
            self.series.remove(router_id)
            self._reported.pop(router_id, None)
            self.board.forget(router_id)
        for router_id in changed:
            self._show_info(router_id, facts=listed[router_id])

    def _checked_iccid(self, sample: Sample) -> Sample:
        """The sample, with an ICCID that is not one treated as not reported (logged once)."""
        iccid = sample.identity.iccid
        if iccid is None or _ICCID.fullmatch(iccid):
            return sample
        if sample.router_id not in self._bad_iccid:
            self._bad_iccid.add(sample.router_id)
            log.warning(
                "router %s: reported ICCID %r is not 18-22 digits: treated as unknown",
                sample.router_id, iccid[:40],
            )  # fmt: skip
        identity = dataclasses.replace(sample.identity, iccid=None)
        return dataclasses.replace(sample, identity=identity)

    def _note_identity(self, router_id: str, identity: Identity) -> None:
        """Re-render the router's info if it reports a new firmware (or a missing fact)."""
        before = self._reported.get(router_id, _NOTHING_REPORTED)
        # Keep the last non-empty value: a removed SIM must not blank the ICCID label.
        now = (
            identity.firmware or before[0],
            identity.imei or before[1],
            identity.iccid or before[2],
        )
        if now != before:
            self._reported[router_id] = now
            self._show_info(router_id)

    def _show_info(self, router_id: str, facts: Listed | None = None) -> None:
        if facts is None:
            facts = (self._listed or {}).get(router_id)
            if facts is None:
                return  # not in the inventory (yet): nothing to join on
        imei, iccid, model, organisation, authority = facts
        firmware, reported_imei, reported_iccid = self._reported.get(router_id, _NOTHING_REPORTED)
        info = {
            "imei": imei or reported_imei,
            "iccid": iccid or reported_iccid,
            "model": model,
            "firmware": firmware,
            "organisation": organisation,
            "local_authority": authority,
        }
        self.series.set_info(router_id, info)

    def _stored(self, entries: list[RouterWrites]) -> None:
        """A batch was stored: take the re-read cap totals (other routers of a SIM, other
        pollers), and re-render a router only if its total changed."""
        for entry in entries:
            router_id = entry.router_id
            month = self._month_of.get(router_id)
            if month is None:
                continue
            key = cap_key(router_id, month.iccid, month.month)
            total = self.writes.cap_total(key, router_id)
            if total is None or total == month:
                continue
            self._month_of[router_id] = total
            usage = self.usage_states.get(router_id)
            if usage is not None and (self._listed is None or router_id in self._listed):
                self.series.update(router_id, self._samples(router_id, usage.at))
                self._publish(router_id, total)

    def _publish(self, router_id: str, month: MonthUsage | None) -> None:
        """Queue what readers in other processes are shown of the router (`monitor api`)."""
        usage = self.usage_states.get(router_id)
        rate = usage.recent_rate if usage is not None else None
        self.writes.add_live(LiveRecord(router_id, self.board.get(router_id), month, rate))

    def facts(self, router: Router, now: datetime) -> RouterFacts:
        """What is known of `router` for the alert rules."""
        status = self.board.get(router.id)
        month = self._month_of.get(router.id)
        usage = self.usage_states.get(router.id)
        projection = None
        if month is not None:
            rate = usage.recent_rate if usage else None
            projection = forecast(month, self._rules.cap_bytes, now, self._rules.zone, rate)
        return RouterFacts(
            router,
            self.health_states.get(router.id),
            month,
            projection,
            status.last_sample if status else None,
        )

    def _samples(self, router_id: str, now: datetime) -> list[RouterSample]:
        """The router's metric lines, from what is tracked of it."""
        status = self.board.get(router_id)
        health = self.health_states.get(router_id)
        month = self._month_of.get(router_id)
        usage = self.usage_states.get(router_id)
        samples: list[RouterSample] = [("router_data_cap_bytes", "", self._rules.cap_bytes)]
        if status is not None:
            samples.append(("router_up", "", 1.0 if status.reachable else 0.0))
            if status.last_success is not None:
                stamp = status.last_success.timestamp()
                samples.append(("router_last_poll_success_timestamp_seconds", "", stamp))
            if status.last_sample is not None:
                samples.extend(_sample_lines(status.last_sample))
        if health is not None:
            samples.extend(
                ("router_state", f'state="{state.value}"', 1.0 if state is health.state else 0.0)
                for state in Health
            )
            samples.append(("router_state_since_timestamp_seconds", "", health.since.timestamp()))
        if month is not None:
            rate = usage.recent_rate if usage else None
            projection = forecast(month, self._rules.cap_bytes, now, self._rules.zone, rate)
            samples += [
                ("router_data_month_used_bytes", "", month.total),
                ("router_data_month_partial", "", 1.0 if month.partial else 0.0),
                ("router_data_month_forecast_bytes", "", projection.projected_total),
            ]
        return samples

    def _account(self, sample: Sample) -> MonthUsage:
        """Count the sample's usage; return its SIM's month so far (what the cap counts)."""
        previous = self.usage_states.get(sample.router_id)
        result = account(previous, sample, self._rules.zone)
        month = month_key(sample.at, self._rules.zone)
        # The total is the stored one (re-read with every batch, so other routers of the SIM
        # count) plus the bytes queued here: no byte counted twice, none this process saw missed.
        base = previous.at if previous is not None else None  # the readings counted from
        total = self.writes.add_usage(result.state, result.deltas, sample.at, month, base)
        self.usage_states[sample.router_id] = result.state
        for note in result.notes:
            # Per-poll detail (wraps, recoveries, seeds): health transitions carry the news.
            log.debug("router %s: %s", sample.router_id, note)
        if total is None:
            return MonthUsage(sample.router_id, result.state.iccid, month, 0, 0, True, sample.at)
        return total


def local_authorities(organisations: Iterable[Organisation]) -> dict[str, str]:
    """Each organisation's local authority: itself if it is one, else the LA above it, or ""."""
    by_id = {org.id: org for org in organisations}
    found: dict[str, str] = {}
    for org in by_id.values():
        step: Organisation | None = org
        for _ in range(len(by_id)):  # bounded: a cycle of parents must not hang the daemon
            if step is None or step.kind is OrganisationKind.LOCAL_AUTHORITY:
                break
            step = by_id.get(step.parent_id) if step.parent_id else None
        la = step is not None and step.kind is OrganisationKind.LOCAL_AUTHORITY
        found[org.id] = step.id if la and step is not None else ""
    return found


def _sample_lines(sample: Sample) -> list[RouterSample]:
    # A state the model does not report is left out, as an unreported signal is: a series
    # saying 1 (or 0) would claim what nobody observed.
    lines: list[RouterSample] = []
    if sample.link is not LinkState.UNKNOWN:
        lines.append(("router_connected", "", 1.0 if sample.link is LinkState.CONNECTED else 0.0))
    if sample.sim is not SimState.UNKNOWN:
        lines.append(("router_sim_present", "", 0.0 if sample.sim is SimState.ABSENT else 1.0))
    optional = {
        "router_signal_rssi_dbm": sample.signal.rssi_dbm,
        "router_signal_rsrp_dbm": sample.signal.rsrp_dbm,
        "router_signal_rsrq_db": sample.signal.rsrq_db,
        "router_signal_sinr_db": sample.signal.sinr_db,
        "router_battery_ratio": (
            sample.battery_percent / 100 if sample.battery_percent is not None else None
        ),
        "router_uptime_seconds": sample.uptime_seconds,
    }
    lines.extend((family, "", value) for family, value in optional.items() if value is not None)
    return lines


def _damping_changed(before: HealthState | None, after: HealthState) -> bool:
    """Whether what a restart needs changed (not merely the time of the last observation)."""
    if before is None:
        return True
    return (before.state, before.since, before.pending, before.pending_since) != (
        after.state,
        after.since,
        after.pending,
        after.pending_since,
    )
