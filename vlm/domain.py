"""Domain types and pure rules of VLM: roles, host ids, allocation states, portions, group names."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from numbers import Integral, Real
from urllib.parse import urlsplit


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    ANALYST = "analyst"


class HostType(StrEnum):
    """The host id types FNE accepts in a reservation (docs/architecture.md §9): a device's
    network address, a user, or a producer-defined string."""

    ETHERNET = "ETHERNET"
    USER = "USER"
    STRING = "STRING"


class AllocationState(StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    FAILED = "failed"
    REMOVING = "removing"
    DISABLED = "disabled"  # on the server, but the server disabled the entry (e.g. a shrink)
    SCHEDULED = "scheduled"  # its start day has not come: counted in the pool, not on a server
    EXPIRING = "expiring"  # its end day has passed: being taken off the server, then expired
    EXPIRED = "expired"  # its end day has passed and it is off the server: history only


# Allocation states that no longer hold a license of their pool (not counted, not editable).
ENDED_STATES = (
    AllocationState.REMOVING.value,
    AllocationState.EXPIRING.value,
    AllocationState.EXPIRED.value,
)


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

# Documented input limits (README, "Input limits"): every service refuses longer or larger values.
NAME_MAX_LENGTH = 100  # servers, VLMs, pools, display names
DESCRIPTION_MAX_LENGTH = 2_000
HOST_ID_MAX_LENGTH = 128
URL_MAX_LENGTH = 2_000
INSTANCE_MAX_LENGTH = 100
SERVER_USERNAME_MAX_LENGTH = 100
SERVER_PASSWORD_MAX_LENGTH = 1_000
CA_PATH_MAX_LENGTH = 4_096
EMAIL_MAX_LENGTH = 254
FEATURE_NAME_MAX_LENGTH = 256
COUNT_MAX = 1_000_000
QUANTITY_MAX = 1_000_000
TIMEOUT_MIN_SECONDS = 0.1
TIMEOUT_MAX_SECONDS = 300.0
DAYS_MAX = 3_650
DAY_FIRST = dt.date(2000, 1, 1)  # allocation start and end days lie in this range
DAY_LAST = dt.date(2999, 12, 31)
ID_MAX = 2**63 - 1

_ETHERNET = re.compile(r"^[0-9A-F]{12}$")
_INTEGER_TEXT = re.compile(r"^[+-]?[0-9]+(\.0*)?$")
_REFUSED_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}  # control, lone surrogate, line/paragraph separator
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_MULTILINE_ALLOWED = {"\n", "\t"}
_SHOWN_LENGTH = 40
_ISO_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.+\-Z]{0,20})?$")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s'\"<>]*@")


def shown(value: object, limit: int = _SHOWN_LENGTH) -> str:
    """A value made safe to put in a message: printable, escaped, and cut to limit characters."""
    text = value if isinstance(value, str) else repr(value)
    safe = "".join(
        ch if _allowed_char(ch, multiline=False) else ch.encode("unicode_escape").decode("ascii")
        for ch in text[: limit + 1]
    )
    return safe if len(text) <= limit else safe[:limit] + "…"


def _allowed_char(ch: str, *, multiline: bool) -> bool:
    if multiline and ch in _MULTILINE_ALLOWED:
        return True
    return unicodedata.category(ch) not in _REFUSED_CATEGORIES and ch not in _BIDI_CONTROLS


def _plain_ascii(text: str) -> bool:
    """Printable ASCII only (U+0020..U+007E): no character of it is ever refused (a quick
    check before the per-character one, which a Grid's thousand rows feel)."""
    return text.isascii() and text.isprintable()


def _first_refused(text: str, *, multiline: bool) -> str | None:
    return next((ch for ch in text if not _allowed_char(ch, multiline=multiline)), None)


def clean_text(
    value: object,
    field: str,
    *,
    max_len: int,
    required: bool = True,
    multiline: bool = False,
    label: str | None = None,
) -> str:
    """Printable text of at most max_len characters, stripped; a ValidationError naming the field.

    Refused: anything but str, lone surrogates, NUL and other C0/C1 controls, U+2028/U+2029 and
    bidirectional overrides; multiline text may hold newlines and tabs.
    """
    what = label or field.replace("_", " ")
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be text, not {type(value).__name__}", field=field)
    text = value.replace("\r\n", "\n").strip() if multiline else value.strip()
    bad = None if _plain_ascii(text) else _first_refused(text, multiline=multiline)
    if bad is not None:
        code = f"U+{ord(bad):04X}"
        raise ValidationError(
            f"{what} contains a control or invalid character ({code})", field=field
        )
    if required and not text:
        raise ValidationError(f"{what} is empty", field=field)
    if len(text) > max_len:
        raise ValidationError(f"{what} is longer than {max_len:,} characters", field=field)
    return text


def optional_text(value: object, field: str, *, max_len: int, label: str | None = None) -> str:
    """Like clean_text, but None counts as empty."""
    if value is None:
        return ""
    return clean_text(value, field, max_len=max_len, required=False, label=label)


def require_text(value: object, field: str) -> str:
    """The value when it is a str (as typed, not checked further), else a ValidationError."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be text, not {type(value).__name__}", field=field)
    return value


def secret_text(value: object, field: str, *, max_len: int) -> str | None:
    """A password as typed (not stripped): text without control characters, or None when empty."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be text, not {type(value).__name__}", field=field)
    if any(not _allowed_char(ch, multiline=False) for ch in value):
        raise ValidationError(f"{field} contains a control or invalid character", field=field)
    if len(value) > max_len:
        raise ValidationError(f"{field} is longer than {max_len:,} characters", field=field)
    return value


