"""Issue #8 item 6: tables read like a finished product.

Readable column titles in tables, column pickers and the CSVs people download (machine names
only in the raw export), blank empty cells, times in the user's zone with the zone named,
progress bars and grid links on pool tables, the audit entry's before/after side by side,
destructive buttons set apart, and no sidebar on the sign-in page.
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_page, open_section, service_context
from tests.app.test_admin_pages import record_downloads
from vlm.domain import Actor, Role
from vlm.services import audit, pools, servers, users
from vlm.ui.audit_detail import DETAIL_COLUMNS
from vlm.ui.local_time import server_zone

ADMIN = Actor("admin", Role.ADMIN)
BROWSER_ZONE = "Pacific/Kiritimati"  # UTC+14: far from any server's zone
SNAKE = "_"
EMPTY_TEXTS = {"None", "nan", "NaN", "<NA>", "NaT"}


def column_titles(frame_element) -> dict[str, str]:
    """Column name -> the title the browser shows (from the element's column config)."""
    config = json.loads(frame_element.proto.columns or "{}")
    return {name: entry.get("label") or name for name, entry in config.items()}


def column_kinds(frame_element) -> dict[str, str | None]:
    config = json.loads(frame_element.proto.columns or "{}")
    return {name: (entry.get("type_config") or {}).get("type") for name, entry in config.items()}


def read_csv(data) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data()), dtype=str, keep_default_na=False)


def shown_tables(at: AppTest) -> list:
    return [d for d in at.dataframe if d.editing_mode == "read_only"]


def blocks_with_key(at: AppTest, fragment: str) -> list:
    """Every block (container) whose id carries this key fragment."""
    found, stack = [], [at._tree]
    while stack:
        node = stack.pop()
        if fragment in (getattr(node, "_block_id", "") or ""):
            found.append(node)
        stack.extend(getattr(node, "children", {}).values())
    return found


def buttons_in(block) -> list:
    out, stack = [], [block]
    while stack:
        node = stack.pop()
        if getattr(node, "type", None) == "button":
            out.append(node)
        stack.extend(getattr(node, "children", {}).values())
    return out


@pytest.mark.parametrize(
    ("page", "username"),
    [
        ("dashboard", "mia"),
        ("my_pools", "admin"),
        ("servers", "admin"),
        ("vlms", "admin"),
        ("pools", "admin"),
        ("users", "admin"),
        ("audit", "admin"),
    ],
)
def test_every_table_titles_its_columns_and_leaves_empty_cells_blank(app, page, username):
    at = open_page(app(username), page)
    tables = shown_tables(at)
    assert tables, f"{page} shows no table"
    for table in tables:
        titles = column_titles(table)
        shown = [c for c in table.value.columns if c in titles or SNAKE in c]
        assert all(c in titles for c in table.value.columns), (page, table.value.columns)
        assert not [titles[c] for c in shown if SNAKE in titles[c]], (page, titles)
        assert table.proto.placeholder == "" and table.proto.HasField("placeholder"), page


def test_column_picker_offers_readable_names(app):
    at = open_page(app("admin"), "my_pools")
    picker = at.multiselect(key="my_pools_columns")
    assert picker.format_func("vlm_name") == "VLM"
    assert picker.format_func("over_committed") == "Over-committed"
    assert picker.format_func("allocated_share") == "Allocated of quantity"


def test_csv_for_people_uses_the_table_titles_and_blank_cells(app, monkeypatch):
    downloads = record_downloads(monkeypatch)
    at = open_page(app("admin"), "my_pools")
    assert not at.exception
    pools_csv = read_csv(downloads["pools"])
    assert {"VLM", "Pool", "Over-committed", "Allocated of quantity"} <= set(pools_csv.columns)
    assert not [c for c in pools_csv.columns if SNAKE in c]
    assert "Allocation grid" not in pools_csv.columns  # an in-app link means nothing in a file
    assert all(v.endswith("%") for v in pools_csv["Allocated of quantity"])

    open_page(at, "servers")
    servers_csv = read_csv(downloads["license servers"])
    assert "Last error" in servers_csv.columns and "last_error" not in servers_csv.columns
    healthy = servers_csv[servers_csv["Status"] != "error"]
    assert not healthy.empty and set(healthy["Last error"]) == {""}
    for column in servers_csv.columns:
        assert not EMPTY_TEXTS & set(servers_csv[column]), column


