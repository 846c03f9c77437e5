"""Editing a pool: every field it changes, what the audit row records, and each refusal with the
field the admin's form shows it next to; a refused edit changes nothing."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ADMIN, MANAGER, OTHER_MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.domain import Conflict, NotFound, ValidationError
from vlm.services import audit, pools, users, vlms

CAD, SIM = ("cad", "1.0"), ("sim", "1.0")


@pytest.fixture
def estate(ctx) -> dict[str, int]:
    add_people(ctx)
    add_server(ctx, "east", {CAD: 20, SIM: 10})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "Engineering", feature_ids(ctx))
    design = pools.create_pool(
        ctx, ADMIN, vlm_id, "Design", MANAGER.username, {CAD: 5}, description="CAD seats"
    )
    sim = pools.create_pool(ctx, ADMIN, vlm_id, "Sim", OTHER_MANAGER.username, {SIM: 2})
    return {"design": design, "sim": sim}


def stored_pool(ctx, pool_id: int) -> tuple[str, str, str]:
    [row] = ctx.db.query("SELECT name, manager, description FROM pools WHERE id = ?", [pool_id])
    return tuple(row)


def last_update(ctx) -> tuple[dict, dict]:
    rows = audit.audit_log(ctx, ADMIN, action="pool.update")
    return json.loads(rows["before"].iloc[0]), json.loads(rows["after"].iloc[0])


def test_a_new_pool_has_one_audit_row_with_what_was_created(ctx, estate) -> None:
    [row] = (
        audit.audit_log(ctx, ADMIN, action="pool.create")
        .query(f"target_id == '{estate['design']}'")
        .to_dict("records")
    )
    vlm_id = ctx.db.scalar("SELECT vlm_id FROM pools WHERE id = ?", [estate["design"]])
    assert (row["actor"], row["target_type"], row["before"]) == (ADMIN.username, "pool", None)
    assert json.loads(row["after"]) == {
        "name": "Design",
        "vlm_id": vlm_id,
        "manager": MANAGER.username,
        "quantities": {"cad 1.0": 5},
    }


def test_each_field_changes_alone_and_the_audit_row_holds_before_and_after(ctx, estate) -> None:
    design = estate["design"]
    pools.update_pool(ctx, ADMIN, design, name="  Design studio ")
    assert stored_pool(ctx, design) == ("Design studio", "bob", "CAD seats")
    assert last_update(ctx) == (
        {
            "name": "Design",
            "manager": "bob",
            "description": "CAD seats",
            "quantities": {"cad 1.0": 5},
        },
        {
            "name": "Design studio",
            "manager": "bob",
            "description": "CAD seats",
            "quantities": {"cad 1.0": 5},
        },
    )
    pools.update_pool(ctx, ADMIN, design, manager=" Carol ")
    assert stored_pool(ctx, design) == ("Design studio", "carol", "CAD seats")
    pools.update_pool(ctx, ADMIN, design, description="  seats for\nthe studio  ")
    assert stored_pool(ctx, design) == ("Design studio", "carol", "seats for\nthe studio")
    before, after = last_update(ctx)
    assert before["description"] == "CAD seats"
    assert after["description"] == "seats for\nthe studio"
    assert before["manager"] == after["manager"] == "carol"
    pools.update_pool(ctx, ADMIN, design, quantities={CAD: 7})
    before, after = last_update(ctx)
    assert (before["quantities"], after["quantities"]) == ({"cad 1.0": 5}, {"cad 1.0": 7})
    assert before["name"] == after["name"] == "Design studio"


def test_an_edit_that_names_nothing_keeps_every_field(ctx, estate) -> None:
    pools.update_pool(ctx, ADMIN, estate["design"])
    assert stored_pool(ctx, estate["design"]) == ("Design", "bob", "CAD seats")


def refusal(ctx, estate, error: type, **change) -> tuple[str | None, str]:
    """Field and message of a refused edit, after checking that nothing was written."""
    before = ctx.db.query("SELECT * FROM pools ORDER BY id")
    audit_rows = len(audit.audit_log(ctx, ADMIN))
    pool_id = change.pop("pool_id", estate["design"])
    with pytest.raises(error) as refused:
        pools.update_pool(ctx, ADMIN, pool_id, **change)
    assert ctx.db.query("SELECT * FROM pools ORDER BY id") == before
    assert len(audit.audit_log(ctx, ADMIN)) == audit_rows
    return refused.value.field, str(refused.value)


def test_a_malformed_pool_id_is_refused_at_the_pool(ctx, estate) -> None:
    assert refusal(ctx, estate, ValidationError, pool_id="seven", name="x")[0] == "pool"
    assert refusal(ctx, estate, ValidationError, pool_id=0, name="x")[0] == "pool"


def test_an_unknown_pool_is_refused_by_its_id(ctx, estate) -> None:
    assert refusal(ctx, estate, NotFound, pool_id=999, name="x") == (
        "pool",
        "pool 999 does not exist",
    )


def test_a_name_another_pool_of_the_vlm_holds_is_refused_at_the_name(ctx, estate) -> None:
    assert refusal(ctx, estate, Conflict, name="Sim") == (
        "name",
        "this VLM has a pool named 'Sim' already",
    )


def test_keeping_the_pools_own_name_is_no_conflict(ctx, estate) -> None:
    pools.update_pool(ctx, ADMIN, estate["design"], name="Design", description="new")
    assert stored_pool(ctx, estate["design"]) == ("Design", "bob", "new")


def test_a_bad_name_is_refused_at_the_name_with_its_label(ctx, estate) -> None:
    field, message = refusal(ctx, estate, ValidationError, name="   ")
    assert field == "name" and message.startswith("pool name")


@pytest.mark.parametrize(
    ("manager", "error", "message"),
    [
        ("nobody", NotFound, "user 'nobody' does not exist"),
        ("dave", ValidationError, "user 'dave' is not a manager"),
        ("erin", ValidationError, "user 'erin' is disabled"),
    ],
)
def test_a_manager_who_cannot_hold_a_pool_is_refused_at_the_manager(
    ctx, estate, manager, error, message
) -> None:
    users.add_user(ctx, ADMIN, "erin", "manager", password="password-123")
    users.set_disabled(ctx, ADMIN, "erin", True)
    assert refusal(ctx, estate, error, manager=manager) == ("manager", message)


@pytest.mark.parametrize("manager", ["", "   "])
def test_an_empty_manager_is_refused_as_missing_on_edit_and_create(ctx, estate, manager) -> None:
    assert refusal(ctx, estate, ValidationError, manager=manager) == (
        "manager",
        "manager is empty",
    )
    vlm_id = ctx.db.scalar("SELECT vlm_id FROM pools WHERE id = ?", [estate["design"]])
    with pytest.raises(ValidationError) as refused:
        pools.create_pool(ctx, ADMIN, vlm_id, "Third", manager, {CAD: 1})
    assert (refused.value.field, str(refused.value)) == ("manager", "manager is empty")


def test_a_quantity_that_is_not_a_count_is_refused_naming_its_feature(ctx, estate) -> None:
    field, message = refusal(ctx, estate, ValidationError, quantities={CAD: -1})
    assert field == "quantity" and message.startswith("cad 1.0: ")


def test_a_malformed_manager_is_refused_at_the_manager(ctx, estate) -> None:
    field, message = refusal(ctx, estate, ValidationError, manager="bob\x00")
    assert field == "manager" and message.startswith("manager")
