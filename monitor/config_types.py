"""Value types and the base section shared by the configuration's schema modules."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from monitor import units
from monitor.model import identifier_problem


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a duration like 60s, 5m or 1h30m")
    return units.parse_duration(value)


def _byte_size(value: Any) -> int:
    if not isinstance(value, str | int):
        raise ValueError("must be a size like 20GB or a number of bytes")
    return units.parse_byte_size(value)


def _host_port(value: Any) -> units.HostPort:
    if isinstance(value, units.HostPort):
        return value
    if not isinstance(value, str):
        raise ValueError("must be host:port, such as 127.0.0.1:8080")
    return units.parse_host_port(value)


def checked(check: Any) -> Any:
    def validate(value: str) -> str:
        problem = check(value)
        if problem:
            raise ValueError(problem)
        return value

    return validate


Duration = Annotated[timedelta, BeforeValidator(_duration), PlainSerializer(units.format_duration)]
ByteSize = Annotated[int, BeforeValidator(_byte_size)]
ListenAddress = Annotated[units.HostPort, BeforeValidator(_host_port), PlainSerializer(str)]
Identifier = Annotated[str, BeforeValidator(checked(identifier_problem))]
Text = Annotated[str, Field(min_length=1, max_length=200)]


class Section(BaseModel):
    """A config section: unknown keys are errors, values are frozen, text is stripped."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