def _as_float(value: Real) -> float:
    """float(value), with numbers too large for a float (10**400) as infinity."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _as_integer(value: object) -> int | None:
    """The whole number a value stands for, or None when it is not one (NaN, 2.5, 'abc', True)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        number = _as_float(value)
        return int(number) if math.isfinite(number) and number.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER_TEXT.match(text) and len(text) <= 40:
            return int(text.split(".")[0])
    return None


def bounded_int(
    value: object, field: str, *, minimum: int, maximum: int, label: str | None = None
) -> int:
    """A whole number in [minimum, maximum]; NaN, ±inf, bools, 2.5 and 'abc' are refused."""
    what = label or field.replace("_", " ")
    number = _as_integer(value)
    if number is None:
        raise ValidationError(
            f"{what} must be a whole number ≥ {minimum}, got {shown(value)}", field=field
        )
    if number < minimum:
        raise ValidationError(
            f"{what} must be a whole number ≥ {minimum}, got {number}", field=field
        )
    if number > maximum:
        raise ValidationError(f"{what} must be at most {maximum:,}, got {number:,}", field=field)
    return number


def bounded_float(
    value: object, field: str, *, minimum: float, maximum: float, label: str | None = None
) -> float:
    """A finite number in [minimum, maximum]; text that is a number is accepted."""
    what = label or field.replace("_", " ")
    number: float | None = None
    if isinstance(value, Real) and not isinstance(value, bool):
        number = _as_float(value)
    elif isinstance(value, str) and len(value) <= 40:
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise ValidationError(f"{what} must be a number, got {shown(value)}", field=field)
    if not minimum <= number <= maximum:
        raise ValidationError(
            f"{what} must be between {minimum:g} and {maximum:g}, got {number:g}", field=field
        )
    return number


def validate_flag(value: object, field: str) -> bool:
    """A yes/no value: a real bool, not text or a number."""
    if not isinstance(value, bool):
        raise ValidationError(f"{field} must be true or false, got {shown(value)}", field=field)
    return value


def record_id(value: object, what: str) -> int:
    """The id of a stored row (pool, VLM, server, allocation …): a whole number ≥ 1."""
    return bounded_int(value, what, minimum=1, maximum=ID_MAX, label=f"{what} id")


