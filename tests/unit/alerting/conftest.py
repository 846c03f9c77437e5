"""This suite runs on every database backend. The estate: one server (cad 20, sim 10), a VLM,
bob's pool Design (cad 5) and carol's pool Sim (sim 2), the four people of tests.conftest."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import ADMIN, BACKENDS, MANAGER, OTHER_MANAGER, both_backends
from tests.unit.alerting.endpoints import smtp, webhook  # noqa: F401 - fixtures of this suite
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.context import ServiceContext
from vlm.services import pools, vlms

backend = pytest.fixture(params=BACKENDS)(both_backends)
CAD, SIM = ("cad", "1.0"), ("sim", "1.0")


@dataclass(frozen=True)
class Estate:
    server: int
    design: int
    sim: int


@pytest.fixture
def estate(ctx: ServiceContext) -> Estate:
    add_people(ctx)
    server = add_server(ctx, "east", {CAD: 20, SIM: 10})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "Engineering", feature_ids(ctx))
    design = pools.create_pool(ctx, ADMIN, vlm_id, "Design", MANAGER.username, {CAD: 5})
    sim = pools.create_pool(ctx, ADMIN, vlm_id, "Sim", OTHER_MANAGER.username, {SIM: 2})
    return Estate(server, design, sim)
