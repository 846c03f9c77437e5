"""Reservation groups to and from reservation_mirror rows (MIRROR_COLUMNS order).

A pull turns the server's answer into rows (doc_mirror_rows from the typed decode,
raw_mirror_rows straight from the JSON where that decode does not apply, mirror_rows from parsed
groups) and an Arrow table for the store; the reconciler turns the owned rows back
into groups (groups_from_mirror) to plan from, and its results into rows again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from vlm.flexnet import HostId, Reservation, ReservationEntry, ReservationGroup
from vlm.flexnet.group_answer import GroupDoc, GroupsAnswer
from vlm.flexnet.models import int_or_none
from vlm.store.frames import arrow_table
from vlm.store.reservations import MIRROR_TYPES


def mirror_rows(server_id: int, groups: Iterable[ReservationGroup], prefix: str) -> list[tuple]:
    """Mirror rows (MIRROR_COLUMNS order) of parsed groups; a group is owned when its name has
    the prefix. A reservation without entries, or a group without reservations, is kept as one
    placeholder row (empty feature name, count 0) so that its existence is remembered."""
    rows: list[tuple] = []
    for group in groups:
        head = (server_id, group.id, group.name, group.name.startswith(prefix))
        if not group.reservations:
            rows.append((*head, None, "", "", None, "", "", 0, None))
        for res in group.reservations:
            reservation = (*head, res.id, res.host_id.type, res.host_id.value)
            if not res.entries:
                rows.append((*reservation, None, "", "", 0, None))
            rows.extend(
                (*reservation, e.id, e.feature_name, e.feature_version, e.count, e.state)
                for e in res.entries
            )
    return rows


def raw_mirror_rows(
    server_id: int, raw_groups: Iterable[Mapping[str, Any]], prefix: str
) -> list[tuple]:
    """mirror_rows straight from GET /reservationgroups JSON, reading the values the model
    classes read without building them (one pass: this is the large part of a pull)."""
    rows: list[tuple] = []
    append = rows.append
    for group in raw_groups:
        name = str(group.get("name", ""))
        head = (server_id, int_or_none(group.get("id")), name, name.startswith(prefix))
        reservations = group.get("reservations") or []
        if not reservations:
            append((*head, None, "", "", None, "", "", 0, None))
        for res in reservations:
            host = res.get("hostId") or res.get("hostid") or {}
            kind = host.get("type", host.get("hostidType", ""))
            value = host.get("value", host.get("hostidValue", ""))
            reservation = (*head, int_or_none(res.get("id")), str(kind), str(value))
            entries = res.get("reservationEntries") or []
            if not entries:
                append((*reservation, None, "", "", 0, None))
            for entry in entries:
                state = entry.get("state")
                append(
                    (
                        *reservation,
                        int_or_none(entry.get("id")),
                        str(entry.get("featureName", "")),
                        str(entry.get("featureVersion", "")),
                        int_or_none(entry.get("featureCount")) or 0,
                        None if state is None else str(state),
                    )
                )
    return rows


def doc_mirror_rows(server_id: int, groups: Iterable[GroupDoc], prefix: str) -> list[tuple]:
    """raw_mirror_rows of an answer the typed fast path decoded (every group lists its
    reservations, each with its entries: see decode_inline_groups)."""
    rows: list[tuple] = []
    append = rows.append
    for group in groups:
        head = (server_id, group.id, group.name, group.name.startswith(prefix))
        for res in group.reservations or ():
            host = res.host()
            kind, value = ("", "") if host is None else (host.kind(), host.text())
            reservation = (*head, res.id, kind, value)
            entries = res.reservationEntries or ()
            if not entries:
                append((*reservation, None, "", "", 0, None))
            for e in entries:
                count = e.featureCount or 0
                append((*reservation, e.id, e.featureName, e.featureVersion, count, e.state))
    return rows


def answer_mirror_rows(server_id: int, answer: GroupsAnswer, prefix: str) -> list[tuple]:
    """Mirror rows of a groups answer, whichever path read it."""
    if answer.docs is not None:
        return doc_mirror_rows(server_id, answer.docs, prefix)
    return raw_mirror_rows(server_id, answer.raw or [], prefix)


def mirror_table(rows: list[tuple]) -> pa.Table:
    """Mirror rows as an Arrow table with the reservation_mirror column types."""
    return arrow_table(rows, MIRROR_TYPES)


def groups_mirror_table(
    server_id: int, groups: Iterable[ReservationGroup], prefix: str
) -> pa.Table:
    return mirror_table(mirror_rows(server_id, groups, prefix))


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def groups_from_mirror(rows: Iterable[tuple]) -> dict[str, ReservationGroup]:
    """Rebuild groups from mirror rows (MIRROR_COLUMNS order), skipping placeholder rows."""
    found: dict[str, tuple[int | None, dict[tuple, list[ReservationEntry]]]] = {}
    for _, gid, name, _, rid, host_type, host_id, eid, fname, fver, count, state in rows:
        _, reservations = found.setdefault(name, (_opt_int(gid), {}))
        if host_type == "" and host_id == "":
            continue
        entries = reservations.setdefault((_opt_int(rid), host_type, host_id), [])
        if fname != "":
            entries.append(ReservationEntry(fname, fver, int(count), _opt_int(eid), state))
    return {
        name: ReservationGroup(
            gid,
            name,
            tuple(
                Reservation(HostId(t, v), tuple(entries), rid)
                for (rid, t, v), entries in reservations.items()
            ),
        )
        for name, (gid, reservations) in found.items()
    }
