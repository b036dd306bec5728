"""Notifiers: pure payloads, the real Alertmanager, a loopback webhook receiver, real SMTP."""

from __future__ import annotations

import email
import hashlib
import hmac
import importlib.util
import ipaddress
import json
import logging
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from alertmanager import BINARY, MISSING, free_tcp_port, running_alertmanager

from monitor.alerts.notify import (
    SIGNATURE_HEADER,
    AlertmanagerNotifier,
    EmailNotifier,
    NotifyError,
    WebhookNotifier,
    alertmanager_payload,
    deliver,
    email_message,
    sign,
    webhook_payload,
)
from monitor.model import Alert, AlertState, Rule, Severity, alert_fingerprint, episode_id

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SECRET = "webhook-secret-do-not-leak"
PASSWORD = "smtp-password-do-not-leak"


def make_alert(
    router: str = "e5576-0007",
    state: AlertState = AlertState.FIRING,
    rule: Rule = Rule.ROUTER_OFFLINE,
    starts_at: datetime = NOW - timedelta(minutes=20),
    **annotations: str,
) -> Alert:
    """A router alert as the lifecycle stores it, with the labels and notes the rules attach."""
    fingerprint = alert_fingerprint(rule, router)
    return Alert(
        fingerprint=fingerprint,
        rule=rule,
        state=state,
        severity=Severity.CRITICAL,
        updated_at=NOW,
        router_id=router,
        organisation_id="org-la-1",
        active_since=starts_at - timedelta(minutes=15),
        starts_at=starts_at,
        ends_at=NOW - timedelta(minutes=1) if state is AlertState.RESOLVED else None,
        episode_id=episode_id(fingerprint, starts_at),
        labels={"alertname": rule.value, "router": router, "organisation": "org-la-1"},
        annotations={"order_number": "ORD-1234", "imei": "867098031000017", **annotations},
    )


# --- payloads ------------------------------------------------------------------------------


def test_alertmanager_payload_firing_expires_after_the_resend_horizon() -> None:
    [item] = alertmanager_payload([make_alert(checks="power")], NOW, "http://monitor/r/e5576-0007")
    assert item == {
        "labels": {"alertname": "router_offline", "router": "e5576-0007",
                   "organisation": "org-la-1", "severity": "critical"},
        "annotations": {"order_number": "ORD-1234", "imei": "867098031000017", "checks": "power"},
        "startsAt": "2026-11-28T11:40:00.000Z",
        "endsAt": "2026-11-28T12:04:00.000Z",
        "generatorURL": "http://monitor/r/e5576-0007",
    }  # fmt: skip


def test_alertmanager_payload_resolved_ends_in_the_past() -> None:
    [item] = alertmanager_payload([make_alert(state=AlertState.RESOLVED)], NOW, "")
    assert item["endsAt"] == "2026-11-28T11:59:00.000Z"


def test_alertname_is_the_rule_whatever_the_labels_say() -> None:
    alert = replace(make_alert(), labels={"alertname": "other", "cell": "42"})
    [item] = alertmanager_payload([alert], NOW, "")
    assert item["labels"]["alertname"] == "router_offline"
    assert item["labels"]["cell"] == "42"


@pytest.mark.parametrize("state", [AlertState.PENDING, AlertState.INACTIVE])
def test_only_firing_and_resolved_alerts_are_notified(state: AlertState) -> None:
    with pytest.raises(ValueError, match="not notifiable"):
        alertmanager_payload([make_alert(state=state)], NOW, "")


def test_webhook_payload_is_alertmanagers_version_4() -> None:
    firing = make_alert("r1", checks="power")
    resolved = make_alert("r2", AlertState.RESOLVED, checks="power")
    payload = webhook_payload([firing, resolved], "on-call", "http://monitor")
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["receiver"] == "on-call"
    assert payload["externalURL"] == "http://monitor"
    assert payload["groupLabels"] == {"alertname": "router_offline"}
    assert payload["groupKey"] == '{}:{alertname="router_offline"}'
    assert payload["commonLabels"] == {
        "alertname": "router_offline", "organisation": "org-la-1", "severity": "critical"
    }  # fmt: skip
    assert payload["commonAnnotations"] == {
        "order_number": "ORD-1234", "imei": "867098031000017", "checks": "power"
    }  # fmt: skip
    assert payload["truncatedAlerts"] == 0
    first, second = payload["alerts"]
    assert (first["status"], first["endsAt"]) == ("firing", "0001-01-01T00:00:00Z")
    assert (second["status"], second["endsAt"]) == ("resolved", "2026-11-28T11:59:00.000Z")
    assert first["fingerprint"] == firing.fingerprint
    assert first["labels"]["router"] == "r1"