def record_ids(values: object, what: str) -> list[int]:
    """A list of row ids (e.g. chosen server features)."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValidationError(f"{what} must be a list of ids", field=what)
    return [record_id(v, what) for v in values]


def validate_days(value: object) -> int:
    """The length of a report period in days."""
    return bounded_int(value, "days", minimum=1, maximum=DAYS_MAX)


def parse_host_type(value: object) -> HostType:
    """Turn grid or CSV input into a HostType, with a message naming the accepted values."""
    text = value.strip().upper() if isinstance(value, str) else ""
    try:
        return HostType(text)
    except ValueError:
        accepted = ", ".join(t.value for t in HostType)
        raise ValidationError(
            f"host type '{shown(value)}' is not one of {accepted}", field="host_type"
        ) from None


@dataclass(frozen=True)
class HostIdFormat:
    """What a host id of one type must look like, in words, with an example."""

    rule: str
    example: str

    def hint(self, host_type: HostType) -> str:
        return f"{host_type.value}: {self.rule}, like {self.example}"


HOST_ID_FORMATS: dict[HostType, HostIdFormat] = {
    HostType.ETHERNET: HostIdFormat("12 hex digits", "0050569A1B2C"),
    HostType.USER: HostIdFormat(f"a user name of up to {HOST_ID_MAX_LENGTH} characters", "jdoe"),
    HostType.STRING: HostIdFormat(
        f"printable text of up to {HOST_ID_MAX_LENGTH} characters", "LAB-RIG-07"
    ),
}


def host_id_help() -> str:
    """Every host type with its format and an example, for forms and grid headers."""
    return "; ".join(HOST_ID_FORMATS[t].hint(t) for t in HostType)


def _format_error(host_type: HostType, text: str) -> ValidationError:
    form = HOST_ID_FORMATS[host_type]
    return ValidationError(
        f"{host_type.value} host id '{shown(text)}' must be {form.rule} (e.g. {form.example})",
        field="host_id",
    )


def normalize_host_id(host_type: HostType, value: object) -> str:
    """Validate a host id for its type and return its canonical form.

    ETHERNET: 12 hex digits, separators (: - . space) dropped, upper case. USER: a user name as
    the license server sees it (Windows names may hold spaces). STRING: any printable text.
    All: 1 to HOST_ID_MAX_LENGTH characters, stripped, no control characters."""
    try:
        text = clean_text(
            "" if value is None else value, "host_id", max_len=HOST_ID_MAX_LENGTH, label="host id"
        )
    except ValidationError as exc:
        hint = HOST_ID_FORMATS[host_type].hint(host_type)
        raise ValidationError(f"{exc.message} ({hint})", field="host_id") from None
    if host_type is HostType.ETHERNET:
        hexed = re.sub(r"[:\-.\s]", "", text).upper()
        if not _ETHERNET.match(hexed):
            raise _format_error(host_type, text)
        return hexed
    return text


def validate_count(value: object) -> int:
    """A license count is a whole number of at least 1."""
    return bounded_int(value, "count", minimum=1, maximum=COUNT_MAX)


def validate_quantity(value: object) -> int:
    """A pool quantity is a whole number of at least 0."""
    return bounded_int(value, "quantity", minimum=0, maximum=QUANTITY_MAX)


def _missing(value: object) -> bool:
    """None or a grid's NaN marker for an empty cell."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def parse_day(value: object, field: str) -> dt.date | None:
    """A calendar day from a date, a datetime (its day) or 'YYYY-MM-DD' text (a time after it
    is ignored); None when empty (None, blank, NaN, NaT)."""
    if _missing(value) or _is_nat(value):
        return None
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if _ISO_DAY.match(text):
            value = _iso_day(text[:10])
    if isinstance(value, dt.date):
        return _day_in_range(value, field)
    raise ValidationError(
        f"{field.replace('_', ' ')} must be a date as YYYY-MM-DD, got {shown(value)}", field=field
    )


def _iso_day(text: str) -> dt.date | str:
    """The day 'YYYY-MM-DD' names, or the text itself when there is no such day."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return text


def _day_in_range(day: dt.date, field: str) -> dt.date:
    """A day between DAY_FIRST and DAY_LAST (so that adding a duration cannot overflow)."""
    if not DAY_FIRST <= day <= DAY_LAST:
        raise ValidationError(
            f"{field.replace('_', ' ')} must be between {DAY_FIRST} and {DAY_LAST}, got {day}",
            field=field,
        )
    return day


def _is_nat(value: object) -> bool:
    """A missing-time marker (pandas NaT, a date that is unequal to itself)."""
    return isinstance(value, dt.date) and value != value


def validate_duration_days(value: object, field: str) -> int | None:
    """A pool's default or maximum allocation duration: whole days 1 – DAYS_MAX, or None."""
    if _missing(value) or (isinstance(value, str) and not value.strip()):
        return None
    return bounded_int(value, field, minimum=1, maximum=DAYS_MAX)


