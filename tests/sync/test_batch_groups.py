"""Batch groups: many new hosts of one server created with one request, then every later
change to one of those hosts (count edit, removal, drift, a lost answer) made on that host's
reservation alone, over loopback HTTP to the emulator. The other hosts of the batch and
everyone else's groups never change."""

from __future__ import annotations

import re

import pytest

from tests.faults.conftest import create_foreign_group, foreign_snapshot
from tests.sync.conftest import (
    PREFIX,
    add_pool,
    add_synced_server,
    allocate_many,
    by_host,
    control,
    desired_state,
    emulator_groups,
    feature_id,
    new_client,
    remove,
    server_state,
    set_count,
    states,
)
from vlm.context import ServiceContext
from vlm.domain import is_batch_group, reservation_group_name
from vlm.flexnet import FlexNetClient, ReservationEntry, TransientError
from vlm.flexnet.emulator.server import RunningEmulator
from vlm.store.reservations import MIRROR_COLUMNS
from vlm.sync import pull_inventory, reconcile_server
from vlm.sync.batch import BATCH_MIN_HOSTS
from vlm.sync.plan import plan_unsettled

HOSTS = [f"0050569B{i:04X}" for i in range(BATCH_MIN_HOSTS + 4)]


@pytest.fixture
def server(ctx: ServiceContext, emulator: RunningEmulator) -> int:
    return add_synced_server(ctx, emulator.url)


@pytest.fixture
def cad(ctx: ServiceContext, server: int) -> int:
    return feature_id(ctx, server, "cad")


@pytest.fixture
def pool(ctx: ServiceContext, server: int, cad: int) -> int:
    return add_pool(ctx, {cad: 40, feature_id(ctx, server, "viz"): 5})


@pytest.fixture
def foreign(emulator: RunningEmulator) -> dict:
    with FlexNetClient(emulator.url, username="admin", password="admin", timeout=5) as api:
        create_foreign_group(api, "team-x", "xavier", {"cad": 1, "viz": 1})
    return foreign_snapshot(emulator)


def batch_names(emu: RunningEmulator) -> list[str]:
    return [g["name"] for g in emulator_groups(emu) if is_batch_group(PREFIX, g["name"])]


def mirror_hosts(ctx: ServiceContext, server: int) -> dict[tuple[str, str], dict]:
    """What the mirror remembers per host of VLM's groups: (feature, version) -> count."""
    rows = ctx.db.query(
        "SELECT host_type, host_id, feature_name, feature_version, count "
        "FROM reservation_mirror WHERE server_id = ? AND owned AND feature_name <> ''",
        [server],
    )
    found: dict[tuple[str, str], dict] = {}
    for host_type, host_id, name, version, count in rows:
        found.setdefault((host_type, host_id), {})[(name, version)] = int(count)
    return found


def assert_converged(ctx: ServiceContext, emu: RunningEmulator, server: int) -> None:
    assert by_host(server_state(emu)) == by_host(desired_state(ctx, server))
    assert mirror_hosts(ctx, server) == by_host(desired_state(ctx, server))


def _placed(ctx: ServiceContext, emu: RunningEmulator, server: int, pool: int, cad: int) -> list:
    ids = allocate_many(ctx, pool, cad, HOSTS)
    report = reconcile_server(ctx, server, read_first=False)
    assert report.applied == len(HOSTS) and report.operations == 1
    assert len(batch_names(emu)) == 1
    return ids


def test_new_hosts_go_in_one_batch_group_and_a_later_pass_has_nothing_to_do(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, cad: int, foreign: dict
) -> None:
    _placed(ctx, emulator, server, pool, cad)

    assert set(server_state(emulator)) == set(batch_names(emulator))
    assert_converged(ctx, emulator, server)
    assert reconcile_server(ctx, server).operations == 0
    assert reconcile_server(ctx, server, read_first=False, force=True).operations == 0
    assert states(ctx) == {"applied": len(HOSTS)}
    assert foreign_snapshot(emulator) == foreign


def test_fewer_new_hosts_than_a_batch_get_a_group_each_named_after_the_host(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, cad: int
) -> None:
    hosts = HOSTS[: BATCH_MIN_HOSTS - 1]
    allocate_many(ctx, pool, cad, hosts)

    report = reconcile_server(ctx, server, read_first=False)

    assert report.operations == len(hosts)
    assert set(server_state(emulator)) == {
        reservation_group_name(PREFIX, "ETHERNET", h) for h in hosts
    }


