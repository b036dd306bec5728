"""Each router's live view, published by the poller for the status API in other processes.

The poller keeps its routers' latest poll status, cap month and recent rate in memory; the
status API served by `monitor api` runs in a process of its own (so that answering the portal
never queues behind polling on one interpreter lock) and reads them from here instead. One row
per router, rewritten with each batch of poll results (`monitor.store.batch`), so it lags the
poller by one batch (half a second, unless the database is failing: docs/api.md). The
health state is stored on its own (`health_state`) and read with it.

The body is JSON: a handful of fields that a new version may add to; an unreadable body is
logged and read as "nothing known yet" rather than failing the request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session

from monitor.model import (
    FailureKind,
    HealthState,
    Identity,
    LinkState,
    LiveRecord,
    MonthUsage,
    PollFailure,
    PollStatus,
    Sample,
    Signal,
    SimState,
)
from monitor.store.db import connected, insert_for
from monitor.store.health import health_of
from monitor.store.tables import HealthStateRow, RouterLiveRow

log = logging.getLogger(__name__)

VERSION = 1


class LiveStore:
    """Reads the published live views (the poller writes them with its batches)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def read(self, router_id: str) -> tuple[LiveRecord | None, HealthState | None]:
        """The router's live record and health state (None for what is not known yet)."""
        given = {"router_id": router_id}
        with connected(self._engine, f"the live state of router {router_id}") as connection:
            body = connection.execute(_BODY, given).scalar()
            health = connection.execute(_HEALTH, given).first()
        record = decode(router_id, body) if body is not None else None
        return record, health_of(health) if health is not None else None


# Built once: read for every router the status API shows (see `monitor.store.db.connected`).
_BODY: Final = select(RouterLiveRow.body).where(RouterLiveRow.router_id == bindparam("router_id"))
_HEALTH: Final = select(*HealthStateRow.__table__.c).where(
    HealthStateRow.router_id == bindparam("router_id")
)


def write_lives(session: Session, records: Sequence[LiveRecord]) -> None:
    """Store many routers' live records (within the caller's transaction): one statement."""
    rows = [
        {"router_id": r.router_id, "at": r.status.last.at, "body": encode(r)}
        for r in records
        if r.status is not None
    ]
    if not rows:
        return
    statement = insert_for(session, RouterLiveRow)
    changes = {"at": statement.excluded.at, "body": statement.excluded.body}
    session.execute(
        statement.on_conflict_do_update(index_elements=["router_id"], set_=changes), rows
    )


def encode(record: LiveRecord) -> str:
    """The record as the JSON body stored (the router id is the row's key)."""
    status = record.status
    body: dict[str, Any] = {"v": VERSION, "rate": record.rate, "month": _month(record.month)}
    if status is not None:
        last = status.last
        body["last"] = {
            "at": last.at.isoformat(),
            "failure": last.kind.value if isinstance(last, PollFailure) else None,
            "detail": last.detail if isinstance(last, PollFailure) else None,
        }
        body["sample"] = _sample(status.last_sample) if status.last_sample else None
        body["success"] = status.last_success.isoformat() if status.last_success else None
        body["failures"] = status.failures_in_row
    return json.dumps(body, separators=(",", ":"))


def decode(router_id: str, text: str) -> LiveRecord | None:
    """The record a body holds; None (logged) if it cannot be read."""
    try:
        body = _object(json.loads(text))
        sample = _read_sample(router_id, _object(body["sample"])) if body.get("sample") else None
        last_body = body.get("last")
        status = None
        if last_body is not None:
            last_body = _object(last_body)
            at = _instant(last_body["at"])
            if last_body["failure"] is None:
                if sample is None:
                    raise ValueError("a successful poll without its sample")
                last: Sample | PollFailure = sample
            else:
                kind = FailureKind(last_body["failure"])
                last = PollFailure(router_id, at, kind, str(last_body["detail"] or ""))
            success = _instant(body["success"]) if body.get("success") else None
            status = PollStatus(last, sample, success, int(body["failures"]))
        month = _read_month(router_id, _object(body["month"])) if body.get("month") else None
        rate = float(body["rate"]) if body.get("rate") is not None else None
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        log.warning("router %s: its stored live view is unreadable (%s): shown as unknown",
                    router_id, exc)  # fmt: skip
        return None
    return LiveRecord(router_id, status, month, rate)


def _sample(sample: Sample) -> dict[str, Any]:
    signal = sample.signal
    return {
        "at": sample.at.isoformat(),
        "sim": sample.sim.value,
        "link": sample.link.value,
        "network_type": sample.network_type,
        "signal": [signal.rssi_dbm, signal.rsrp_dbm, signal.rsrq_db, signal.sinr_db],
        "battery": sample.battery_percent,
        "charging": sample.charging,
        "uptime": sample.uptime_seconds,
        "identity": [sample.identity.imei, sample.identity.iccid, sample.identity.firmware],
    }


def _read_sample(router_id: str, body: dict[str, Any]) -> Sample:
    rssi, rsrp, rsrq, sinr = body["signal"]
    imei, iccid, firmware = body["identity"]
    return Sample(
        router_id,
        _instant(body["at"]),
        sim=SimState(body["sim"]),
        link=LinkState(body["link"]),
        network_type=body["network_type"],
        signal=Signal(rssi, rsrp, rsrq, sinr),
        battery_percent=body["battery"],
        charging=body["charging"],
        uptime_seconds=body["uptime"],
        identity=Identity(imei=imei, iccid=iccid, firmware=firmware),
    )


def _month(month: MonthUsage | None) -> dict[str, Any] | None:
    if month is None:
        return None
    return {
        "iccid": month.iccid,
        "month": month.month,
        "received": month.received,
        "sent": month.sent,
        "partial": month.partial,
        "updated_at": month.updated_at.isoformat(),
    }


def _read_month(router_id: str, body: dict[str, Any]) -> MonthUsage:
    return MonthUsage(
        router_id,
        body["iccid"],
        str(body["month"]),
        int(body["received"]),
        int(body["sent"]),
        bool(body["partial"]),
        _instant(body["updated_at"]),
    )


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, found {type(value).__name__}")
    return value


def _instant(value: Any) -> datetime:
    """A stored time: ISO 8601 with its offset (one without is not ours: refused)."""
    at = datetime.fromisoformat(value)
    if at.tzinfo is None:
        raise ValueError(f"time {value!r} has no offset")
    return at
