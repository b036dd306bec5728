"""The `notifications:` section: where alert notifications go (secrets from the environment)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.config_types import Duration, Section


def http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")) or len(url) < 10:
        raise ValueError("must be an http:// or https:// URL")
    return url


class AlertmanagerTarget(Section):
    """One Alertmanager (list every replica of a cluster: each must receive every alert)."""

    url: str

    _url = field_validator("url")(lambda cls, url: http_url(url))


class WebhookTarget(Section):
    """A webhook receiving Alertmanager's version-4 payload, signed with HMAC-SHA256."""

    url: str
    secret: SecretStr

    _url = field_validator("url")(lambda cls, url: http_url(url))

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return secret


class EmailTarget(Section):
    """Email over SMTP, one message per notification."""

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    sender: str = Field(min_length=3)
    recipients: tuple[str, ...] = Field(min_length=1)
    starttls: bool = True
    username: str | None = None
    password: SecretStr | None = None

    @model_validator(mode="after")
    def _login_complete(self) -> EmailTarget:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


class NotificationSettings(Section):
    """Every notifier an alert's firing and resolution are sent to (none: alerts are only
    recorded, shown in /metrics and the API)."""

    alertmanager: tuple[AlertmanagerTarget, ...] = ()
    webhooks: tuple[WebhookTarget, ...] = ()
    email: EmailTarget | None = None
    timeout: Duration = timedelta(seconds=10)
