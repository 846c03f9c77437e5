"""Single sign-on rules: matching an IdP identity to a VLM user, the role mapping applied at every
sign-in, refusals (unknown, disabled, unmapped, stale), the local sign-in switch with its
break-glass accounts, and the admin-only settings (docs: README "Single sign-on")."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER
from tests.unit.services.estate import add_people
from vlm.domain import Conflict, NotFound, PermissionDenied, Role, ValidationError
from vlm.services import audit, logins, sso, users
from vlm.services.logins import OidcOutcome, SignInOutcome
from vlm.sso_config import SsoProvider, SsoSettings

PASSWORD = "password-123"
OKTA = SsoProvider(
    "okta",
    "Okta",
    auto_create=True,
    role_map=(("vlm-admins", "admin"), ("vlm-managers", "manager"), ("staff", "analyst")),
)
KEYCLOAK = SsoProvider("keycloak", "Keycloak", auto_create=False)  # no mapping: roles from VLM


@pytest.fixture
def sso_ctx(ctx):
    ctx.settings = replace(ctx.settings, sso=SsoSettings((KEYCLOAK, OKTA), "s" * 40))
    add_people(ctx)
    return ctx


def claims(sub: str, *, email: str = "", groups=(), **extra) -> dict:
    found = {"sub": sub, "iat": int(time.time()), "groups": list(groups), **extra}
    if email:
        found["email"] = email
    return found


def audit_rows(ctx, action: str) -> list[dict]:
    frame = audit.audit_log(ctx, ADMIN, action=action)
    return frame.to_dict("records")


def test_unknown_user_is_created_with_the_mapped_role_and_linked(sso_ctx):
    result = logins.sign_in_oidc(
        sso_ctx, "okta", claims("00u1", email="Zoe@corp.example", groups=["staff"], name="Zoe Z")
    )
    assert result.ok and result.created and result.username == "zoe"
    assert result.role is Role.ANALYST and result.actor.role is Role.ANALYST
    profile = users.get_user(sso_ctx, "zoe")
    assert profile["role"] == "analyst" and profile["display_name"] == "Zoe Z"
    again = logins.sign_in_oidc(sso_ctx, "okta", claims("00u1", groups=["staff"]))
    assert again.ok and again.username == "zoe" and not again.created
    signed = audit_rows(sso_ctx, "user.sign_in")
    assert [r["actor"] for r in signed] == ["zoe", "zoe"]
    assert '"method": "oidc:okta"' in signed[0]["after"]


def test_the_mapping_is_applied_again_at_every_sign_in(sso_ctx):
    first = logins.sign_in_oidc(
        sso_ctx, "okta", claims("s-9", email="x@c.example", groups=["vlm-managers"])
    )
    assert first.role is Role.MANAGER
    # several mapped groups: the highest role wins
    both = logins.sign_in_oidc(sso_ctx, "okta", claims("s-9", groups=["staff", "vlm-admins"]))
    assert both.role is Role.ADMIN and users.get_user(sso_ctx, first.username)["role"] == "admin"
    # removed from every mapped group: refused, and the role stays what it was (not widened)
    gone = logins.sign_in_oidc(sso_ctx, "okta", claims("s-9", groups=["other"]))
    assert gone.outcome is OidcOutcome.NO_ROLE and not gone.ok
    with pytest.raises(Exception, match="refused"):
        _ = gone.actor
    demoted = logins.sign_in_oidc(sso_ctx, "okta", claims("s-9", groups=["staff"]))
    assert demoted.role is Role.ANALYST
    assert users.get_user(sso_ctx, first.username)["role"] == "analyst"
    changes = audit_rows(sso_ctx, "user.role")
    assert len(changes) == 2 and all('"by": "oidc:okta"' in r["after"] for r in changes)


def test_unknown_users_are_refused_when_the_provider_creates_none(sso_ctx):
    result = logins.sign_in_oidc(sso_ctx, "keycloak", claims("kc-1", email="new@corp.example"))
    assert result.outcome is OidcOutcome.UNKNOWN_USER and result.username is None
    assert users.get_user(sso_ctx, "new") is None
    refused = audit_rows(sso_ctx, "user.sign_in_refused")
    assert refused[0]["actor"] == "keycloak:kc-1" and "oidc:keycloak" in refused[0]["after"]


def test_an_existing_user_is_matched_by_verified_email_then_by_subject(sso_ctx):
    users.add_user(sso_ctx, ADMIN, "eve", "manager", email="eve@corp.example", password=PASSWORD)
    unverified = claims("kc-eve", email="EVE@corp.example", email_verified=False)
    assert logins.sign_in_oidc(sso_ctx, "keycloak", unverified).outcome is OidcOutcome.UNKNOWN_USER
    result = logins.sign_in_oidc(sso_ctx, "keycloak", claims("kc-eve", email="EVE@corp.example"))
    # no mapping for keycloak: the role is the one VLM's admins gave
    assert result.ok and result.username == "eve" and result.role is Role.MANAGER
    # linked now: the subject finds eve even when the IdP sends another e-mail
    moved = logins.sign_in_oidc(sso_ctx, "keycloak", claims("kc-eve", email="e2@corp.example"))
    assert moved.username == "eve"
    # another subject with eve's e-mail does not take over the account
    other = logins.sign_in_oidc(
        sso_ctx, "keycloak", claims("kc-imposter", email="eve@corp.example")
    )
    assert other.outcome is OidcOutcome.CONFLICT
    methods = sso.sign_in_methods(sso_ctx, ADMIN).set_index("username")
    assert methods.loc["eve", "sign_in_methods"] == "password, oidc:keycloak"
    assert methods.loc["eve", "linked_identities"] == "keycloak: kc-eve"


def test_a_disabled_user_is_refused_even_when_the_idp_accepts(sso_ctx):
    first = logins.sign_in_oidc(
        sso_ctx, "okta", claims("d-1", email="d@c.example", groups=["staff"])
    )
    users.set_disabled(sso_ctx, ADMIN, first.username, True)
    result = logins.sign_in_oidc(sso_ctx, "okta", claims("d-1", groups=["staff"]))
    assert result.outcome is OidcOutcome.DISABLED and not result.ok


def test_stale_unknown_provider_and_missing_subject_are_refused(sso_ctx):
    old = claims("s-old", groups=["staff"], iat=int(time.time()) - 13 * 3600)
    assert logins.sign_in_oidc(sso_ctx, "okta", old).outcome is OidcOutcome.STALE
    assert logins.sign_in_oidc(sso_ctx, "github", claims("x")).outcome is (
        OidcOutcome.UNKNOWN_PROVIDER
    )
    assert logins.sign_in_oidc(sso_ctx, "okta", {"groups": ["staff"]}).outcome is (
        OidcOutcome.NO_SUBJECT
    )
    assert users.get_user(sso_ctx, "s-old") is None


def test_a_mapped_demotion_keeps_the_rules_of_change_role(sso_ctx):
    sso.set_provider_settings(
        sso_ctx, ADMIN, "keycloak", auto_create=False, role_claim="roles",
        role_map={"analyst": ["viewer"], "manager": "lead", "admin": ["ops"]},
    )  # fmt: skip
    users.add_user(sso_ctx, ADMIN, "mgr", "analyst", email="mgr@c.example", password=PASSWORD)
    lead = {"sub": "kc-mgr", "email": "mgr@c.example", "roles": ["lead"]}
    assert logins.sign_in_oidc(sso_ctx, "keycloak", lead).role is Role.MANAGER
    # a string claim counts as one value
    assert logins.sign_in_oidc(sso_ctx, "keycloak", {"sub": "kc-mgr", "roles": "viewer"}).role is (
        Role.ANALYST
    )
    # alice is the only active admin: the IdP cannot take that role away
    sso_ctx.db.write(
        lambda cur: cur.execute("UPDATE users SET email = 'a@c.example' WHERE username = 'alice'")
    )
    alice = {"sub": "kc-alice", "email": "a@c.example", "roles": ["viewer"]}
    refused = logins.sign_in_oidc(sso_ctx, "keycloak", alice)
    assert refused.outcome is OidcOutcome.CONFLICT and "last active admin" in refused.reason
    assert users.get_user(sso_ctx, "alice")["role"] == "admin"
    assert logins.sign_in_oidc(sso_ctx, "keycloak", {**alice, "roles": ["ops"]}).ok


def test_users_page_settings_replace_secrets_and_can_be_cleared(sso_ctx):
    assert sso.effective_provider(sso_ctx, "okta").source == "secrets.toml"
    sso.set_provider_settings(
        sso_ctx, ADMIN, "okta", auto_create=False, role_claim="roles",
        role_map={"admin": "ops, sre", "analyst": []},
    )  # fmt: skip
    view = sso.effective_provider(sso_ctx, "okta")
    assert view.source == "Users page" and view.provider.role_claim == "roles"
    assert view.provider.role_map == (("ops", "admin"), ("sre", "admin"))
    assert not view.provider.auto_create
    refused = logins.sign_in_oidc(sso_ctx, "okta", claims("new-1", groups=["staff"]))
    assert refused.outcome is OidcOutcome.UNKNOWN_USER
    assert sso.clear_provider_settings(sso_ctx, ADMIN, "okta")
    assert not sso.clear_provider_settings(sso_ctx, ADMIN, "okta")
    assert sso.effective_provider(sso_ctx, "okta").provider == OKTA
    assert [r["action"] for r in audit_rows(sso_ctx, "sso.provider_settings")] == [
        "sso.provider_settings"
    ]


@pytest.mark.parametrize(
    ("role_map", "claim", "field"),
    [
        ({"owner": ["x"]}, "groups", "role_map"),
        ({"admin": ["x"], "analyst": ["x"]}, "groups", "analyst"),
        ({"admin": ["x" * 300]}, "groups", "admin"),
        ({"admin": ["x"]}, "  ", "role_claim"),
    ],
)
def test_bad_mappings_are_refused_next_to_their_field(sso_ctx, role_map, claim, field):
    with pytest.raises(ValidationError) as refused:
        sso.set_provider_settings(
            sso_ctx, ADMIN, "okta", auto_create=True, role_claim=claim, role_map=role_map
        )
    assert refused.value.field == field
    with pytest.raises(NotFound):
        sso.set_provider_settings(
            sso_ctx, ADMIN, "github", auto_create=True, role_claim="groups", role_map={}
        )


def test_local_sign_in_off_spares_only_break_glass_accounts(sso_ctx):
    with pytest.raises(Conflict, match="break-glass"):
        sso.set_local_sign_in(sso_ctx, ADMIN, False)
    sso.set_break_glass(sso_ctx, ADMIN, "alice", True)
    sso.set_local_sign_in(sso_ctx, ADMIN, False)
    assert not sso.local_sign_in_enabled(sso_ctx)
    assert logins.sign_in(sso_ctx, "alice", PASSWORD).outcome is SignInOutcome.SIGNED_IN
    assert logins.sign_in(sso_ctx, "bob", PASSWORD).outcome is SignInOutcome.LOCAL_OFF
    # a wrong password is just wrong, break-glass or not
    assert logins.sign_in(sso_ctx, "bob", "nope-nope-1").outcome is SignInOutcome.WRONG
    assert logins.local_sign_in_allowed(sso_ctx, "alice")
    assert not logins.local_sign_in_allowed(sso_ctx, "bob")
    # the last break-glass admin keeps flag, role and account while local sign-in is off
    users.add_user(sso_ctx, ADMIN, "root2", "admin", password=PASSWORD)
    with pytest.raises(Conflict, match="last enabled break-glass admin"):
        sso.set_break_glass(sso_ctx, ADMIN, "alice", False)
    with pytest.raises(Conflict, match="last enabled break-glass admin"):
        users.set_disabled(sso_ctx, actor_root2(), "alice", True)
    with pytest.raises(Conflict, match="last enabled break-glass admin"):
        users.change_role(sso_ctx, actor_root2(), "alice", "manager")
    sso.set_local_sign_in(sso_ctx, ADMIN, True)
    assert logins.sign_in(sso_ctx, "bob", PASSWORD).ok
    policy = audit_rows(sso_ctx, "sign_in.local")
    assert [r["after"] for r in policy] == ['{"local_sign_in": true}', '{"local_sign_in": false}']
    password = audit_rows(sso_ctx, "user.sign_in")
    assert {r["actor"] for r in password} == {"alice", "bob"}
    assert all('"method": "password"' in r["after"] for r in password)


def actor_root2():
    from vlm.domain import Actor

    return Actor("root2", Role.ADMIN)


def test_local_sign_in_cannot_go_off_without_a_provider(ctx):
    add_people(ctx)
    sso.set_break_glass(ctx, ADMIN, "alice", True)
    with pytest.raises(Conflict, match="no identity provider"):
        sso.set_local_sign_in(ctx, ADMIN, False)
    assert sso.local_sign_in_enabled(ctx)


@pytest.mark.parametrize("actor", [MANAGER, ANALYST])
def test_only_admins_change_sign_in_settings(sso_ctx, actor):
    with pytest.raises(PermissionDenied):
        sso.set_local_sign_in(sso_ctx, actor, True)
    with pytest.raises(PermissionDenied):
        sso.set_break_glass(sso_ctx, actor, actor.username, True)
    with pytest.raises(PermissionDenied):
        sso.set_provider_settings(
            sso_ctx, actor, "okta", auto_create=True, role_claim="groups", role_map={}
        )
    with pytest.raises(PermissionDenied):
        sso.sign_in_methods(sso_ctx, actor)


def test_a_token_for_another_audience_is_refused(sso_ctx):
    okta = replace(OKTA, client_id="vlm-client")
    sso_ctx.settings = replace(sso_ctx.settings, sso=SsoSettings((okta,), "s" * 40))
    token = claims("aud-1", groups=["staff"], aud="other-client", azp="vlm-client")
    refused = logins.sign_in_oidc(sso_ctx, "okta", token)
    assert (
        refused.outcome is OidcOutcome.WRONG_AUDIENCE and users.get_user(sso_ctx, "aud-1") is None
    )
    for aud in ("vlm-client", ["other", "vlm-client"]):
        assert logins.sign_in_oidc(sso_ctx, "okta", {**token, "aud": aud}).ok