@pytest.mark.parametrize("read_first", [True, False])
def test_edits_and_removals_touch_only_that_hosts_reservation(
    ctx: ServiceContext,
    emulator: RunningEmulator,
    server: int,
    pool: int,
    cad: int,
    foreign: dict,
    read_first: bool,
) -> None:
    ids = _placed(ctx, emulator, server, pool, cad)
    before = {g["name"]: g for g in emulator_groups(emulator)}
    set_count(ctx, ids[0], 3)
    remove(ctx, ids[1])

    report = reconcile_server(ctx, server, read_first=read_first)

    assert report.failed == 0 and report.transient == 0
    assert_converged(ctx, emulator, server)
    (name,) = batch_names(emulator)
    after = {r["hostId"]["value"]: r for r in _group(emulator, name)["reservations"]}
    kept = {r["hostId"]["value"]: r for r in before[name]["reservations"]}
    assert HOSTS[1] not in after
    for host in HOSTS[2:]:
        assert after[host] == kept[host]
    assert after[HOSTS[0]]["id"] == kept[HOSTS[0]]["id"]
    assert [e["featureCount"] for e in after[HOSTS[0]]["reservationEntries"]] == [3]
    assert reconcile_server(ctx, server).operations == 0
    assert foreign_snapshot(emulator) == foreign


def test_a_batch_emptied_by_removals_is_deleted_after_a_read_shows_it_empty(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, cad: int, foreign: dict
) -> None:
    ids = _placed(ctx, emulator, server, pool, cad)
    for alloc_id in ids:
        remove(ctx, alloc_id)

    reconcile_server(ctx, server)
    reconcile_server(ctx, server)

    assert batch_names(emulator) == []
    assert server_state(emulator) == {}
    assert states(ctx) == {}
    assert foreign_snapshot(emulator) == foreign


def test_a_reservation_deleted_outside_vlm_is_placed_again_in_a_group_of_its_own(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, cad: int
) -> None:
    _placed(ctx, emulator, server, pool, cad)
    (name,) = batch_names(emulator)
    group = _group(emulator, name)
    gone = group["reservations"][0]
    with FlexNetClient(emulator.url, username="admin", password="admin", timeout=5) as api:
        api.delete_reservation(group["id"], gone["id"])

    with new_client(ctx, server) as api:
        pull_inventory(ctx, server, api)
    assert states(ctx) == {"applied": len(HOSTS) - 1, "pending": 1}
    reconcile_server(ctx, server)

    host = gone["hostId"]["value"]
    assert reservation_group_name(PREFIX, "ETHERNET", host) in server_state(emulator)
    assert_converged(ctx, emulator, server)
    assert states(ctx) == {"applied": len(HOSTS)}


def test_a_batch_the_server_refuses_places_each_host_alone_and_fails_only_the_short_one(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, cad: int
) -> None:
    viz = feature_id(ctx, server, "viz")
    ids = allocate_many(ctx, pool, cad, HOSTS)
    short = allocate_many(ctx, pool, viz, HOSTS[:1], count=5)
    with FlexNetClient(emulator.url, username="admin", password="admin", timeout=5) as api:
        create_foreign_group(api, "team-y", "yann", {"viz": _free(emulator, "viz")})

    report = reconcile_server(ctx, server, read_first=False)

    assert report.failed == 1 and report.applied == len(ids)
    assert batch_names(emulator) == []
    held = by_host(server_state(emulator))
    assert held[("ETHERNET", HOSTS[0])] == {("cad", "1.0"): 1}
    assert states(ctx) == {"applied": len(ids), "failed": len(short)}


def _free(emu: RunningEmulator, feature: str) -> int:
    """Unreserved count of a feature on the emulator now."""
    with FlexNetClient(emu.url, username="admin", password="admin", timeout=5) as api:
        (total,) = [t for t in api.feature_totals() if t.name == feature]
    return total.total - total.reserved


def _group(emu: RunningEmulator, name: str) -> dict:
    (group,) = [g for g in emulator_groups(emu) if g["name"] == name]
    return group


@pytest.mark.parametrize("read_first", [True, False])
def test_a_lost_answer_to_the_batch_create_is_taken_from_a_read_without_duplicates(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, cad: int, read_first
) -> None:
    allocate_many(ctx, pool, cad, HOSTS)
    control(emulator, "POST", "faults", {"lose_write_responses": 1})

    first = reconcile_server(ctx, server, read_first=read_first)

    assert sum(emulator.state.lost_response_counts.values()) == 1
    assert first.failed == 0 and first.applied == len(HOSTS)
    assert len(batch_names(emulator)) == 1
    assert_converged(ctx, emulator, server)
    assert reconcile_server(ctx, server).operations == 0


class ReadsByNameFail(FlexNetClient):
    """Every read of a group by name fails as if the server were unreachable."""

    def __init__(self, emu: RunningEmulator) -> None:
        super().__init__(emu.url, username="admin", password="admin", timeout=5)

    def reservation_groups(self, name: str | None = None) -> list:
        if name is not None:
            raise TransientError("connection reset")
        return super().reservation_groups(name)


def test_a_batch_create_retried_after_its_answer_and_read_were_lost_takes_its_own_group(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, cad: int
) -> None:
    allocate_many(ctx, pool, cad, HOSTS)
    control(emulator, "POST", "faults", {"lose_write_responses": 1})
    with ReadsByNameFail(emulator) as api:
        first = reconcile_server(ctx, server, api, read_first=False)
    assert first.applied == 0 and first.failed == 0 and first.transient == len(HOSTS)
    assert len(batch_names(emulator)) == 1

    second = reconcile_server(ctx, server, read_first=False, force=True)

    assert second.applied == len(HOSTS) and second.failed == 0
    assert len(batch_names(emulator)) == 1
    assert_converged(ctx, emulator, server)


