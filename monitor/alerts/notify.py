"""Notifiers: Alertmanager API v2, a signed webhook (Alertmanager's version-4 payload), email.

Payloads are pure functions of the alerts (time is passed in). Senders are blocking `requests` /
`smtplib` calls, meant to run in a worker thread; each raises `NotifyError`, either permanent
(a 4xx other than 408/429, an address refused with 5xx: retrying cannot help) or transient (5xx,
408, 429, refused connections, timeouts; an untrusted TLS certificate is permanent). `deliver`
retries the transient ones with tenacity.

Webhook bodies are signed: header `X-Router-Monitor-Signature: sha256=<hex>`, where <hex> is the
HMAC-SHA256 of the exact body bytes keyed with the shared secret (UTF-8). A receiver recomputes
it over the raw body, before parsing, and compares with `hmac.compare_digest`. Secrets (the
webhook secret, the SMTP password) never appear in reprs, logs or error messages; URLs are shown
without credentials or query string.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Final, Protocol

import requests
from requests.exceptions import ChunkedEncodingError as _ChunkedEncodingError

from monitor import __version__
from monitor.alerts.transport import (
    NotifyError,
    call_with_retries,
)
from monitor.alerts.transport import (
    cause as _cause,
)
from monitor.alerts.transport import (
    redact as _redact,
)
from monitor.alerts.transport import (
    untrusted as _untrusted,
)
from monitor.model import Alert, AlertState

SIGNATURE_HEADER: Final = "X-Router-Monitor-Signature"
RESEND_INTERVAL: Final = timedelta(minutes=1)
"""How often the daemon should re-send active alerts to Alertmanager."""
RESEND_HORIZON: Final = 4 * RESEND_INTERVAL
"""How far ahead a firing alert's endsAt lies: Alertmanager resolves it if we stop re-sending."""
_ZERO_TIME: Final = "0001-01-01T00:00:00Z"  # Alertmanager's "not ended" in webhook payloads
_SHOWN: Final = ("imei", "order_number", "iccid")  # annotations an email shows as fields
_USER_AGENT: Final = f"router-monitor/{__version__}"
_LOG = logging.getLogger(__name__)

Json = dict[str, Any]


class Notifier(Protocol):
    """Sends alerts somewhere, blocking; raises `NotifyError` when they were not delivered."""

    def send(self, alerts: Sequence[Alert]) -> None:
        """Deliver firing and resolved `alerts` as one notification (nothing to do if empty)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _firing(alert: Alert) -> bool:
    if alert.state not in (AlertState.FIRING, AlertState.RESOLVED):
        raise ValueError(f"alert {alert.fingerprint} is {alert.state.value}: not notifiable")
    return alert.state is AlertState.FIRING


def _labels(alert: Alert) -> dict[str, str]:
    labels = {name: str(value) for name, value in alert.labels.items()}
    labels["alertname"] = alert.rule.value
    labels["severity"] = alert.severity.value
    if alert.router_id is not None:
        labels["router"] = alert.router_id
    if alert.organisation_id is not None:
        labels["organisation"] = alert.organisation_id
    return labels


def _start(alert: Alert) -> datetime:
    return alert.starts_at or alert.active_since or alert.updated_at


def alertmanager_payload(
    alerts: Sequence[Alert], now: datetime, generator_url: str, horizon: timedelta = RESEND_HORIZON
) -> list[Json]:
    """Items for Alertmanager's `POST /api/v2/alerts`: firing ones end at now + `horizon`."""
    return [
        {
            "labels": _labels(alert),
            "annotations": {name: str(value) for name, value in alert.annotations.items()},
            "startsAt": _time(_start(alert)),
            # A past endsAt resolves the alert; never one in the future for a resolved alert.
            "endsAt": _time(now + horizon if _firing(alert) else min(alert.ends_at or now, now)),
            "generatorURL": generator_url,
        }
        for alert in alerts
    ]


def _common(sets: Sequence[Mapping[str, str]]) -> dict[str, str]:
    first, *rest = sets
    return {name: value for name, value in first.items() if all(s.get(name) == value for s in rest)}


def _label_set(labels: Mapping[str, str]) -> str:
    # As Prometheus' LabelSet.String() writes it: sorted name="value" pairs, values quoted.
    pairs = (
        f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in sorted(labels.items())
    )
    return "{" + ", ".join(pairs) + "}"


