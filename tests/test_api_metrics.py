"""/metrics behind an optional bearer token (`http.metrics_token`): its series name every tenant's
routers, with their IMEI and ICCID."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from monitor.api import create_api
from monitor.config import load_settings
from monitor.errors import ConfigError

TOKEN = "m3trics-T0ken-0123456789abcdef"
SERIES = 'router_info{router="r-1",imei="356938035643809",iccid="8944000000000000001"} 1\n'


async def ready() -> tuple[bool, dict[str, str]]:
    return True, {}


def client(token: str | None) -> TestClient:
    return TestClient(create_api(ready, CollectorRegistry(), lambda: SERIES, metrics_token=token))


def test_without_a_token_metrics_are_open_as_before() -> None:
    with client(None) as api:
        answer = api.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        assert SERIES in answer.text
        # A scraper that sends a token anyway is not turned away.
        assert api.get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer wrong-token-0123456789",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer é",
    ],
)
def test_with_a_token_metrics_answer_401_json_without_it(
    authorization: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # As bytes: a header may carry any octet (Latin-1 on the wire), which a str would refuse.
    headers = {"Authorization": authorization.encode("latin-1")} if authorization else {}
    with client(TOKEN) as api:
        answer = api.get("/metrics", headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {
        "error": "unauthorized",
        "message": "a bearer token is required for /metrics",
    }
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "imei" not in answer.text
    assert TOKEN not in answer.text
    assert TOKEN not in caplog.text


def test_with_a_token_metrics_answer_the_right_bearer() -> None:
    with client(TOKEN) as api:
        for scheme in ("Bearer", "bearer"):
            answer = api.get("/metrics", headers={"Authorization": f"{scheme} {TOKEN}"})
            assert answer.status_code == 200, scheme
            assert SERIES in answer.text
        # The health endpoints stay open for probes.
        assert api.get("/healthz").status_code == 200
        assert api.get("/readyz").status_code == 200


def write(tmp_path: Path, config: dict[str, object]) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_metrics_token_from_the_file_or_the_environment(tmp_path: Path) -> None:
    assert load_settings(None, {}).http.metrics_token is None
    from_file = load_settings(write(tmp_path, {"http": {"metrics_token": TOKEN}}), {})
    assert from_file.http.metrics_token is not None
    assert from_file.http.metrics_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(from_file)
    from_env = load_settings(None, {"MONITOR_HTTP__METRICS_TOKEN": TOKEN})
    assert from_env.http.metrics_token is not None
    assert from_env.http.metrics_token.get_secret_value() == TOKEN


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("short-secret", "must be at least 16 characters"),
        ("has a space in it 0123", "must be printable ASCII without spaces"),
        ("ünicode-token-0123456789", "must be printable ASCII without spaces"),
    ],
)
def test_unusable_metrics_tokens_are_refused_without_echoing_them(
    tmp_path: Path, token: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, {"http": {"metrics_token": token}}), {})
    message = str(caught.value)
    assert "http.metrics_token" in message
    assert reason in message
    assert token not in message
