"""Who a license server says is using what: the (host, feature) pairs of its served clients.

GET /clients lists each client with its host id and, on the servers we know, the features it
holds (`features`: featureName, featureVersion, count). GET /features/{id}/clients answers the
same per feature slice (`useCount` and the nested `client`). Host ids come as
`{hostidType, hostidValue}` (client records) or `{type, value}` (the reservation spelling).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from vlm.flexnet.models import parse_count

# (host type upper-cased, host id value, feature name, feature version)
Sighting = tuple[str, str, str, str]


def client_host(row: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (type, value) a client row is served under, or None when it names none."""
    for key in ("hostid", "hostId", "requestHostid"):
        host = row.get(key)
        if isinstance(host, Mapping):
            kind = host.get("hostidType", host.get("type"))
            value = host.get("hostidValue", host.get("value"))
            if kind not in (None, "") and value not in (None, ""):
                return str(kind).upper(), str(value)
    return None


def lists_features(rows: Iterable[Any]) -> bool:
    """Whether every client row of GET /clients lists the features it holds."""
    return all(isinstance(row, Mapping) and isinstance(row.get("features"), list) for row in rows)


def sightings_of_clients(rows: Iterable[Any]) -> set[Sighting]:
    """The pairs GET /clients shows in use: a listed feature with a count above zero."""
    seen: set[Sighting] = set()
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        host = client_host(row)
        if host is None:
            continue
        for feature in row.get("features") or []:
            if not isinstance(feature, Mapping) or (parse_count(feature.get("count")) or 0) <= 0:
                continue
            name = feature.get("featureName")
            if name in (None, ""):
                continue
            seen.add((*host, str(name), str(feature.get("featureVersion", ""))))
    return seen


def sightings_of_feature(name: str, version: str, rows: Iterable[Any]) -> set[Sighting]:
    """The pairs GET /features/{id}/clients shows in use for one feature slice."""
    seen: set[Sighting] = set()
    for row in rows:
        if not isinstance(row, Mapping) or (parse_count(row.get("useCount")) or 0) <= 0:
            continue
        client = row.get("client")
        host = client_host(client) if isinstance(client, Mapping) else None
        if host is not None:
            seen.add((*host, name, version))
    return seen
