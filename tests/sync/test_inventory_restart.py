"""After VLM restarts, a pull keeps the stored mirror when the server's groups answer is the one
it was stored from (its digest, prefix and server instance are kept with it), and parses and
rewrites it in full otherwise."""

from __future__ import annotations

import dataclasses

import pytest

from tests.sync.conftest import (
    PREFIX,
    add_pool,
    add_server,
    allocate,
    control,
    feature,
    feature_id,
    fixture_group,
    new_client,
    set_feature_count,
)
from vlm.context import ServiceContext
from vlm.flexnet import client as client_module
from vlm.flexnet.emulator.server import start_emulator
from vlm.sync import inventory, pull_inventory, read_reservations
from vlm.sync.inventory import StoredInventories
from vlm.sync.reconciler import reconcile_server

MIRROR_SQL = (
    "SELECT group_name, owned, host_id, feature_name, count FROM reservation_mirror "
    "ORDER BY 1, 3, 4"
)
# A mark only a full rewrite of the mirror removes: the foreign group's entry reads 99.
MARK_SQL = "UPDATE reservation_mirror SET count = 99 WHERE group_name = 'ops-team'"
MARKED_SQL = "SELECT count(*) FROM reservation_mirror WHERE count = 99"
OTHERS_SQL = "SELECT reserved_by_others FROM server_features WHERE feature_name = 'cad'"
FIXTURE = {
    "features": [feature("cad", 20), feature("viz", 10)],
    "reservationGroups": [
        fixture_group("ops-team", "AAAAAAAAAAAA", {"cad": 3}),
        fixture_group(f"{PREFIX}ETHERNET-BBBBBBBBBBBB", "BBBBBBBBBBBB", {"viz": 2}),
    ],
}


@pytest.fixture
def emu():
    with start_emulator(FIXTURE) as running:
        yield running


def restarted(ctx: ServiceContext, **settings) -> ServiceContext:
    """The same database opened by a new VLM process: nothing of the last pull in memory."""
    changed = dataclasses.replace(ctx.settings, **settings) if settings else ctx.settings
    return ServiceContext(ctx.db, changed, ctx.secrets)


def pulled_and_marked(ctx: ServiceContext, url: str) -> int:
    server_id = add_server(ctx, url)
    first = pull_inventory(ctx, server_id)
    assert first.ok and (first.groups, first.owned_groups) == (2, 1)
    ctx.db.write(lambda cur: cur.execute(MARK_SQL))
    return server_id


def test_an_unchanged_answer_after_a_restart_keeps_the_stored_mirror(ctx, emu) -> None:
    server_id = pulled_and_marked(ctx, emu.url)
    later = restarted(ctx)

    again = pull_inventory(later, server_id)

    assert again.ok and again.observation is None
    assert ctx.db.scalar(MARKED_SQL) == 1, "the mirror was parsed and rewritten"
    assert (again.groups, again.owned_groups) == (2, 1)
    kept = later.owned(StoredInventories).last(server_id)
    assert kept.others == {("cad", "1.0"): 99} and kept.groups == 2 and kept.owned == 1
    set_feature_count(emu, "cad", 25)
    moved = pull_inventory(later, server_id)
    assert moved.snapshots_added == 1
    assert ctx.db.scalar(OTHERS_SQL) == 99, "the foreign count comes from the kept mirror"


def test_a_changed_answer_after_a_restart_rewrites_the_mirror(ctx, emu) -> None:
    server_id = pulled_and_marked(ctx, emu.url)
    with new_client(ctx, server_id) as client:
        (ops,) = client.reservation_groups(name="ops-team")
        client.delete_group(ops.id)

    again = pull_inventory(restarted(ctx), server_id)

    assert again.ok and (again.groups, again.owned_groups) == (1, 1)
    assert ctx.db.scalar(MARKED_SQL) == 0
    assert [row[0] for row in ctx.db.query(MIRROR_SQL)] == [f"{PREFIX}ETHERNET-BBBBBBBBBBBB"]
    assert ctx.db.scalar(OTHERS_SQL) == 0


def test_another_prefix_after_a_restart_rewrites_the_mirror(ctx, emu) -> None:
    server_id = pulled_and_marked(ctx, emu.url)

    again = pull_inventory(restarted(ctx, group_prefix="ops-"), server_id)

    assert again.ok and again.owned_groups == 1
    assert ctx.db.scalar(MARKED_SQL) == 0
    owned = {row[0]: row[1] for row in ctx.db.query(MIRROR_SQL)}
    assert owned == {"ops-team": True, f"{PREFIX}ETHERNET-BBBBBBBBBBBB": False}


def test_another_server_instance_after_a_restart_rewrites_the_mirror(ctx, emu) -> None:
    server_id = pulled_and_marked(ctx, emu.url)
    control(emu, "POST", "restart", {"new_instance_id": True, "keep_reservations": True})

    again = pull_inventory(restarted(ctx), server_id)

    assert again.ok and again.observation is not None
    assert "instance id changed" in again.observation.restarted
    assert ctx.db.scalar(MARKED_SQL) == 0


def test_the_reconcilers_writes_drop_the_kept_digest(ctx, emu) -> None:
    server_id = pulled_and_marked(ctx, emu.url)
    cad = feature_id(ctx, server_id, "cad")
    allocate(ctx, add_pool(ctx, {cad: 5}), cad, "CCCCCCCCCCCC", 2)
    digest = "SELECT mirror_digest FROM license_servers WHERE id = ?"
    assert ctx.db.scalar(digest, [server_id]) is not None

    with new_client(ctx, server_id) as client:
        report = reconcile_server(ctx, server_id, client, read_first=False)
    assert report.error is None and report.applied == 1
    assert ctx.db.scalar(digest, [server_id]) is None
    ctx.db.write(lambda cur: cur.execute(MARK_SQL))

    again = pull_inventory(restarted(ctx), server_id)

    assert again.ok and ctx.db.scalar(MARKED_SQL) == 0
    groups = {row[0] for row in ctx.db.query(MIRROR_SQL)}
    assert groups == {"ops-team", f"{PREFIX}ETHERNET-CCCCCCCCCCCC"}, "the server's groups now"
    assert ctx.db.scalar(digest, [server_id]) is not None