def test_webhook_payload_all_resolved_and_truncated() -> None:
    alerts = [make_alert(f"r{n}", AlertState.RESOLVED) for n in range(3)]
    payload = webhook_payload(alerts, "on-call", "", max_alerts=2)
    assert payload["status"] == "resolved"
    assert (len(payload["alerts"]), payload["truncatedAlerts"]) == (2, 1)


def test_sign_is_hmac_sha256_hex() -> None:
    # RFC 4231, test case 2.
    expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert sign(b"what do ya want for nothing?", "Jefe") == expected


def test_email_names_router_imei_order_number_state_and_notes() -> None:
    message = email_message([make_alert(checks="power")], "monitor@example.org", ["a@x"], NOW)
    assert message["Subject"] == "[FIRING] router_offline: router e5576-0007"
    body = message.get_content()
    for text in ("router_offline is FIRING (critical)", "e5576-0007", "867098031000017",
                 "ORD-1234", "checks: power", "org-la-1"):  # fmt: skip
        assert text in body


# --- the real Alertmanager -----------------------------------------------------------------

needs_alertmanager = pytest.mark.skipif(BINARY is None, reason=MISSING)


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Alertmanager for the module (each test uses routers of its own)."""
    if BINARY is None:
        pytest.skip(MISSING)
    with running_alertmanager(tmp_path_factory.mktemp("alertmanager")) as url:
        yield url


def am_alerts(url: str, router: str, **params: str) -> list[dict[str, Any]]:
    """The alerts Alertmanager holds about `router`."""
    found = requests.get(f"{url}/api/v2/alerts", params=params, timeout=5).json()
    return [alert for alert in found if alert["labels"].get("router") == router]


def poll_until(check: Any, within: float = 5.0) -> Any:
    """`check()`'s first truthy value, polled for at most `within` seconds."""
    deadline = time.monotonic() + within
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


@needs_alertmanager
def test_alertmanager_holds_a_firing_alert_with_its_labels_and_annotations(
    alertmanager: str,
) -> None:
    now = datetime.now(UTC)
    alert = make_alert("am-firing", starts_at=now - timedelta(minutes=5), checks="power")
    AlertmanagerNotifier(alertmanager, 5.0, generator_url="http://monitor/r").send([alert])
    [held] = poll_until(lambda: am_alerts(alertmanager, "am-firing"))
    assert held["labels"] == {"alertname": "router_offline", "router": "am-firing",
                              "organisation": "org-la-1", "severity": "critical"}  # fmt: skip
    assert held["annotations"] == {**alert.annotations}
    assert held["generatorURL"] == "http://monitor/r"
    ends = datetime.fromisoformat(held["endsAt"].replace("Z", "+00:00"))
    assert now + timedelta(minutes=3) < ends < now + timedelta(minutes=5)


@needs_alertmanager
def test_alertmanager_resolves_an_alert_sent_with_a_past_ends_at(alertmanager: str) -> None:
    now = datetime.now(UTC)
    firing = make_alert("am-resolved", starts_at=now - timedelta(minutes=5))
    notifier = AlertmanagerNotifier(alertmanager, 5.0)
    notifier.send([firing])
    assert poll_until(lambda: am_alerts(alertmanager, "am-resolved", active="true"))
    resolved = replace(firing, state=AlertState.RESOLVED, ends_at=now - timedelta(seconds=1))
    notifier.send([resolved])
    assert poll_until(lambda: not am_alerts(alertmanager, "am-resolved", active="true"))


@needs_alertmanager
def test_alertmanager_rejects_a_malformed_alert_permanently(alertmanager: str) -> None:
    alert = replace(make_alert("am-malformed"), labels={"not-a-label-name": "x"})
    with pytest.raises(NotifyError, match=r"HTTP 400.*not-a-label-name") as caught:
        AlertmanagerNotifier(alertmanager, 5.0).send([alert])
    assert caught.value.permanent


def test_alertmanager_down_is_transient() -> None:
    url = f"http://127.0.0.1:{free_tcp_port()}"
    with pytest.raises(NotifyError, match="Connection refused") as caught:
        AlertmanagerNotifier(url, 2.0).send([make_alert()])
    assert not caught.value.permanent