def test_removing_every_host_of_a_batch_reads_the_batch_once_and_deletes_each_reservation(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, cad: int, foreign: dict
) -> None:
    ids = _placed(ctx, emulator, server, pool, cad)
    for alloc_id in ids:
        remove(ctx, alloc_id)
    counts = emulator.state.request_counts
    reads, deletes = counts["GET /api/1.0/reservationgroups"], _reservation_deletes(emulator)

    report = reconcile_server(ctx, server, read_first=False)

    assert report.removed == len(HOSTS) and report.operations == len(HOSTS)
    assert counts["GET /api/1.0/reservationgroups"] == reads + 1
    assert _reservation_deletes(emulator) == deletes + len(HOSTS)
    assert by_host(server_state(emulator)) == {}
    assert foreign_snapshot(emulator) == foreign


def _reservation_deletes(emu: RunningEmulator) -> int:
    pattern = re.compile(r"DELETE /api/1\.0/reservationgroups/\d+/reservations/\d+")
    return sum(n for path, n in emu.state.request_counts.items() if pattern.fullmatch(path))


def test_hosts_held_in_a_batch_settle_and_a_change_outside_vlm_unsettles_only_that_host(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, cad: int
) -> None:
    _placed(ctx, emulator, server, pool, cad)
    plans, settled = plan_unsettled(ctx, server, force=True)
    assert (plans, settled) == ([], len(HOSTS))

    (name,) = batch_names(emulator)
    group = _group(emulator, name)
    changed = group["reservations"][3]
    entry = changed["reservationEntries"][0]
    with FlexNetClient(emulator.url, username="admin", password="admin", timeout=5) as api:
        api.delete_entry(group["id"], changed["id"], entry["id"])
        api.add_entries(group["id"], changed["id"], [ReservationEntry("cad", "1.0", 2)])
    with new_client(ctx, server) as api:
        pull_inventory(ctx, server, api)

    plans, settled = plan_unsettled(ctx, server, force=True)
    assert [(p.host_id, p.batch_name) for p in plans] == [(changed["hostId"]["value"], name)]
    assert settled == len(HOSTS) - 1
    report = reconcile_server(ctx, server)
    assert report.operations == 2 and report.failed == 0
    assert_converged(ctx, emulator, server)
    assert plan_unsettled(ctx, server, force=True) == ([], len(HOSTS))


def test_a_host_held_by_its_own_group_and_a_batch_keeps_its_own_and_the_batch_one_goes(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, cad: int
) -> None:
    """The mirror (not the emulator, which refuses a host twice) says a host's own group and
    a batch both hold it: its own group settles it, and the batch's reservation gets a plan of
    its own that wants nothing (it is deleted)."""
    _placed(ctx, emulator, server, pool, cad)
    (name,) = batch_names(emulator)
    host = HOSTS[0]
    own = reservation_group_name(PREFIX, "ETHERNET", host)
    extra = [(server, 999, own, True, 998, "ETHERNET", host, 997, "cad", "1.0", 1, "ACTIVE")]
    ctx.db.write(lambda cur: _insert_mirror_rows(cur, extra))

    plans, settled = plan_unsettled(ctx, server, force=True)

    assert settled == len(HOSTS)
    (plan,) = plans
    assert (plan.group_name, plan.batch_name, plan.host_id) == (own, name, host)
    assert not plan.wanted and plan.actual is not None and plan.actual.name == name


def _insert_mirror_rows(cur, rows: list[tuple]) -> None:
    cur.executemany(
        f"INSERT INTO reservation_mirror ({', '.join(MIRROR_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(MIRROR_COLUMNS))})",
        rows,
    )


def test_after_an_uncertain_batch_the_next_pushed_pass_reads_first_and_finds_it(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, cad: int
) -> None:
    """The batch was made, but neither its answer nor a read came back. New hosts are added
    before the next pass, a pass pushed by their save (no read asked for): it reads every group
    first, takes the batch that was made, and sends only the new hosts."""
    allocate_many(ctx, pool, cad, HOSTS)
    control(emulator, "POST", "faults", {"lose_write_responses": 1})
    with ReadsByNameFail(emulator) as api:
        first = reconcile_server(ctx, server, api, read_first=False)
    assert first.transient == len(HOSTS) and len(batch_names(emulator)) == 1
    more = [f"0050569C{i:04X}" for i in range(3)]
    allocate_many(ctx, pool, cad, more)

    second = reconcile_server(ctx, server, read_first=False, force=True)

    assert second.failed == 0 and second.applied == len(HOSTS) + len(more)
    assert second.operations == len(more)
    assert_converged(ctx, emulator, server)
    third = reconcile_server(ctx, server, read_first=False)
    assert third.operations == 0 and third.applied == 0
