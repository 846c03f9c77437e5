"""Fixture files: reading them, resolving relative dates and turning feature rows into slices.

Fixture JSON format (every key optional)::

    {
      "instanceId": "LLSEAST00001",            # accepted in URLs in place of "~"
      "serverHostIds": [{"type": "ETHERNET", "value": "0050569A0001"}],
      "modelDefinition": false,                 # true: named pools loaded, reservation writes 409
      "features": [
        {"featureName": "cad_solver", "featureVersion": "2024.1", "featureCount": 10,
         "expiry": "permanent" | "YYYY-MM-DD" | "+20d" | "-3d" | "+2w" | "+1y" | "today",
         "starts": "-30d", "issued": "-30d",    # same date forms; absent = no restriction
         "vendor": "acme", "featureId": "FID-...",
         "concurrent": true, "uncounted": false, "metered": false,
         "type": "CONCURRENT" | "METERED" | "UNCOUNTED",   # derived from the flags if absent
         "...": "any other field is copied verbatim into the feature rows"}
      ],
      "reservationGroups": [ <body of POST /reservationgroups>, ... ],
      "checkouts": [{"hostid": {"type": "ETHERNET", "value": "..."}, "featureName": "...",
                     "featureVersion": "...", "count": 2, "hostName": "ws-01", "user": "joe"}],
      "users": [{"user": "viewer", "password": "pw", "roles": "ROLE_READ"}]
    }

The same name+version listed several times gives several slices. A non-numeric `featureCount`
is served verbatim (to exercise client parsing) and counts as 0. Relative dates resolve
against the day the fixture is loaded. The admin user always exists with every role.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlm.flexnet.emulator.common import iso_utc
from vlm.flexnet.emulator.features import PERMANENT, Slice

DEFAULT_INSTANCE_ID = "EMULATOR0001"

FixtureSource = dict[str, Any] | str | Path | None

_RELATIVE_DATE = re.compile(r"^([+-])(\d+)([dwy])$")
_UNIT_DAYS = {"d": 1, "w": 7, "y": 365}
_KNOWN_FEATURE_FIELDS = {
    "featureName", "featureVersion", "featureCount", "metered", "uncounted",
    "concurrent", "type", "expiry", "starts", "issued", "featureId", "vendor",
}  # fmt: skip


def read_fixture(source: FixtureSource) -> dict[str, Any]:
    """A fixture as a dict: given directly, or read from a JSON file; None means empty."""
    if source is None:
        return {}
    if isinstance(source, dict):
        return source
    data = json.loads(Path(source).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"fixture {source} must be a JSON object")
    return data


def resolve_date(value: Any, today: dt.date) -> str | None:
    """Turn "+20d", "-1w", "+1y" or "today" into YYYY-MM-DD; other strings pass unchanged."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() == "today":
        return today.isoformat()
    match = _RELATIVE_DATE.match(text.lower())
    if not match:
        return text
    sign, amount, unit = match.groups()
    days = int(amount) * _UNIT_DAYS[unit] * (-1 if sign == "-" else 1)
    return (today + dt.timedelta(days=days)).isoformat()


def server_host_ids(fixture: dict[str, Any]) -> list[Any]:
    """The fixture's `serverHostIds`, or the default single Ethernet address."""
    host_ids = list(fixture.get("serverHostIds") or [])
    return host_ids or [{"type": "ETHERNET", "value": "0050569A0001"}]


def slice_from_fixture(
    raw: dict[str, Any], sid: int, today: dt.date, clock: Callable[[], float]
) -> Slice:
    """One fixture feature row as slice `sid`, received now; relative dates resolve to `today`."""
    metered = bool(raw.get("metered", False))
    uncounted = bool(raw.get("uncounted", False))
    concurrent = bool(raw.get("concurrent", not metered))
    count_raw = raw.get("featureCount", 0)
    count = _whole_number(count_raw)
    kind = "METERED" if metered else "UNCOUNTED" if uncounted else "CONCURRENT"
    return Slice(
        id=sid,
        name=str(raw["featureName"]),
        version=str(raw.get("featureVersion", "1.0")),
        count_raw=count_raw,
        count=0 if uncounted else count,
        concurrent=concurrent,
        uncounted=uncounted,
        metered=metered,
        type=str(raw.get("type") or kind),
        expiry=resolve_date(raw.get("expiry"), today) or PERMANENT,
        starts=resolve_date(raw.get("starts"), today),
        issued=resolve_date(raw.get("issued", raw.get("starts")), today),
        feature_id=str(raw.get("featureId") or f"FID-{sid:06d}"),
        vendor=str(raw.get("vendor", "demo")),
        received_time=iso_utc(clock()),
        extra={k: v for k, v in raw.items() if k not in _KNOWN_FEATURE_FIELDS},
    )


def _whole_number(value: Any) -> int:
    """An int count from an int or a digit string; anything else counts as 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0