def validate_description(value: object) -> str:
    """Free text of up to DESCRIPTION_MAX_LENGTH characters; newlines and tabs allowed."""
    if _missing(value):
        return ""
    text = clean_text(
        value, "description", max_len=DESCRIPTION_MAX_LENGTH, required=False, multiline=True
    )
    return "" if text.lower() == "nan" else text


def validate_name(value: object, what: str, max_length: int = NAME_MAX_LENGTH) -> str:
    """A required one-line name (server, VLM, pool …) of at most max_length characters."""
    return clean_text(value, "name", max_len=max_length, label=what)


FeatureKey = tuple[str, str]


def validate_feature(value: object) -> FeatureKey:
    """A (feature name, version) pair as typed text."""
    if isinstance(value, str | bytes) or not isinstance(value, tuple | list) or len(value) != 2:
        raise ValidationError("feature must be a (name, version) pair", field="feature")
    name = clean_text(value[0], "feature", max_len=FEATURE_NAME_MAX_LENGTH, label="feature name")
    version = clean_text(
        "" if value[1] is None else value[1],
        "feature",
        max_len=FEATURE_NAME_MAX_LENGTH,
        required=False,
        label="feature version",
    )
    return (name, version)


def validate_quantities(value: object) -> dict[FeatureKey, int]:
    """A pool's quantity per feature: {(name, version): whole number ≥ 0}."""
    if not isinstance(value, Mapping):
        raise ValidationError("quantities must map features to numbers", field="quantity")
    quantities: dict[FeatureKey, int] = {}
    for key, raw in value.items():
        feature = validate_feature(key)
        try:
            quantities[feature] = validate_quantity(raw)
        except ValidationError as exc:
            raise ValidationError(
                f"{feature[0]} {feature[1]}: {exc.message}", field="quantity"
            ) from None
    return quantities


def validate_base_url(value: object) -> str:
    """An http(s) URL of a license server, without credentials (they go in their own fields)."""
    url = clean_text(value, "base_url", max_len=URL_MAX_LENGTH, label="base URL").rstrip("/")
    example = "must look like http://host:7070"
    try:
        parsed = urlsplit(url)
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number 0-65535
    except ValueError:
        raise ValidationError(f"base URL {example}", field="base_url") from None
    if "@" in parsed.netloc:
        raise ValidationError(
            "base URL must not contain a user name or password (user:password@); "
            "enter them in the User and Password fields",
            field="base_url",
        )
    if parsed.scheme not in {"http", "https"} or not parsed.hostname or " " in url:
        raise ValidationError(f"base URL '{shown(url)}' {example}", field="base_url")
    return url


def redact_userinfo(text: str) -> str:
    """Every URL in text with its user:password@ part replaced by ***@."""
    if not isinstance(text, str):
        return text
    return _URL_USERINFO.sub(r"\1***@", text)


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


BATCH_GROUP_MARK = "~batch-"


def batch_group_name(prefix: str, reservations: list[tuple[str, str, tuple]]) -> str:
    """Name of a group VLM creates for several new hosts of one server at once:
    deterministic in what it holds (host type, host id, entries), so a create retried after an
    uncertain answer finds the group it made ("name taken") instead of making a second one.
    The '~' right after the prefix never starts a per-host name."""
    text = "\x00".join(f"{t}\x01{h}\x01{entries!r}" for t, h, entries in sorted(reservations))
    return f"{prefix}{BATCH_GROUP_MARK}{hashlib.sha256(text.encode()).hexdigest()[:20]}"


def is_batch_group(prefix: str, name: str) -> bool:
    """True for a group name batch_group_name makes (with this prefix)."""
    return name.startswith(f"{prefix}{BATCH_GROUP_MARK}")


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