# --- webhook -------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A loopback HTTP receiver answering each POST with the next scripted status."""

    url: str
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    stall: threading.Event | None = None  # set: answers wait for it (timeouts)
    server: Any = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 (200 once its script is used up)."""
    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((dict(self.headers), body))
            if state.stall is not None:
                state.stall.wait(5)
            status, headers = state.script.pop(0) if state.script else (200, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.server = server
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/alerts?token=t0ken"
    yield state
    if state.stall is not None:
        state.stall.set()
    server.shutdown()
    server.server_close()
    thread.join()


def quick(notifier: Any, alerts: list[Alert], retry_for: float = 5.0) -> None:
    """`deliver` with millisecond backoff, so that retries take no time."""
    deliver(notifier, alerts, timedelta(seconds=retry_for), backoff=timedelta(milliseconds=10),
            max_backoff=timedelta(milliseconds=50))  # fmt: skip


def test_webhook_body_is_signed_with_the_secret(receiver: Receiver) -> None:
    WebhookNotifier(receiver.url, SECRET, 5.0, receiver="on-call").send([make_alert()])
    [(headers, body)] = receiver.received
    assert headers["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
    payload = json.loads(body)
    assert (payload["version"], payload["status"]) == ("4", "firing")
    assert payload["receiver"] == "on-call"
    assert payload["alerts"][0]["annotations"]["imei"] == "867098031000017"


def test_webhook_500_then_200_is_retried_and_delivered(receiver: Receiver) -> None:
    receiver.script = [(500, {}), (503, {}), (200, {})]
    quick(WebhookNotifier(receiver.url, SECRET, 5.0), [make_alert()])
    assert len(receiver.received) == 3
    assert len({body for _, body in receiver.received}) == 1  # the same notification each time


def test_webhook_400_is_permanent_and_not_retried(receiver: Receiver) -> None:
    receiver.script = [(400, {})]
    with pytest.raises(NotifyError, match="HTTP 400") as caught:
        quick(WebhookNotifier(receiver.url, SECRET, 5.0), [make_alert()])
    assert caught.value.permanent
    assert len(receiver.received) == 1


@pytest.mark.parametrize("status", [408, 429, 502])
def test_webhook_transient_statuses(receiver: Receiver, status: int) -> None:
    receiver.script = [(status, {})]
    with pytest.raises(NotifyError) as caught:
        WebhookNotifier(receiver.url, SECRET, 5.0).send([make_alert()])
    assert not caught.value.permanent


def test_webhook_redirect_is_permanent_not_followed(receiver: Receiver) -> None:
    receiver.script = [(302, {"Location": "/elsewhere"})]
    with pytest.raises(NotifyError, match="HTTP 302") as caught:
        WebhookNotifier(receiver.url, SECRET, 5.0).send([make_alert()])
    assert caught.value.permanent
    assert len(receiver.received) == 1


def test_deliver_honours_retry_after(receiver: Receiver) -> None:
    receiver.script = [(429, {"Retry-After": "3"})]
    pauses: list[float] = []
    deliver(WebhookNotifier(receiver.url, SECRET, 5.0), [make_alert()], timedelta(minutes=1),
            backoff=timedelta(milliseconds=10), sleep=pauses.append)  # fmt: skip
    assert pauses == [3.0]
    assert len(receiver.received) == 2


def test_deliver_gives_up_after_retry_for(receiver: Receiver) -> None:
    receiver.script = [(503, {})] * 1000
    started = time.monotonic()
    with pytest.raises(NotifyError, match="HTTP 503") as caught:
        quick(WebhookNotifier(receiver.url, SECRET, 5.0), [make_alert()], retry_for=0.5)
    assert not caught.value.permanent
    assert 0.5 <= time.monotonic() - started < 2.0
    assert len(receiver.received) > 2


def test_webhook_untrusted_certificate_is_permanent(
    receiver: Receiver, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    receiver.server.socket = tls[0].wrap_socket(receiver.server.socket, server_side=True)
    url = receiver.url.replace("http://", "https://")
    with pytest.raises(NotifyError, match="CERTIFICATE_VERIFY_FAILED") as caught:
        WebhookNotifier(url, SECRET, 5.0).send([make_alert()])
    assert caught.value.permanent


def test_webhook_timeout_is_transient(receiver: Receiver) -> None:
    receiver.stall = threading.Event()
    with pytest.raises(NotifyError, match="timed out") as caught:
        WebhookNotifier(receiver.url, SECRET, 0.2).send([make_alert()])
    assert not caught.value.permanent


def test_secrets_stay_out_of_errors_logs_and_reprs(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    # urllib3 logs whole URLs at DEBUG: the daemon's log configuration keeps it at INFO or above.
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="monitor")
    receiver.script = [(500, {})] * 1000
    notifier = WebhookNotifier(receiver.url, SECRET, 5.0)
    with pytest.raises(NotifyError) as caught:
        quick(notifier, [make_alert()], retry_for=0.2)
    for text in (str(caught.value), caplog.text, repr(notifier)):
        assert SECRET not in text
        assert "t0ken" not in text  # a token in the URL's query string is a secret too
    assert "/hooks/alerts" in str(caught.value)
    assert "attempt 1 failed" in caplog.text


# --- email over a real SMTP server (aiosmtpd) ----------------------------------------------

needs_smtpd = pytest.mark.skipif(
    importlib.util.find_spec("aiosmtpd") is None, reason="aiosmtpd not installed (pip)"
)


@dataclass
class Mailbox:
    """What the SMTP server accepted, and how it is told to answer."""

    port: int
    messages: list[tuple[list[str], Message]] = field(default_factory=list)
    rcpt_reply: str = "250 OK"
    data_reply: str = "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:  # fmt: skip
        if self.rcpt_reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self.rcpt_reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply.startswith("250"):
            parsed = email.message_from_bytes(envelope.content)
            self.messages.append((list(envelope.rcpt_tos), parsed))
        return self.data_reply


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult

    accepted = data.login == b"monitor" and data.password == PASSWORD.encode()
    return AuthResult(success=accepted, handled=False)  # not handled: aiosmtpd answers 535


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(days=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate, and a client context trusting it."""
    cert, key = _certificate(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


@contextmanager
def serving(**options: Any) -> Iterator[Mailbox]:
    """An aiosmtpd server on 127.0.0.1 with `options`, stopped on exit."""
    from aiosmtpd.controller import Controller

    box = Mailbox(free_tcp_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port, **options)
    controller.start()  # returns once the server answers
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A plain SMTP server: no TLS, no login."""
    with serving() as box:
        yield box


@pytest.fixture
def secure_mailbox(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> Iterator[Mailbox]:
    """An SMTP server requiring STARTTLS and a login (user `monitor`, `PASSWORD`)."""
    with serving(tls_context=tls[0], require_starttls=True, authenticator=_authenticate,
                 auth_required=True) as box:  # fmt: skip
        yield box


def mailer(box: Mailbox, **options: Any) -> EmailNotifier:
    """An email notifier for `box`."""
    settings: dict[str, Any] = {"starttls": False, "timeout": 5.0, **options}
    return EmailNotifier("127.0.0.1", box.port, "monitor@example.org",
                         ["oncall@example.org", "la@example.org"], **settings)  # fmt: skip


@needs_smtpd
def test_email_arrives_with_subject_and_body(mailbox: Mailbox) -> None:
    alerts = [make_alert("r1", checks="power"), make_alert("r2", AlertState.RESOLVED)]
    mailer(mailbox).send(alerts)
    [(recipients, message)] = mailbox.messages
    assert recipients == ["oncall@example.org", "la@example.org"]
    assert message["Subject"] == "[FIRING:2] router_offline: router r1 and 1 more"
    assert message["From"] == "monitor@example.org"
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode()
    for text in ("router_offline is FIRING", "router_offline is RESOLVED", "Router:       r2",
                 "IMEI:         867098031000017", "Order number: ORD-1234",
                 "checks: power"):  # fmt: skip
        assert text in body


@needs_smtpd
def test_email_over_starttls_with_login(
    secure_mailbox: Mailbox, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    notifier = mailer(secure_mailbox, starttls=True, ssl_context=tls[1], username="monitor",
                      password=PASSWORD)  # fmt: skip
    notifier.send([make_alert()])
    assert len(secure_mailbox.messages) == 1


@needs_smtpd
def test_email_wrong_password_is_permanent_and_not_told(
    secure_mailbox: Mailbox,
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = mailer(secure_mailbox, starttls=True, ssl_context=tls[1], username="monitor",
                      password="wrong-" + PASSWORD)  # fmt: skip
    with pytest.raises(NotifyError, match="535") as caught:
        quick(notifier, [make_alert()])
    assert caught.value.permanent
    for text in (str(caught.value), caplog.text, repr(notifier)):
        assert PASSWORD not in text


@needs_smtpd
def test_email_untrusted_certificate_is_permanent(secure_mailbox: Mailbox) -> None:
    notifier = mailer(secure_mailbox, starttls=True, username="monitor", password=PASSWORD)
    with pytest.raises(NotifyError, match="certificate") as caught:
        notifier.send([make_alert()])
    assert caught.value.permanent


@needs_smtpd
@pytest.mark.parametrize(
    ("rcpt", "data", "permanent"),
    [("550 5.1.1 no such user", "250 OK", True), ("250 OK", "451 4.3.0 try later", False),
     ("450 4.2.0 mailbox busy", "250 OK", False), ("250 OK", "554 5.6.0 rejected", True)],
)  # fmt: skip
def test_email_refusals_are_classified(
    mailbox: Mailbox, rcpt: str, data: str, permanent: bool
) -> None:
    mailbox.rcpt_reply, mailbox.data_reply = rcpt, data
    with pytest.raises(NotifyError) as caught:
        mailer(mailbox).send([make_alert()])
    assert caught.value.permanent is permanent
    assert (rcpt if rcpt[0] != "2" else data)[:3] in str(caught.value)


def test_email_server_down_is_transient() -> None:
    notifier = EmailNotifier("127.0.0.1", free_tcp_port(), "m@x", ["a@x"], starttls=False)
    with pytest.raises(NotifyError, match="Connection refused") as caught:
        notifier.send([make_alert()])
    assert not caught.value.permanent