def test_export_page_keeps_a_raw_file_with_machine_names(app, monkeypatch):
    downloads = record_downloads(monkeypatch)
    at = open_page(app("ana"), "export")
    assert not at.exception
    people, raw = read_csv(downloads["pools"]), read_csv(downloads["pools raw"])
    assert {"vlm_name", "pool_name", "over_committed"} <= set(raw.columns)
    assert {"VLM", "Pool", "Over-committed"} <= set(people.columns)
    assert not [c for c in people.columns if SNAKE in c]
    assert len(people) == len(raw)
    allocations = read_csv(downloads["allocations"])
    assert "Host id" in allocations.columns and "host_id" in read_csv(downloads["allocations raw"])


def test_times_are_shown_in_the_browsers_zone_with_the_zone_named(app, monkeypatch):
    downloads = record_downloads(monkeypatch)
    at = app("admin")
    at.context = {"timezone": BROWSER_ZONE}
    open_page(at, "audit")
    stored = audit.audit_log(service_context(), ADMIN)
    table = shown_tables(at)[0]
    assert column_titles(table)["happened_at"] == f"When ({BROWSER_ZONE})"

    def in_browser_zone(value) -> datetime:
        moment = pd.Timestamp(value).to_pydatetime().replace(tzinfo=server_zone())
        return moment.astimezone(ZoneInfo(BROWSER_ZONE)).replace(tzinfo=None)

    newest = stored.iloc[0]
    shown = table.value.set_index("id").loc[int(newest["id"]), "happened_at"]
    assert pd.Timestamp(shown).to_pydatetime() == in_browser_zone(newest["happened_at"])
    exported = read_csv(downloads["audit log"])
    assert f"When ({BROWSER_ZONE})" in exported.columns
    assert exported["When (Pacific/Kiritimati)"].iloc[0] == (
        f"{in_browser_zone(newest['happened_at']):%Y-%m-%d %H:%M:%S}"
    )


def test_pool_tables_show_allocated_of_quantity_and_link_to_the_grid(app):
    at = open_page(app("admin"), "pools")
    table = shown_tables(at)[0]
    kinds = column_kinds(table)
    assert kinds["allocated_share"] == "progress" and kinds["allocations_link"] == "link"
    listed = pools.list_pools(service_context(), ADMIN).set_index("name")
    for row in table.value.itertuples():
        pool = listed.loc[row.name]
        assert row.allocated_share == pytest.approx(pool["allocated"] / pool["quantity"])
        assert row.allocations_link == f"allocations?pool={int(pool['id'])}"

    at = open_page(app("mia"), "my_pools")
    features = shown_tables(at)[1].value
    link = features["allocations_link"].iloc[-1]
    path, query = urlsplit(link).path, dict(parse_qsl(urlsplit(link).query))
    assert path == "allocations"
    [mias_pool] = pools.list_pools(service_context(), Actor("mia", Role.MANAGER))["id"]
    assert query == {
        "pool": str(int(mias_pool)),
        "feature": f"{features['feature_name'].iloc[-1]} {features['feature_version'].iloc[-1]}",
    }
    at.query_params.update(query)
    open_page(at, "allocations")
    pool_box, feature_box = at.selectbox[0], at.selectbox[1]
    assert pool_box.value == int(query["pool"])
    assert " ".join(feature_box.value) == query["feature"]


