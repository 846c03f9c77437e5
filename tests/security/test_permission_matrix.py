"""The permission matrix (issue #14 item 1; docs/architecture.md §3 rule 4, §8).

Every public service function that takes an actor has a row in matrix_cases.MATRIX, and each
(function, caller) pair is a test: an allowed call succeeds (a write really changes its rows and
audits under the caller's name; a read changes nothing and, for managers, shows only their own
pool), a refused one raises exactly PermissionDenied (DENY) or NotFound (HIDDEN) and leaves every
table of the database as it was, audit log included. A meta-test enumerates the service modules
so that a new function without a row (or a row without a function) fails the suite.

Each test gets its own copy of one seeded estate (built through the services once per module),
and one emulated license server answers the connection tests over real HTTP.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

import vlm.services
from tests.conftest import BACKENDS, base_tables, database_setting, every_row
from tests.security.matrix_cases import (
    ALLOW,
    CALLERS,
    DENY,
    HIDDEN,
    MATRIX,
    NO_GATE_OF_THEIR_OWN,
    NOT_ACTOR_SCOPED,
    Estate,
    EstateIds,
    build_estate,
)
from tests.sync.conftest import feature
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.domain import NotFound, PermissionDenied, VlmError
from vlm.flexnet.emulator.server import RunningEmulator, start_emulator
from vlm.secret_box import SecretBox
from vlm.store import Database, open_database

REFUSALS: dict[str, type[VlmError]] = {DENY: PermissionDenied, HIDDEN: NotFound}
Snapshot = dict[str, list[tuple[Any, ...]]]


def service_functions() -> dict[str, inspect.Signature]:
    """`module.function` -> signature of every public function defined in vlm/services/*.py."""
    found: dict[str, inspect.Signature] = {}
    for module_info in pkgutil.iter_modules(vlm.services.__path__):
        module = importlib.import_module(f"vlm.services.{module_info.name}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            own = function.__module__ == module.__name__
            if own and not name.startswith("_") and "__mutmut_" not in name:  # mutmut's copies
                found[f"{module_info.name}.{name}"] = inspect.signature(function)
    return found


def actor_scoped() -> set[str]:
    return {name for name, sig in service_functions().items() if "actor" in sig.parameters}


def matrix_functions() -> set[str]:
    """The functions the matrix rows call (a row key may carry a /variant suffix)."""
    return {key.split("/")[0] for key in MATRIX}


def test_every_actor_taking_service_function_has_a_matrix_row() -> None:
    missing = actor_scoped() - matrix_functions() - set(NO_GATE_OF_THEIR_OWN)
    assert not missing, f"service functions without a permission-matrix row: {sorted(missing)}"


def test_every_matrix_row_names_an_existing_actor_taking_function() -> None:
    stale = (matrix_functions() | set(NO_GATE_OF_THEIR_OWN)) - actor_scoped()
    assert not stale, f"matrix rows for functions that are gone or take no actor: {sorted(stale)}"


def test_every_function_without_an_actor_is_listed_with_a_reason() -> None:
    without_actor = set(service_functions()) - actor_scoped()
    assert without_actor == set(NOT_ACTOR_SCOPED), (
        f"unlisted: {sorted(without_actor - set(NOT_ACTOR_SCOPED))}, "
        f"listed but not a public function without an actor: "
        f"{sorted(set(NOT_ACTOR_SCOPED) - without_actor)}"
    )
    assert all(reason.strip() for reason in NOT_ACTOR_SCOPED.values())


def test_every_row_names_the_six_callers_and_only_known_outcomes() -> None:
    required = set(CALLERS) - {"demoted"}
    for key, case in MATRIX.items():
        assert required <= set(case.outcomes) <= set(CALLERS), key
        assert set(case.outcomes.values()) <= {ALLOW, DENY, HIDDEN}, key
        if case.writes:
            assert "demoted" in case.outcomes, f"{key}: a write must say what a demoted admin gets"


# -- the estate ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    settings: Settings
    ids: EstateIds
    rows: Snapshot  # every table of the seeded estate: each test's "before"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with start_emulator({"features": [feature("cad", 50)]}) as emu:
        yield emu


@pytest.fixture(scope="module", params=BACKENDS)
def matrix_backend(request) -> str:
    """The database engine of the module's estate (every backend the run tests)."""
    return request.param


@pytest.fixture(scope="module")
def template(
    request, tmp_path_factory, emulator: RunningEmulator, matrix_backend: str
) -> Iterator[Template]:
    """The estate, seeded once through the services into a database that tests copy."""
    key = SecretBox.generate_key()
    if matrix_backend == "postgres":
        target = request.getfixturevalue("postgres_server").fresh_database()
    else:
        target = str(tmp_path_factory.mktemp("matrix") / "estate.duckdb")
    settings = Settings(**database_setting(target), secret_key=key)
    ctx = ServiceContext(open_database(target), settings, SecretBox(key))
    try:
        ids = build_estate(ctx, emulator.url)
        rows = snapshot(ctx.db)
    finally:
        ctx.db.close()
    yield Template(settings, ids, rows)
    if matrix_backend == "postgres":
        request.getfixturevalue("postgres_server").drop(target)


@pytest.fixture
def estate(request, template: Template, tmp_path) -> Iterator[Estate]:
    """A fresh copy of the seeded estate for one test (a file copy, or a PostgreSQL template
    copy)."""
    if template.settings.db_url:
        server = request.getfixturevalue("postgres_server")
        settings = replace(template.settings, db_url=server.copy_of(template.settings.db_url))
        db: Any = open_database(settings.database)
    else:
        path = tmp_path / "vlm.duckdb"
        shutil.copyfile(template.settings.db_path, path)
        settings = replace(template.settings, db_path=str(path))
        db = Database(path)
    ctx = ServiceContext(db, settings, SecretBox(settings.secret_key))
    yield Estate(ctx, template.ids)
    ctx.db.close()
    if settings.db_url:
        request.getfixturevalue("postgres_server").drop(settings.db_url)


def snapshot(db: Database) -> Snapshot:
    """Every row of every table of the main schema, in a stable order."""
    return {name: every_row(db, name) for name in base_tables(db)}


def changed_tables(before: Snapshot, after: Snapshot) -> set[str]:
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}


def last_audit_id(db: Database) -> int:
    return int(db.scalar("SELECT COALESCE(MAX(id), 0) FROM audit_log"))


def audit_actors_since(db: Database, audit_id: int) -> list[str]:
    """Whom the audit rows written after audit_id name as the actor."""
    return [actor for (actor,) in db.query("SELECT actor FROM audit_log WHERE id > ?", [audit_id])]


# -- the matrix ----------------------------------------------------------------------------------

PAIRS = [(key, caller) for key, case in MATRIX.items() for caller in case.outcomes]


@pytest.mark.parametrize(("key", "caller"), PAIRS, ids=[f"{k}-{c}" for k, c in PAIRS])
def test_permission(template: Template, estate: Estate, key: str, caller: str) -> None:
    case = MATRIX[key]
    actor = CALLERS[caller]
    expected = case.outcomes[caller]
    before = template.rows  # the estate is a byte copy of the template
    audited_up_to = last_audit_id(estate.ctx.db)

    if expected != ALLOW:
        with pytest.raises(REFUSALS[expected]):
            case.call(estate, actor)
        assert changed_tables(before, snapshot(estate.ctx.db)) == set(), "a refusal wrote"
        return

    result = case.call(estate, actor)
    after = snapshot(estate.ctx.db)
    changed = changed_tables(before, after)
    if case.writes:
        assert changed - {"audit_log"}, f"{key} by {caller} was allowed but changed nothing"
        audited = audit_actors_since(estate.ctx.db, audited_up_to)
        assert audited and set(audited) == {actor.username}, audited
    else:
        assert changed == set(), f"a read wrote to {sorted(changed)}"
    if case.check is not None:
        case.check(estate, caller, result)


def test_each_test_starts_from_the_seeded_estate(template: Template, estate: Estate) -> None:
    assert snapshot(estate.ctx.db) == template.rows
    assert {t for t, rows in template.rows.items() if rows} >= {
        "users",
        "license_servers",
        "server_features",
        "vlms",
        "pools",
        "pool_portions",
        "allocations",
        "audit_log",
    }
