"""The read side of /api/v1: routers, one router in full, organisation summaries, alerts and
support requests, each scoped to what the caller's organisation may see."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime,
# and the `Caller` alias is local to the function that defines them.
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from monitor.api.advice import advice
from monitor.api.auth import Authenticate
from monitor.api.errors import NOT_FOUND, STANDARD, ApiError, known_query
from monitor.api.schemas import (
    AlertOut,
    AlertPage,
    HealthOut,
    OrganisationOut,
    OrganisationSummary,
    PollOut,
    RouterDetail,
    RouterPage,
    SignalOut,
    SimOut,
    SupportRequestOut,
    SupportRequestPage,
    UsageOut,
)
from monitor.api.sources import StatusSources
from monitor.api.totals import Totals
from monitor.core.access import Principal
from monitor.core.calendar import cap_reset, month_key
from monitor.core.rules import RouterFacts
from monitor.errors import NotFound
from monitor.model import (
    OPEN_STATES,
    Alert,
    AlertState,
    DeviceStatus,
    Health,
    OrganisationKind,
    PollFailure,
    PollStatus,
    Router,
    Rule,
    SupportRequestKind,
    SupportRequestState,
)
from monitor.store.access import RouterListing

IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_OFFSET = 1_000_000_000
Limit = Annotated[int, Query(ge=1, le=1000, description="items per page")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]
OrganisationFilter = Annotated[
    str | None, Query(pattern=IDENTIFIER, description="only this organisation's (exact id)")
]
RouterRef = Annotated[str, Path(pattern=IDENTIFIER, description="router id or IMEI")]
_TOP = (OrganisationKind.LOCAL_AUTHORITY, OrganisationKind.ACADEMY_TRUST)


def not_found(what: str) -> ApiError:
    """The one 404 for a missing object and for another tenant's (they must read the same)."""
    return ApiError(404, f"no {what} visible to this token")


async def scoped_router(sources: StatusSources, principal: Principal, ref: str) -> Router:
    """The router `ref` (id or IMEI) if the principal may see it; 404 otherwise."""
    try:
        router = await sources.read(sources.inventory.get_router, ref)
    except NotFound:
        raise not_found(f"router {ref!r}") from None
    if not principal.sees(router.device.organisation_id):
        raise not_found(f"router {ref!r}")
    return router


def scope(principal: Principal, organisation: str | None) -> frozenset[str] | None:
    """The organisations a listing covers: one asked for (404 if not visible), else all visible."""
    if organisation is None:
        return principal.visible
    if not principal.sees(organisation):
        raise not_found(f"organisation {organisation!r}")
    return frozenset({organisation})


def in_scope(alert: Alert, organisations: frozenset[str] | None) -> bool:
    """Whether an alert is within a scope: by the organisation it fired for (None: all)."""
    return organisations is None or alert.organisation_id in organisations


