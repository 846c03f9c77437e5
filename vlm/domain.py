"""Domain types and pure rules of VLM: roles, host ids, allocation states, portions, group names."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    ANALYST = "analyst"


class HostType(StrEnum):
    ETHERNET = "ETHERNET"
    USER = "USER"
    STRING = "STRING"


class AllocationState(StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    FAILED = "failed"
    REMOVING = "removing"
    DISABLED = "disabled"  # on the server, but the server disabled the entry (e.g. a shrink)


class VlmError(Exception):
    """Base of every error a service raises for the caller to show."""

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.row = row


class ValidationError(VlmError):
    """Input is malformed or breaks a rule; nothing was written."""


class PermissionDenied(VlmError):
    """The acting user may not do this."""


class NotFound(VlmError):
    """The named object does not exist (or is not visible to the acting user)."""


class Conflict(VlmError):
    """The change conflicts with existing state (dependants, duplicates, capacity)."""


@dataclass(frozen=True)
class Actor:
    """The signed-in user on whose behalf a service acts."""

    username: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


SYSTEM_ACTOR = Actor("system", Role.ADMIN)

HOST_ID_MAX_LENGTH = 128
DESCRIPTION_MAX_LENGTH = 500
_ETHERNET = re.compile(r"^[0-9A-F]{12}$")
_PRINTABLE = re.compile(r"^[\x20-\x7E\u00A0-\uFFFF]+$")


def parse_host_type(value: object) -> HostType:
    """Turn grid or CSV input into a HostType, with a message naming the accepted values."""
    text = str(value or "").strip().upper()
    try:
        return HostType(text)
    except ValueError:
        accepted = ", ".join(t.value for t in HostType)
        raise ValidationError(
            f"host type '{value}' is not one of {accepted}", field="host_type"
        ) from None


def normalize_host_id(host_type: HostType, value: object) -> str:
    """Validate a host id for its type and return its canonical form."""
    text = "" if value is None else str(value).strip()
    if not text:
        raise ValidationError("host id is empty", field="host_id")
    if host_type is HostType.ETHERNET:
        hexed = re.sub(r"[:\-.\s]", "", text).upper()
        if not _ETHERNET.match(hexed):
            raise ValidationError(
                f"ETHERNET host id '{text}' must be 12 hex digits (e.g. 0050569A1B2C)",
                field="host_id",
            )
        return hexed
    if len(text) > HOST_ID_MAX_LENGTH:
        raise ValidationError(
            f"{host_type.value} host id is longer than {HOST_ID_MAX_LENGTH} characters",
            field="host_id",
        )
    if not _PRINTABLE.match(text):
        raise ValidationError(
            f"{host_type.value} host id contains control characters", field="host_id"
        )
    return text


def _whole_number(value: object, what: str, minimum: int) -> int:
    """A whole number of at least minimum, or a ValidationError naming the field."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError(f"{what} '{value}' is not a number", field=what) from None
    if number != int(number) or number < minimum:
        raise ValidationError(f"{what} must be a whole number ≥ {minimum}, got {value}", field=what)
    return int(number)


def validate_count(value: object) -> int:
    """A license count is a whole number of at least 1."""
    return _whole_number(value, "count", 1)


def validate_quantity(value: object) -> int:
    """A pool quantity is a whole number of at least 0."""
    return _whole_number(value, "quantity", 0)


def validate_description(value: object) -> str:
    text = "" if value is None else str(value).strip()
    if text.lower() == "nan":
        text = ""
    if len(text) > DESCRIPTION_MAX_LENGTH:
        raise ValidationError(
            f"description is longer than {DESCRIPTION_MAX_LENGTH} characters", field="description"
        )
    return text


def validate_name(value: object, what: str, max_length: int = 80) -> str:
    text = "" if value is None else str(value).strip()
    if not text:
        raise ValidationError(f"{what} is empty", field="name")
    if len(text) > max_length:
        raise ValidationError(f"{what} is longer than {max_length} characters", field="name")
    return text


GROUP_NAME_MAX_LENGTH = 64
_UNSAFE_GROUP_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")


def reservation_group_name(prefix: str, host_type: str, host_id: str) -> str:
    """Deterministic, readable group name VLM owns for one host id on one server."""
    readable = _UNSAFE_GROUP_CHARS.sub("_", f"{host_type}-{host_id}")
    name = f"{prefix}{readable}"
    exact = readable == f"{host_type}-{host_id}"
    if exact and len(name) <= GROUP_NAME_MAX_LENGTH:
        return name
    digest = hashlib.sha256(f"{host_type}\x00{host_id}".encode()).hexdigest()[:10]
    room = GROUP_NAME_MAX_LENGTH - len(prefix) - len(digest) - 1
    return f"{prefix}{readable[:room]}~{digest}"


@dataclass(frozen=True)
class PortionRoom:
    """How much of one feature a server can still give to a pool."""

    server_feature_id: int
    server_name: str
    room: int


def split_into_portions(quantity: int, rooms: list[PortionRoom]) -> dict[int, int]:
    """Greedy split: most room first, ties by server name. Raises if the rooms are too small."""
    remaining = quantity
    portions: dict[int, int] = {}
    for room in sorted(rooms, key=lambda r: (-r.room, r.server_name)):
        if remaining <= 0:
            break
        take = min(room.room, remaining)
        if take > 0:
            portions[room.server_feature_id] = take
            remaining -= take
    if remaining > 0:
        available = sum(max(r.room, 0) for r in rooms)
        raise ValidationError(f"only {available} available, {quantity} requested", field="quantity")
    return portions


def reduce_portions(
    current: dict[int, int], allocated: dict[int, int], new_quantity: int
) -> dict[int, int]:
    """Shrink portions to new_quantity, taking from the least-allocated room first."""
    total = sum(current.values())
    excess = total - new_quantity
    result = dict(current)
    order = sorted(current, key=lambda sf: -(current[sf] - allocated.get(sf, 0)))
    for sf in order:
        if excess <= 0:
            break
        free = result[sf] - allocated.get(sf, 0)
        take = min(free, excess)
        result[sf] -= take
        excess -= take
    if excess > 0:
        in_use = sum(allocated.values())
        raise ValidationError(f"cannot go below the {in_use} already allocated", field="quantity")
    return {sf: q for sf, q in result.items() if q > 0 or allocated.get(sf, 0) > 0}
