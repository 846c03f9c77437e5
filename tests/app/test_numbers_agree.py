"""Numbers agree everywhere (issue #8 item 4), on the demo data.

The Dashboard's "Licenses (total)" and "In use" equal the Physical LMs page's totals and its
CSV, all counting counted concurrent licenses only; metered and uncounted features show under
their own labels on both pages, never inside those totals; and the success message after
creating a VLM counts the features of the list it describes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_page, open_section, service_context
from tests.app.test_admin_pages import record_downloads
from tests.sync.conftest import feature
from vlm.demo import EMULATOR_ADMIN_PASSWORD
from vlm.domain import SYSTEM_ACTOR
from vlm.flexnet.emulator.server import RunningEmulator, start_emulator
from vlm.services import reports, servers, vlms
from vlm.services.servers import ServerInput
from vlm.store.figures import COUNTED, METERED, UNCOUNTED
from vlm.sync import pull_inventory
from vlm.ui.license_kinds import KIND_COLUMNS


def metric(at: AppTest, label: str) -> int:
    value = next(m.value for m in at.metric if m.label == label)
    return int(str(value).replace(",", ""))


def server_list(at: AppTest) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "metered_features" in d.value.columns)


def all_server_features() -> pd.DataFrame:
    return servers.server_features(service_context(), SYSTEM_ACTOR)


@pytest.mark.parametrize("username", ["admin", "ana"])
def test_dashboard_licenses_total_is_the_physical_lms_total(app, monkeypatch, username):
    downloads = record_downloads(monkeypatch)
    at = app(username)
    total, used = metric(at, "Licenses (total)"), metric(at, "In use")

    features = all_server_features()
    counted = features[features["license_kind"] == COUNTED]
    assert (total, used) == (int(counted["total"].sum()), int(counted["used"].sum()))
    assert total < int(features["total"].sum()), "the demo's metered units must be left out"

    at = open_page(app("admin"), "servers")
    shown = server_list(at)
    assert (int(shown["total"].sum()), int(shown["used"].sum())) == (total, used)
    exported = pd.read_csv(io.BytesIO(downloads["license servers"]()))
    exported_total, exported_used = exported["Total (counted)"], exported["Used (counted)"]
    assert (int(exported_total.sum()), int(exported_used.sum())) == (total, used)


def test_metered_and_uncounted_features_show_under_their_own_labels(app):
    kinds = reports.license_kinds(service_context(), SYSTEM_ACTOR).set_index("license_kind")
    metered, uncounted = kinds.loc[METERED], kinds.loc[UNCOUNTED]
    assert metered["features"] == 3 and uncounted["features"] == 3  # one of each per server

    at = app("admin")
    [note] = [c.value for c in at.caption if "Shown apart" in c.value]
    assert f"**Metered features:** 3 ({metered['total']:,} units, {metered['used']:,} used)" in note
    assert f"**Uncounted features:** 3 ({uncounted['used']:,} in use)" in note

    at = open_page(at, "servers")
    listed = server_list(at).set_index("name")
    per_server = {"cls-cloud": 1, "lls-east": 1, "lls-west": 1, "lls-lab": 0}  # lab: never read
    assert listed["metered_features"].to_dict() == per_server
    assert listed["uncounted_features"].to_dict() == per_server

    east = int(
        servers.list_servers(service_context(), SYSTEM_ACTOR).set_index("name").at["lls-east", "id"]
    )
    at.selectbox(key="server_selected").set_value(east)
    at.run()
    titles = [m.value for m in at.markdown]
    assert "**Metered features** (1)" in titles and "**Uncounted features** (1)" in titles
    tables = {tuple(d.value.columns): d.value for d in at.dataframe}
    counted_table = next(t for t in tables.values() if "poolable" in t.columns)
    assert not {"hpc_tokens", "model_viewer"} & set(counted_table["feature_name"])
    metered_table = tables[tuple(KIND_COLUMNS[METERED])]
    uncounted_table = tables[tuple(KIND_COLUMNS[UNCOUNTED])]
    assert metered_table["feature_name"].tolist() == ["hpc_tokens"]
    assert uncounted_table["feature_name"].tolist() == ["model_viewer"]


@pytest.fixture
def twin_of_cloud() -> Iterator[RunningEmulator]:
    """A fourth server holding two features the demo's cls-cloud also has and one of its own."""
    fixture = {
        "instanceId": "CLOUDTWIN001",
        "features": [
            feature("cad_modeler", 5, version="2024.1"),
            feature("fea_solver", 3, version="2024.1"),
            feature("twin_only", 2),
        ],
    }
    with start_emulator(fixture, admin_password=EMULATOR_ADMIN_PASSWORD) as emulator:
        yield emulator


def test_vlm_created_message_counts_the_features_of_its_list(app, twin_of_cloud):
    ctx = service_context()
    data = ServerInput("cloud-twin", twin_of_cloud.url, username="admin", password="admin")
    assert pull_inventory(ctx, servers.add_server(ctx, SYSTEM_ACTOR, data)).ok

    at = open_section(open_page(app("admin"), "vlms"), "new_vlm_section")
    at.text_input(key="new_vlm_name").input("Cloud")
    at.multiselect(key="new_vlm_servers").select("cls-cloud").select("cloud-twin")
    at.run()
    picker = next(m for m in at.multiselect if m.key.startswith("new_vlm_features"))
    picked = len(picker.value)
    at.button(key="new_vlm_create").click()
    at.run()

    frame = vlms.list_vlms(ctx, SYSTEM_ACTOR).set_index("name")
    listed = vlms.vlm_features(ctx, SYSTEM_ACTOR, int(frame.at["Cloud", "id"]))
    [message] = [s.value for s in at.success if "created with" in s.value]
    count = int(re.search(r"created with (\d+) feature\(s\)", message).group(1))
    assert count == len(listed) == frame.at["Cloud", "features"]
    assert picked == count + 2, "cad_modeler and fea_solver come from both servers"
    assert all(f"{r.feature_name} {r.feature_version}" in message for r in listed.itertuples())

    at.selectbox(key="vlm_selected").set_value(int(frame.at["Cloud", "id"]))
    at.run()
    shown = next(
        d.value
        for d in at.dataframe
        if "servers" in d.value.columns and "expiry" in d.value.columns
    )
    assert len(shown) == count