def test_selecting_an_audit_row_opens_before_and_after_with_changed_keys(app):
    ctx = service_context()
    pool_id = int(pools.list_pools(ctx, ADMIN)["id"].iloc[0])
    pool = pools.list_pools(ctx, ADMIN).set_index("id").loc[pool_id]
    pools.update_pool(ctx, ADMIN, pool_id, description="Shown side by side")
    at = open_page(app("admin"), "audit")
    log = shown_tables(at)[0].value
    position = int(log.index[log["action"] == "pool.update"][0])
    assert "description" in log["changed"].iloc[position]
    assert not blocks_with_key(at, "audit_detail")

    at.session_state["table_audit_log"] = {"selection": {"rows": [position], "columns": []}}
    at.run()
    assert blocks_with_key(at, "audit_detail")
    [detail] = [d.value for d in at.dataframe if list(d.value.columns) == DETAIL_COLUMNS]
    row = detail.set_index("key").loc["description"]
    assert row["after"] == "Shown side by side" and bool(row["changed"])
    assert row["before"] == (pool["description"] or "")
    unchanged = detail[~detail["changed"]]
    assert (unchanged["before"] == unchanged["after"]).all()
    assert any("key(s) changed (highlighted)" in c.value for c in at.caption)


# the destructive button that sits in a tab the page only runs while it is open
LAZY_TAB = {"servers": ("server_tab", "Connection")}


@pytest.mark.parametrize(
    ("page", "select", "button", "confirm", "impact"),
    [
        ("pools", None, "delete_pool", "delete_pool_{id}_confirm", "allocation(s)"),
        ("vlms", None, "delete_vlm", "delete_vlm_{id}_confirm", "refused while pools"),
        ("servers", None, "remove_server", "remove_server_{id}_confirm", "Nothing changes"),
        ("users", "ana", "users_disable", "disable_user_ana_confirm", "cannot sign in"),
        ("users", "ana", "users_reset", "reset_password_ana_confirm", "stops working"),
    ],
)
def test_destructive_buttons_are_red_and_confirm_with_their_impact(
    app, page, select, button, confirm, impact
):
    at = open_page(app("admin"), page)
    if page in LAZY_TAB:
        open_section(at, *LAZY_TAB[page])
    if select:
        at.selectbox(key="users_selected").set_value(select)
        at.run()
    assert any("st-key-danger_" in h.proto.body for h in at.get("html")), "no danger styling"
    [block] = blocks_with_key(at, f"danger_{button}")
    [pressed] = buttons_in(block)
    assert pressed.key == button and pressed.proto.type == "primary" and pressed.proto.icon
    pressed.click()
    at.run()
    selector = {"pools": "edit_pool", "vlms": "vlm_selected", "servers": "server_selected"}
    chosen = at.selectbox(key=selector[page]).value if page in selector else None
    confirm_key = confirm.format(id=chosen)
    [confirm_block] = blocks_with_key(at, f"danger_{confirm_key}")
    [confirm_button] = buttons_in(confirm_block)
    assert confirm_button.proto.type == "primary"
    assert any(impact in w.value for w in at.warning), [w.value for w in at.warning]


def test_the_sign_in_page_has_no_sidebar(app):
    at = app()
    assert at.text_input[0].label == "Username"
    assert not at.sidebar.children, "the sign-in page draws an (empty) sidebar"
    signed_in = app("admin")
    assert signed_in.sidebar.children  # the account box and Log out


def test_server_list_titles_instance_and_times_with_room(app):
    at = open_page(app("admin"), "servers")
    table = shown_tables(at)[0]
    config = json.loads(table.proto.columns)
    assert config["instance"]["width"] == "medium"
    assert config["last_sync_at"]["width"] >= 160
    assert config["last_sync_at"]["label"].startswith("Last sync (")
    assert servers.list_servers(service_context(), ADMIN)["instance"].notna().all()


def test_a_user_without_a_display_name_shows_no_none(app):
    users.add_user(service_context(), ADMIN, "zed", "analyst")
    at = open_page(app("admin"), "users")
    at.selectbox(key="users_selected").set_value("zed")
    at.run()
    [caption] = [c.value for c in at.caption if "manages" in c.value]
    assert caption.startswith("zed · analyst") and not EMPTY_TEXTS & set(caption.split())