def webhook_payload(
    alerts: Sequence[Alert],
    receiver: str,
    external_url: str,
    *,
    generator_url: str = "",
    group_by: Sequence[str] = ("alertname",),
    max_alerts: int = 0,
) -> Json:
    """Alertmanager's version-4 webhook payload for one group of alerts (`max_alerts` 0: all)."""
    if not alerts:
        raise ValueError("a webhook notification needs at least one alert")
    labels = [_labels(alert) for alert in alerts]
    items = [
        {
            "status": "firing" if _firing(alert) else "resolved",
            "labels": alert_labels,
            "annotations": dict(alert.annotations),
            "startsAt": _time(_start(alert)),
            "endsAt": _time(alert.ends_at) if alert.ends_at and not _firing(alert) else _ZERO_TIME,
            "generatorURL": generator_url,
            "fingerprint": alert.fingerprint,
        }
        for alert, alert_labels in zip(alerts, labels, strict=True)
    ]
    common_labels = _common(labels)
    group = {name: common_labels[name] for name in group_by if name in common_labels}
    sent = items[:max_alerts] if max_alerts > 0 else items
    return {
        "version": "4",
        "groupKey": "{}:" + _label_set(group),
        "truncatedAlerts": len(items) - len(sent),
        "status": "firing" if any(item["status"] == "firing" for item in items) else "resolved",
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": common_labels,
        "commonAnnotations": _common([alert.annotations for alert in alerts]),
        "externalURL": external_url,
        "alerts": sent,
    }