def read_routes(sources: StatusSources, authenticate: Authenticate) -> APIRouter:
    """The GET routes of /api/v1."""
    api = APIRouter(prefix="/api/v1", responses=STANDARD, dependencies=[Depends(known_query)])
    Caller = Annotated[Principal, Depends(authenticate)]

    async def count(organisations: frozenset[str] | None, states: frozenset[str] | None) -> int:
        # Every matching router: ~60 ms of CPU at 100k on the bench machine.
        return await sources.read.scan(sources.access.count_routers, organisations, states)

    totals = Totals(count)

    @api.get("/routers", tags=["routers"], response_model=RouterPage, responses=NOT_FOUND)
    async def list_routers(
        principal: Caller,
        organisation: OrganisationFilter = None,
        state: Annotated[list[Health] | None, Query(description="any of these states")] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> RouterPage:
        """Routers the token's organisation may see, by router id, with their health state."""
        organisations = scope(principal, organisation)
        states = frozenset(s.value for s in state) if state else None
        page = await sources.read(sources.access.routers_page, organisations, states, limit, offset)
        total = await totals.get(organisations, states)
        # One validation of the whole page (in pydantic's core), not one per router.
        items = [item_fields(item) for item in page]
        return RouterPage.model_validate(
            {"total": total, "limit": limit, "offset": offset, "items": items}
        )

    @api.get(
        "/routers/{router}", tags=["routers"], response_model=RouterDetail, responses=NOT_FOUND
    )
    async def get_router(principal: Caller, router: RouterRef) -> RouterDetail:
        """One router in full: health, polls, signal, SIM, usage against the cap, alerts, open
        support requests, and the guidance's advice for its state."""
        found = await scoped_router(sources, principal, router)
        # The same scope as the listings: a router reallocated between tenants keeps the
        # requests and alerts raised at (or by) its former organisation, which are not the new
        # one's to see (they quote its order number and IMEI).
        visible = principal.visible
        requests = await sources.read(
            sources.support.find,
            organisations=visible,
            router_id=found.id,
            states=OPEN_STATES,
            limit=100,
        )
        shown = [SupportRequestOut.of(r, sources.response_due) for r in requests]
        now = sources.clock()
        facts, status = await sources.live.view(found, now)
        alerts = await sources.alerts.of_router(found.id)
        return detail(sources, facts, status, alerts, shown, visible, now)

    @api.get(
        "/organisations/{organisation}/summary",
        tags=["organisations"],
        response_model=OrganisationSummary,
        responses=NOT_FOUND,
    )
    async def summary(
        principal: Caller, organisation: Annotated[str, Path(pattern=IDENTIFIER)]
    ) -> OrganisationSummary:
        """Counts for one organisation (an LA's or trust's include its schools')."""
        if not principal.sees(organisation):
            raise not_found(f"organisation {organisation!r}")
        try:
            org = await sources.read(sources.inventory.get_organisation, organisation)
        except NotFound:
            raise not_found(f"organisation {organisation!r}") from None
        covers = {org.id}
        if org.kind in _TOP:
            covers |= await sources.read(sources.access.children, org.id)
        states = await sources.read(sources.access.router_states, covers)
        statuses = await sources.read(sources.access.device_statuses, covers)
        requests = await sources.read(sources.access.open_requests, covers)
        firing = sum(
            1
            for alert in await sources.alerts()
            if alert.state is AlertState.FIRING and alert.organisation_id in covers
        )
        return OrganisationSummary(
            organisation=OrganisationOut(
                id=org.id, name=org.name, kind=org.kind, parent_id=org.parent_id
            ),
            covers=sorted(covers),
            routers=sum(states.values()),
            states=states,
            capped=states.get(Health.CAPPED.value, 0),
            lost_or_stolen=sum(
                statuses.get(s.value, 0) for s in (DeviceStatus.LOST, DeviceStatus.STOLEN)
            ),
            open_support_requests=sum(requests.values()),
            open_support_requests_by_kind=requests,
            firing_alerts=firing,
        )

    @api.get("/alerts", tags=["alerts"], response_model=AlertPage, responses=NOT_FOUND)
    async def list_alerts(
        principal: Caller,
        organisation: OrganisationFilter = None,
        state: Annotated[list[AlertState] | None, Query(description="any of these")] = None,
        rule: Rule | None = None,
        router: Annotated[str | None, Query(pattern=IDENTIFIER)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> AlertPage:
        """Alerts of the organisations the token may see, most recently changed first."""
        organisations = scope(principal, organisation)
        found = [
            alert
            for alert in await sources.alerts()
            if in_scope(alert, organisations)
            and (not state or alert.state in state)
            and (rule is None or alert.rule is rule)
            and (router is None or alert.router_id == router)
        ]
        found.sort(key=lambda a: (-a.updated_at.timestamp(), a.fingerprint))
        items = [AlertOut.of(alert) for alert in found[offset : offset + limit]]
        return AlertPage(total=len(found), limit=limit, offset=offset, items=items)

    @api.get(
        "/support-requests",
        tags=["support requests"],
        response_model=SupportRequestPage,
        responses=NOT_FOUND,
    )
    async def list_support_requests(
        principal: Caller,
        organisation: OrganisationFilter = None,
        state: Annotated[list[SupportRequestState] | None, Query()] = None,
        kind: SupportRequestKind | None = None,
        router: Annotated[str | None, Query(pattern=IDENTIFIER)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> SupportRequestPage:
        """Support requests at, or raised by, the organisations the token may see; newest first."""
        organisations = scope(principal, organisation)
        states = set(state) if state else None
        count, find = sources.support.count, sources.support.find
        total = await sources.read(
            count, organisations=organisations, states=states, router_id=router, kind=kind
        )
        found = await sources.read(
            find,
            organisations=organisations,
            states=states,
            router_id=router,
            kind=kind,
            limit=limit,
            offset=offset,
        )
        items = [SupportRequestOut.of(r, sources.response_due) for r in found]
        return SupportRequestPage(total=total, limit=limit, offset=offset, items=items)

    return api


def item_fields(item: RouterListing) -> dict[str, object]:
    """The fields of a router's listing item (also the first of its full view)."""
    return {
        "id": item.id,
        "imei": item.imei,
        "serial": item.serial,
        "organisation": item.organisation_id,
        "order_number": item.order_number,
        "device_status": item.device_status,
        "monitored": item.monitored,
        "state": item.state,
        "state_since": item.since,
    }


def detail(
    sources: StatusSources,
    facts: RouterFacts,
    status: PollStatus | None,
    alerts: Iterable[Alert],
    requests: list[SupportRequestOut],
    visible: frozenset[str] | None,
    now: datetime,
) -> RouterDetail:
    """A router's full view at `now` from its tracked state and poll status; of `alerts`, its
    firing ones that `visible` may see (None: all)."""
    router = facts.router
    health = facts.health
    state = health.state if health is not None else Health.UNKNOWN
    sample = facts.sample
    resets = cap_reset(now, sources.zone)
    usage = facts.usage
    if usage is not None and usage.month != month_key(now, sources.zone):
        usage = None  # last month's: the cap has reset since
    used = usage.total if usage else 0
    forecast = facts.forecast if usage is not None else None
    poll = PollOut(last_attempt_at=None, last_result=None, last_success_at=None, failures_in_row=0)
    if status is not None:
        last = status.last
        poll = PollOut(
            last_attempt_at=last.at,
            last_result=last.kind.value if isinstance(last, PollFailure) else "sample",
            last_success_at=status.last_success,
            failures_in_row=status.failures_in_row,
        )
    signal = None
    if sample is not None:
        s = sample.signal
        signal = SignalOut(
            rssi_dbm=s.rssi_dbm,
            rsrp_dbm=s.rsrp_dbm,
            rsrq_db=s.rsrq_db,
            sinr_db=s.sinr_db,
            network_type=sample.network_type,
        )
    firing = [
        AlertOut.of(alert)
        for alert in alerts
        if alert.router_id == router.id
        and alert.state is AlertState.FIRING
        and in_scope(alert, visible)
    ]
    return RouterDetail(
        **item_fields(RouterListing.of(router, state.value, health.since if health else None)),
        iccid=router.iccid,
        health=HealthOut(
            state=state,
            since=health.since if health else None,
            changing_to=health.pending if health else None,
        ),
        poll=poll,
        signal=signal,
        battery_percent=sample.battery_percent if sample else None,
        charging=sample.charging if sample else None,
        sim=SimOut(
            iccid=router.iccid,
            reported_iccid=sample.identity.iccid if sample else None,
            state=sample.sim.value if sample else None,
            link=sample.link.value if sample else None,
        ),
        usage=UsageOut(
            month=month_key(now, sources.zone),
            used_bytes=used,
            received_bytes=usage.received if usage else 0,
            sent_bytes=usage.sent if usage else 0,
            partial=usage.partial if usage else False,
            cap_bytes=sources.cap_bytes,
            remaining_bytes=max(sources.cap_bytes - used, 0),
            capped=used >= sources.cap_bytes or state is Health.CAPPED,
            resets_at=resets,
            forecast_bytes=forecast.projected_total if forecast else None,
            forecast_cap_reached_at=forecast.cap_reached_at if forecast else None,
            forecast_confidence=forecast.confidence if forecast else None,
        ),
        alerts=firing,
        open_support_requests=requests,
        advice=advice(state, router.device.status, resets, sources.zone),
    )
