"""Endpoints for the token's user, license servers (read-only), drift and VLMs."""

from __future__ import annotations

from datetime import timedelta

from vlm.api.framework import (
    PAGE_PARAMS,
    Call,
    Operation,
    Param,
    Success,
    body_fields,
    paged_frame,
)
from vlm.api.replies import Reply, first_record
from vlm.api.schemas import ID, ref
from vlm.domain import DAYS_MAX
from vlm.services import drift_history, servers, vlms

SERVER_ID = Param("server_id", "path", ID, "The license server's id.", required=True)
VLM_ID = Param("vlm_id", "path", ID, "The VLM's id.", required=True)
ESTATE_READERS = "Admins and analysts; managers are refused (403)."
ADMINS = "Admins only."
VLM_FIELDS = ("name", "server_feature_ids", "description", "vlm_type")


def me(call: Call) -> Reply:
    actor = call.actor
    return Reply(
        200,
        {
            "username": actor.username,
            "role": actor.role.value,
            "read_only": actor.read_only,
            "token_id": actor.token_id,
        },
    )


def _server_row(call: Call, server_id: int) -> dict:
    return first_record(servers.list_servers(call.ctx, call.actor), "server", server_id)


def list_servers(call: Call) -> Reply:
    return paged_frame(call, servers.list_servers(call.ctx, call.actor))


def get_server(call: Call) -> Reply:
    return Reply(200, _server_row(call, call.path_id("server_id", "server")))


def server_features(call: Call) -> Reply:
    server_id = call.path_id("server_id", "server")
    _server_row(call, server_id)
    return paged_frame(call, servers.server_features(call.ctx, call.actor, server_id))


def server_drift(call: Call) -> Reply:
    server_id = call.path_id("server_id", "server")
    _server_row(call, server_id)
    return paged_frame(call, servers.drift(call.ctx, call.actor, server_id))


def _groups(call: Call) -> list[str] | None:
    raw = call.query_text("group")
    return None if raw is None else [g.strip() for g in raw.split(",") if g.strip()]


def drift_events(call: Call) -> Reply:
    server_id = call.query_int("server_id", None, minimum=1, maximum=ID["maximum"])
    days = call.query_int("within_days", None, minimum=1, maximum=DAYS_MAX)
    frame = drift_history.drift_history(
        call.ctx,
        call.actor,
        server_id,
        drift_history.MAX_EVENTS,
        groups=_groups(call),
        within=None if days is None else timedelta(days=days),
    )
    return paged_frame(call, frame)


def _vlm_row(call: Call, vlm_id: int) -> dict:
    return first_record(vlms.list_vlms(call.ctx, call.actor), "vlm", vlm_id)


def list_vlms(call: Call) -> Reply:
    return paged_frame(call, vlms.list_vlms(call.ctx, call.actor))


def get_vlm(call: Call) -> Reply:
    return Reply(200, _vlm_row(call, call.path_id("vlm_id", "VLM")))


def create_vlm(call: Call) -> Reply:
    body = body_fields(call, VLM_FIELDS, required=("name", "server_feature_ids"))
    vlm_id = vlms.create_vlm(
        call.ctx,
        call.actor,
        body["name"],
        body["server_feature_ids"],
        vlm_type=body.get("vlm_type", vlms.VLM_TYPES[0]),
        description=body.get("description", ""),
    )
    headers = {"Location": f"{call.url}/{vlm_id}"}
    return Reply(201, _vlm_row(call, vlm_id), headers=headers)


def _exposed(call: Call, vlm_id: int) -> list[int]:
    choices = vlms.feature_choices(call.ctx, call.actor, vlm_id)
    return [int(i) for i in choices.loc[choices["exposed"], "server_feature_id"]]


def update_vlm(call: Call) -> Reply:
    vlm_id = call.path_id("vlm_id", "VLM")
    body = body_fields(call, VLM_FIELDS[:3])
    current = _vlm_row(call, vlm_id)
    features = body.get("server_feature_ids")
    vlms.update_vlm(
        call.ctx,
        call.actor,
        vlm_id,
        name=body.get("name", current["name"]),
        description=body.get("description", current["description"] or ""),
        server_feature_ids=_exposed(call, vlm_id) if features is None else features,
    )
    return Reply(200, _vlm_row(call, vlm_id))


def delete_vlm(call: Call) -> Reply:
    vlms.delete_vlm(call.ctx, call.actor, call.path_id("vlm_id", "VLM"))
    return Reply(204)


def vlm_features(call: Call) -> Reply:
    vlm_id = call.path_id("vlm_id", "VLM")
    _vlm_row(call, vlm_id)
    return paged_frame(call, vlms.vlm_features(call.ctx, call.actor, vlm_id))


