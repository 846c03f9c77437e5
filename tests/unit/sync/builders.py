"""Reservation groups as a license server answers them, built in a line (no server needed)."""

from __future__ import annotations

from vlm.flexnet import HostId, Reservation, ReservationEntry, ReservationGroup

CAD = ("cad", "1.0")
VIZ = ("viz", "1.0")
ANN = HostId("USER", "ann")
BEN = HostId("USER", "ben")


def entry(
    key: tuple[str, str], count: int, entry_id: int | None = None, state: str | None = None
) -> ReservationEntry:
    return ReservationEntry(key[0], key[1], count, entry_id, state)


def reservation(
    host: HostId, *entries: ReservationEntry, reservation_id: int | None = 1
) -> Reservation:
    return Reservation(host, tuple(entries), reservation_id)


def group(name: str, *reservations: Reservation, group_id: int | None = 7) -> ReservationGroup:
    return ReservationGroup(group_id, name, tuple(reservations))


def host_group(
    name: str, host: HostId, *entries: ReservationEntry, group_id: int | None = 7
) -> ReservationGroup:
    """A group shaped as VLM makes it: one reservation, for one host, with these entries."""
    return group(name, reservation(host, *entries), group_id=group_id)
