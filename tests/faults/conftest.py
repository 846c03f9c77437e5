"""Fixtures of the fault suite: those of the sync suite (on every backend), plus foreign teams'
groups."""

from __future__ import annotations

from typing import Any

from tests.sync.conftest import PREFIX, backend, ctx, emulator, emulator_groups  # noqa: F401
from vlm.flexnet import FlexNetClient, HostId, Reservation, ReservationEntry, ReservationGroup
from vlm.flexnet.emulator.server import RunningEmulator

ForeignSnapshot = dict[int, tuple[str, tuple]]


def foreign_snapshot(emu: RunningEmulator, prefix: str = PREFIX) -> ForeignSnapshot:
    """Every group not carrying VLM's prefix, down to entry ids, counts and states."""
    snapshot: ForeignSnapshot = {}
    for group in emulator_groups(emu):
        if group["name"].startswith(prefix):
            continue
        reservations = tuple(
            (
                res["id"],
                res["hostId"]["type"],
                res["hostId"]["value"],
                tuple(
                    (e["id"], e["featureName"], e["featureVersion"], e["featureCount"], e["state"])
                    for e in res["reservationEntries"]
                ),
            )
            for res in group["reservations"]
        )
        snapshot[group["id"]] = (group["name"], reservations)
    return snapshot


def create_foreign_group(
    api: FlexNetClient, name: str, host: str, entries: dict[str, int], host_type: str = "USER"
) -> ReservationGroup:
    """Another team creates a group on the server, outside VLM."""
    reservation = Reservation(
        HostId(host_type, host),
        tuple(ReservationEntry(f, "1.0", count) for f, count in entries.items()),
    )
    return api.create_reservation_group(ReservationGroup(None, name, (reservation,)))


def group_ids(emu: RunningEmulator) -> dict[str, int]:
    return {g["name"]: g["id"] for g in emulator_groups(emu)}


def restart(emu: RunningEmulator, **options: Any) -> None:
    """The license server restarts empty (or as the options say); ids start again at 1."""
    import httpx

    response = httpx.post(f"{emu.url}/_emulator/restart", json=options, timeout=10)
    response.raise_for_status()