def sign(body: bytes, secret: str) -> str:
    """HMAC-SHA256 of `body` keyed with `secret`, in hex (the header's value after `sha256=`)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _post(
    session: requests.Session, url: str, body: bytes, headers: Mapping[str, str], timeout: float
) -> None:
    what = _redact(url)
    headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT, **headers}
    try:
        # No redirects: requests would turn a 302'd POST into a GET and call it success.
        reply = session.post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
    except (requests.ConnectionError, requests.Timeout, _ChunkedEncodingError) as exc:
        raise NotifyError(_untrusted(exc), f"{what}: {_cause(exc)}") from exc
    except requests.RequestException as exc:  # a malformed URL and the like
        raise NotifyError(True, f"{what}: {_cause(exc)}") from exc
    if reply.status_code < 300:
        return
    transient = reply.status_code >= 500 or reply.status_code in (408, 429)
    wait = reply.headers.get("Retry-After", "").strip()
    detail = " ".join(reply.text[:200].split())
    raise NotifyError(
        not transient,
        f"{what}: HTTP {reply.status_code} {detail}".rstrip(),
        float(wait) if transient and wait.isdigit() else None,
    )


def _encode(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True, repr=False)
class AlertmanagerNotifier:
    """Posts alerts to Alertmanager (`POST <url>/api/v2/alerts`); re-send firing ones in time."""

    url: str
    timeout: float
    generator_url: str = ""
    horizon: timedelta = RESEND_HORIZON
    clock: Callable[[], datetime] = _utcnow
    session: requests.Session = field(default_factory=requests.Session)

    def __repr__(self) -> str:
        return f"AlertmanagerNotifier({_redact(self.url)!r})"

    def send(self, alerts: Sequence[Alert]) -> None:
        """Post `alerts`: firing ones expire after the horizon, resolved ones end in the past."""
        if alerts:
            payload = alertmanager_payload(alerts, self.clock(), self.generator_url, self.horizon)
            endpoint = self.url.rstrip("/") + "/api/v2/alerts"
            _post(self.session, endpoint, _encode(payload), {}, self.timeout)


@dataclass(frozen=True, repr=False)
class WebhookNotifier:
    """Posts a signed version-4 payload (see the module's docstring for the signature)."""

    url: str
    secret: str
    timeout: float
    receiver: str = "router-monitor"
    external_url: str = ""
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("a webhook needs a non-empty secret to sign with")

    def __repr__(self) -> str:
        return f"WebhookNotifier({_redact(self.url)!r})"

    def send(self, alerts: Sequence[Alert]) -> None:
        """Post `alerts` as one group, signed with the secret."""
        if alerts:
            body = _encode(webhook_payload(alerts, self.receiver, self.external_url))
            headers = {SIGNATURE_HEADER: f"sha256={sign(body, self.secret)}"}
            _post(self.session, self.url, body, headers, self.timeout)


def _describe(alert: Alert) -> list[str]:
    notes = alert.annotations
    ended = _time(alert.ends_at) if alert.ends_at and not _firing(alert) else None
    fields = [
        ("Router", alert.router_id),
        ("Organisation", alert.organisation_id),
        ("IMEI", notes.get("imei")),
        ("Order number", notes.get("order_number")),
        ("ICCID", notes.get("iccid")),
        ("Started", _time(_start(alert))),
        ("Ended", ended),
        ("Episode", alert.episode_id),
    ]
    lines = [f"{alert.rule.value} is {alert.state.value.upper()} ({alert.severity.value})"]
    lines += [f"  {name + ':':<14}{value}" for name, value in fields if value]
    lines += [f"  {name}: {value}" for name, value in notes.items() if name not in _SHOWN]
    return lines


def email_message(
    alerts: Sequence[Alert], sender: str, recipients: Sequence[str], now: datetime
) -> EmailMessage:
    """A plain-text email about `alerts`: each one's router, IMEI, order number, state, notes."""
    first = alerts[0]
    status = "FIRING" if any(_firing(alert) for alert in alerts) else "RESOLVED"
    count = f":{len(alerts)}" if len(alerts) > 1 else ""
    about = f"router {first.router_id}" if first.router_id else f"{first.organisation_id}"
    more = f" and {len(alerts) - 1} more" if len(alerts) > 1 else ""
    message = EmailMessage()
    message["Subject"] = f"[{status}{count}] {first.rule.value}: {about}{more}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "router-monitor")
    message.set_content("\n\n".join("\n".join(_describe(alert)) for alert in alerts) + "\n")
    return message


@dataclass(frozen=True, repr=False)
class EmailNotifier:
    """Sends one plain-text email per notification over SMTP (optionally STARTTLS and login)."""

    host: str
    port: int
    sender: str
    recipients: Sequence[str]
    starttls: bool
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0
    ssl_context: ssl.SSLContext | None = None
    clock: Callable[[], datetime] = _utcnow

    def __post_init__(self) -> None:
        if not self.recipients:
            raise ValueError("an email notifier needs at least one recipient")
        if (self.username is None) != (self.password is None):
            raise ValueError("an SMTP username and password go together")

    def __repr__(self) -> str:
        return f"EmailNotifier('{self.host}:{self.port}', {len(self.recipients)} recipients)"

    def send(self, alerts: Sequence[Alert]) -> None:
        """Send one email about `alerts` to every recipient."""
        if not alerts:
            return
        message = email_message(alerts, self.sender, self.recipients, self.clock())
        what = f"smtp {self.host}:{self.port}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                if self.username is not None and self.password is not None:
                    smtp.login(self.username, self.password)
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise NotifyError(
                min(codes) >= 500, f"{what}: refused {_refusals(exc.recipients)}"
            ) from exc
        except smtplib.SMTPResponseException as exc:  # login, sender or message refused
            text = (
                exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
            )
            raise NotifyError(exc.smtp_code >= 500, f"{what}: {exc.smtp_code} {text}") from exc
        except (smtplib.SMTPNotSupportedError, ssl.SSLCertVerificationError) as exc:
            raise NotifyError(True, f"{what}: {exc}") from exc  # no STARTTLS/AUTH; untrusted cert
        except OSError as exc:  # refused, reset, timed out, disconnected (SMTPException too)
            raise NotifyError(False, f"{what}: {_cause(exc)}") from exc
        if refused:  # the others got it: retrying would send them a second copy
            _LOG.warning("%s: some recipients refused: %s", what, _refusals(refused))


def _refusals(refused: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{rcpt} ({code} {text.decode(errors='replace')})" for rcpt, (code, text) in refused.items()
    )


def deliver(
    notifier: Notifier,
    alerts: Sequence[Alert],
    retry_for: timedelta,
    *,
    backoff: timedelta = timedelta(seconds=1),
    max_backoff: timedelta = timedelta(minutes=1),
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send, retrying transient failures (jittered exponential backoff) for up to `retry_for`.

    Blocking: run it in a thread. A permanent failure, or the last transient one once
    `retry_for` has passed, is raised as `NotifyError`.
    """
    call_with_retries(
        lambda: notifier.send(alerts),
        repr(notifier),
        retry_for,
        backoff=backoff,
        max_backoff=max_backoff,
        sleep=sleep,
    )