def test_the_reconcilers_read_after_a_restart_keeps_an_unchanged_mirror(ctx, emu) -> None:
    server_id = pulled_and_marked(ctx, emu.url)
    later = restarted(ctx)

    with new_client(ctx, server_id) as client:
        assert read_reservations(later, server_id, client) is None
    assert ctx.db.scalar(MARKED_SQL) == 1
    kept = later.owned(StoredInventories).last(server_id)
    assert kept is not None and kept.groups == 2 and kept.totals == []

    pulled = pull_inventory(later, server_id)
    assert pulled.ok and pulled.features == 2 and ctx.db.scalar(MARKED_SQL) == 1


def _reconciled(ctx: ServiceContext, url: str) -> int:
    """A server whose mirror the reconciler has just written (its answer's digest unknown)."""
    server_id = add_server(ctx, url)
    assert pull_inventory(ctx, server_id).ok
    cad = feature_id(ctx, server_id, "cad")
    allocate(ctx, add_pool(ctx, {cad: 5}), cad, "CCCCCCCCCCCC", 2)
    with new_client(ctx, server_id) as client:
        report = reconcile_server(ctx, server_id, client, read_first=False)
    assert report.error is None and report.applied == 1
    assert ctx.db.scalar(DIGEST_SQL, [server_id]) is None
    return server_id


DIGEST_SQL = "SELECT mirror_digest FROM license_servers WHERE id = ?"


def test_a_read_equal_to_what_the_reconciler_wrote_is_neither_judged_nor_rewritten(
    ctx, emu, monkeypatch
) -> None:
    server_id = _reconciled(ctx, emu.url)
    rewrites: list[int] = []
    monkeypatch.setattr(inventory, "replace_mirror", lambda cur, sid, rows: rewrites.append(sid))
    monkeypatch.setattr(inventory, "record_observation", lambda *args: rewrites.append(-1))

    again = pull_inventory(restarted(ctx), server_id)

    assert again.ok and again.observation is None and rewrites == []
    assert (again.groups, again.owned_groups) == (2, 1)
    assert ctx.db.scalar(DIGEST_SQL, [server_id]) is not None, "the answer's digest is kept"
    groups = {row[0] for row in ctx.db.query(MIRROR_SQL)}
    assert groups == {"ops-team", f"{PREFIX}ETHERNET-CCCCCCCCCCCC"}
    assert ctx.db.scalar(OTHERS_SQL) == 3


def test_an_equal_read_from_another_server_instance_is_judged(ctx, emu) -> None:
    server_id = _reconciled(ctx, emu.url)
    control(emu, "POST", "restart", {"new_instance_id": True, "keep_reservations": True})

    again = pull_inventory(restarted(ctx), server_id)

    assert again.ok and again.observation is not None
    assert "instance id changed" in (again.observation.restarted or "")


def test_a_read_that_differs_from_what_the_reconciler_wrote_is_judged(ctx, emu) -> None:
    server_id = _reconciled(ctx, emu.url)
    with new_client(ctx, server_id) as client:
        (ours,) = client.reservation_groups(name=f"{PREFIX}ETHERNET-CCCCCCCCCCCC")
        client.delete_group(ours.id)

    again = pull_inventory(restarted(ctx), server_id)

    assert again.ok and again.observation is not None and again.observation.missing == 1
    assert ctx.db.scalar("SELECT state FROM allocations") == "pending"


def test_an_answer_equal_to_what_the_reconciler_wrote_is_not_decoded_on_duckdb(
    ctx, emu, monkeypatch, backend
) -> None:
    """DuckDB compares the answer's bytes with the stored mirror by digest (no Python object per
    entry) and adopts the answer's fingerprint; PostgreSQL decodes it and compares row by row."""
    server_id = _reconciled(ctx, emu.url)
    decoded: list[int] = []
    real_decode = client_module.decode_inline_groups
    monkeypatch.setattr(
        client_module,
        "decode_inline_groups",
        lambda body: decoded.append(len(body)) or real_decode(body),
    )

    again = pull_inventory(restarted(ctx), server_id)

    assert again.ok and again.observation is None
    assert (again.groups, again.owned_groups) == (2, 1)
    assert (decoded == []) is (backend == "duckdb")
    assert ctx.db.scalar(DIGEST_SQL, [server_id]) is not None
    assert ctx.db.scalar(OTHERS_SQL) == 3
    later = restarted(ctx)
    decoded.clear()
    assert pull_inventory(later, server_id).observation is None
    assert decoded == [], "the adopted digest is kept: the next restart reads nothing"


def test_the_reconcilers_read_adopts_an_answer_equal_to_its_writes(ctx, emu) -> None:
    server_id = _reconciled(ctx, emu.url)

    with new_client(ctx, server_id) as client:
        assert read_reservations(restarted(ctx), server_id, client) is None

    assert ctx.db.scalar(DIGEST_SQL, [server_id]) is not None
    groups = {row[0] for row in ctx.db.query(MIRROR_SQL)}
    assert groups == {"ops-team", f"{PREFIX}ETHERNET-CCCCCCCCCCCC"}
