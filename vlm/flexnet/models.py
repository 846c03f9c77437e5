"""Typed views of the JSON objects of the FlexNet License Server REST API.

Every `from_json` is defensive: unknown fields are ignored (feature slices keep the raw dict),
counts are coerced to int where possible, and both host-id spellings (`{type, value}` in
reservations, `{hostidType, hostidValue}` in client records) are accepted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

PERMANENT = "permanent"


def parse_count(value: Any) -> int | None:
    """Return `value` as an int if it is a whole number (int, integral float or digit string)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
            return int(number) if number.is_integer() else None
    return None


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value)


def _as_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _as_id(value: Any) -> int | None:
    return parse_count(value)


@dataclass(frozen=True)
class HostId:
    """A host identifier: `type` such as ETHERNET, STRING or USER, and its `value`."""

    type: str
    value: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostId:
        kind = data.get("type", data.get("hostidType", ""))
        value = data.get("value", data.get("hostidValue", ""))
        return cls(type=str(kind), value=str(value))

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "value": self.value}

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


@dataclass(frozen=True)
class FeatureSlice:
    """One row of GET /features: a slice of a feature (same name+version may appear many times)."""

    id: int
    name: str
    version: str
    count: int | None
    used: int
    reserved: int
    concurrent: bool
    uncounted: bool
    metered: bool
    type: str | None
    expiry: str | None
    starts: str | None
    feature_id: str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureSlice:
        return cls(
            id=_as_id(data.get("id")) or 0,
            name=str(data.get("featureName", "")),
            version=str(data.get("featureVersion", "")),
            count=parse_count(data.get("featureCount")),
            used=parse_count(data.get("used")) or 0,
            reserved=parse_count(data.get("reserved")) or 0,
            concurrent=_as_bool(data.get("concurrent", False)),
            uncounted=_as_bool(data.get("uncounted", False)),
            metered=_as_bool(data.get("metered", False)),
            type=_as_str(data.get("type")),
            expiry=_as_str(data.get("expiry")),
            starts=_as_str(data.get("starts")),
            feature_id=_as_str(data.get("featureId")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class FeatureTotal:
    """All slices of one (name, version) summed; `expiry` is the earliest dated expiry."""

    name: str
    version: str
    total: int
    used: int
    reserved: int
    concurrent: bool
    uncounted: bool
    metered: bool
    expiry: str | None
    slices: int


@dataclass(frozen=True)
class ReservationEntry:
    """A count of one feature reserved for the reservation's host id."""

    feature_name: str
    feature_version: str
    count: int
    id: int | None = None
    state: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReservationEntry:
        return cls(
            feature_name=str(data.get("featureName", "")),
            feature_version=str(data.get("featureVersion", "")),
            count=parse_count(data.get("featureCount")) or 0,
            id=_as_id(data.get("id")),
            state=_as_str(data.get("state")),
        )

    def to_json(self) -> dict[str, Any]:
        """Body for POST (server-side fields such as id and state are left out)."""
        return {
            "featureName": self.feature_name,
            "featureVersion": self.feature_version,
            "featureCount": self.count,
        }


@dataclass(frozen=True)
class Reservation:
    """All entries reserved for one host id inside a reservation group."""

    host_id: HostId
    entries: tuple[ReservationEntry, ...]
    id: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reservation:
        host = data.get("hostId") or data.get("hostid") or {}
        entries = data.get("reservationEntries") or []
        return cls(
            host_id=HostId.from_json(host),
            entries=tuple(ReservationEntry.from_json(e) for e in entries),
            id=_as_id(data.get("id")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "hostId": self.host_id.to_json(),
            "reservationEntries": [e.to_json() for e in self.entries],
        }


@dataclass(frozen=True)
class ReservationGroup:
    """A named reservation group (GID) holding reservations (one per host id)."""

    id: int | None
    name: str
    reservations: tuple[Reservation, ...] = ()
    creation_date: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReservationGroup:
        reservations = data.get("reservations") or []
        return cls(
            id=_as_id(data.get("id")),
            name=str(data.get("name", "")),
            reservations=tuple(Reservation.from_json(r) for r in reservations),
            creation_date=_as_str(data.get("creationDate")),
        )

    def to_json(self) -> dict[str, Any]:
        """Body for POST /reservationgroups."""
        return {"name": self.name, "reservations": [r.to_json() for r in self.reservations]}


def is_permanent(expiry: str | None) -> bool:
    return expiry is not None and expiry.strip().lower() == PERMANENT


def _expiry_date(expiry: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(expiry.strip()[:10])
    except ValueError:
        return None


def earliest_expiry(expiries: Iterable[str | None]) -> str | None:
    """Earliest dated expiry; "permanent" when every known expiry is permanent; else None."""
    dated: list[str] = []
    any_permanent = False
    for expiry in expiries:
        if expiry is None or not expiry.strip():
            continue
        if is_permanent(expiry):
            any_permanent = True
        else:
            dated.append(expiry)
    if dated:
        parsed = [(d, e) for e in dated if (d := _expiry_date(e)) is not None]
        return min(parsed)[1] if parsed else min(dated)
    return PERMANENT if any_permanent else None


SliceFigures = tuple[str, str, int, int, int, bool, bool, bool, str | None]


def sum_feature_slices(slices: Iterable[FeatureSlice]) -> list[FeatureTotal]:
    """Group slices by (name, version) and sum counts; non-numeric counts contribute 0."""
    return _sum_figures(
        (s.name, s.version, s.count or 0, s.used, s.reserved, s.concurrent, s.uncounted)
        + (s.metered, s.expiry)
        for s in slices
    )


def sum_raw_feature_slices(raw_slices: Iterable[Any]) -> list[FeatureTotal]:
    """sum_feature_slices straight from GET /features JSON, without building FeatureSlice."""
    return _sum_figures(_raw_slice_figures(raw_slices))


def _raw_slice_figures(raw_slices: Iterable[Any]) -> Iterator[SliceFigures]:
    """The values FeatureSlice.from_json reads, for each JSON object of the list."""
    for row in raw_slices:
        if not isinstance(row, dict):
            continue
        expiry = row.get("expiry")
        yield (
            str(row.get("featureName", "")),
            str(row.get("featureVersion", "")),
            int_or_none(row.get("featureCount")) or 0,
            int_or_none(row.get("used")) or 0,
            int_or_none(row.get("reserved")) or 0,
            _fast_bool(row.get("concurrent", False)),
            _fast_bool(row.get("uncounted", False)),
            _fast_bool(row.get("metered", False)),
            None if expiry is None else str(expiry),
        )


def _fast_bool(value: Any) -> bool:
    return value if type(value) is bool else _as_bool(value)


def _sum_figures(figures: Iterable[SliceFigures]) -> list[FeatureTotal]:
    sums: dict[tuple[str, str], list[Any]] = {}
    for name, version, count, used, reserved, concurrent, uncounted, metered, expiry in figures:
        acc = sums.get((name, version))
        if acc is None:
            sums[(name, version)] = [count, used, reserved, concurrent, uncounted]
            sums[(name, version)] += [metered, [expiry]]
            continue
        acc[0] += count
        acc[1] += used
        acc[2] += reserved
        acc[3] = acc[3] or concurrent
        acc[4] = acc[4] or uncounted
        acc[5] = acc[5] or metered
        acc[6].append(expiry)
    return [
        FeatureTotal(
            name=name,
            version=version,
            total=acc[0],
            used=acc[1],
            reserved=acc[2],
            concurrent=acc[3],
            uncounted=acc[4],
            metered=acc[5],
            expiry=earliest_expiry(acc[6]),
            slices=len(acc[6]),
        )
        for (name, version), acc in sorted(sums.items())
    ]


def int_or_none(value: Any) -> int | None:
    """parse_count with a fast path for the ints servers normally send."""
    return value if type(value) is int else parse_count(value)