def _page(name: str, what: str) -> Success:
    return Success(200, f"A page of {what}.", ref(name))


_GROUP = Param(
    "group",
    "query",
    {"type": "string", "pattern": "^[a-z,]*$"},
    "Comma-separated groups: found, repaired, conflict, resolved.",
)
_WITHIN = Param(
    "within_days",
    "query",
    {"type": "integer", "minimum": 1, "maximum": DAYS_MAX},
    "Only events of the last N days.",
)
_SERVER_FILTER = Param("server_id", "query", ID, "Only events of this license server.")

OPERATIONS = (
    Operation(
        "GET",
        "/me",
        "getMe",
        "The token's user and role",
        "me",
        me,
        Success(200, "Who the token acts for.", ref("Me")),
        description="Every role. The role is the user's as stored now.",
        problems=(401,),
    ),
    Operation(
        "GET",
        "/servers",
        "listServers",
        "License servers with status and license figures",
        "servers",
        list_servers,
        _page("ServerPage", "license servers"),
        description=ESTATE_READERS,
        params=PAGE_PARAMS,
    ),
    Operation(
        "GET",
        "/servers/{server_id}",
        "getServer",
        "One license server",
        "servers",
        get_server,
        Success(200, "The server.", ref("Server")),
        description=ESTATE_READERS,
        params=(SERVER_ID,),
        problems=(401, 403, 404, 422),
    ),
    Operation(
        "GET",
        "/servers/{server_id}/features",
        "listServerFeatures",
        "A server's features: total, used, reserved by others, pooled, poolable",
        "servers",
        server_features,
        _page("ServerFeaturePage", "server features"),
        description=ESTATE_READERS + " `server_feature_id` is what a VLM exposes.",
        params=(SERVER_ID, *PAGE_PARAMS),
        problems=(401, 403, 404, 422),
    ),
    Operation(
        "GET",
        "/servers/{server_id}/drift",
        "getServerDrift",
        "What VLM wants on a server versus what the last pull found there",
        "drift",
        server_drift,
        _page("DriftItemPage", "differences"),
        description=ADMINS,
        params=(SERVER_ID, *PAGE_PARAMS),
        problems=(401, 403, 404, 422),
    ),
    Operation(
        "GET",
        "/drift/events",
        "listDriftEvents",
        "Drift history: restarts, missing or disabled reservations, repairs (newest first)",
        "drift",
        drift_events,
        _page("DriftEventPage", "drift events"),
        description=ADMINS,
        params=(_SERVER_FILTER, _GROUP, _WITHIN, *PAGE_PARAMS),
    ),
    Operation(
        "GET",
        "/vlms",
        "listVlms",
        "Virtual License Managers with their figures",
        "vlms",
        list_vlms,
        _page("VlmPage", "VLMs"),
        description=ESTATE_READERS,
        params=PAGE_PARAMS,
    ),
    Operation(
        "POST",
        "/vlms",
        "createVlm",
        "Create a VLM exposing chosen server features",
        "vlms",
        create_vlm,
        Success(201, "The new VLM.", ref("Vlm")),
        description=ADMINS + " A server feature is exposed by at most one VLM.",
        body=ref("NewVlm"),
        problems=(400, 401, 403, 404, 409, 422),
    ),
    Operation(
        "GET",
        "/vlms/{vlm_id}",
        "getVlm",
        "One VLM",
        "vlms",
        get_vlm,
        Success(200, "The VLM.", ref("Vlm")),
        description=ESTATE_READERS,
        params=(VLM_ID,),
        problems=(401, 403, 404, 422),
    ),
    Operation(
        "PATCH",
        "/vlms/{vlm_id}",
        "updateVlm",
        "Rename a VLM, change its description or its exposed features",
        "vlms",
        update_vlm,
        Success(200, "The VLM as changed.", ref("Vlm")),
        description=ADMINS + " Removing a feature that pools draw on is refused (409).",
        params=(VLM_ID,),
        body=ref("VlmChange"),
        problems=(400, 401, 403, 404, 409, 422),
    ),
    Operation(
        "DELETE",
        "/vlms/{vlm_id}",
        "deleteVlm",
        "Delete a VLM without pools",
        "vlms",
        delete_vlm,
        Success(204, "Deleted."),
        description=ADMINS + " Refused (409) while any pool depends on it.",
        params=(VLM_ID,),
        problems=(401, 403, 404, 409, 422),
    ),
    Operation(
        "GET",
        "/vlms/{vlm_id}/features",
        "listVlmFeatures",
        "A VLM's features: total, reserved by others, pooled, available",
        "vlms",
        vlm_features,
        _page("VlmFeaturePage", "VLM features"),
        description=ESTATE_READERS,
        params=(VLM_ID, *PAGE_PARAMS),
        problems=(401, 403, 404, 422),
    ),
)
