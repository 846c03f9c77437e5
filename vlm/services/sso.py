"""Single sign-on administration: the providers of secrets.toml with the settings admins changed
on the Users page, the local (password) sign-in switch and the break-glass accounts it spares.

What the Users page stores for a provider (auto-create, role claim, claim-value -> role map)
replaces that provider's `[vlm.sso.<provider>]` values from secrets.toml as a whole (display name,
e-mail matching and the maximum age stay in secrets.toml); "Use secrets.toml" deletes it again.
Switching local sign-in off is refused unless an enabled admin is marked break-glass, and while
it is off the last such admin keeps that flag, their admin role and their account enabled
(users.py asks `keeps_break_glass_admin`), so a broken IdP never locks every admin out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import duckdb
import pandas as pd

from vlm.context import ServiceContext
from vlm.domain import Actor, Conflict, NotFound, ValidationError, validate_flag
from vlm.services import audit
from vlm.services.permissions import require_admin, require_admin_in
from vlm.sso_config import (
    MAX_CLAIM_VALUE_LENGTH,
    MAX_CLAIM_VALUES,
    ROLE_NAMES,
    SsoProvider,
)
from vlm.store import sso as store
from vlm.store import users as user_store

ROLE_CLAIM_MAX_LENGTH = 64
NO_BREAK_GLASS = (
    "mark an enabled admin as break-glass first: with local sign-in off only break-glass "
    "accounts can sign in with a password, and one must stay able to when the IdP fails"
)


@dataclass(frozen=True)
class ProviderView:
    """A provider as sign-in uses it: secrets.toml's, with the Users page's values on top."""

    provider: SsoProvider
    source: str  # "secrets.toml" or "Users page"


def configured(ctx: ServiceContext) -> tuple[SsoProvider, ...]:
    """The providers of secrets.toml ("Sign in with …" buttons), in name order."""
    return ctx.settings.sso.providers


def _role_map_json(role_map: Iterable[tuple[str, str]]) -> str:
    return json.dumps([[value, role] for value, role in role_map])


def _role_map_from_json(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(value), str(role)) for value, role in json.loads(text or "[]"))


def _with_stored(provider: SsoProvider, stored: Mapping | None) -> ProviderView:
    if stored is None:
        return ProviderView(provider, "secrets.toml")
    changed = replace(
        provider,
        auto_create=bool(stored["auto_create"]),
        role_claim=str(stored["role_claim"]),
        role_map=_role_map_from_json(str(stored["role_map"])),
    )
    return ProviderView(changed, "Users page")


def effective_provider(ctx: ServiceContext, name: str) -> ProviderView | None:
    """The provider named name as sign-in applies it now, or None when it is not configured."""
    provider = ctx.settings.sso.provider(name)
    if provider is None:
        return None
    return _with_stored(provider, store.provider_settings(ctx.db).get(name))


def provider_settings(ctx: ServiceContext, actor: Actor) -> list[ProviderView]:
    """Every configured provider as sign-in applies it, and where its mapping comes from."""
    require_admin(actor)
    stored = store.provider_settings(ctx.db)
    return [_with_stored(p, stored.get(p.name)) for p in configured(ctx)]


def _claim_values(role: str, values: object) -> list[str]:
    if isinstance(values, str):
        values = values.split(",")
    if not isinstance(values, list | tuple):
        raise ValidationError(f"{role} values must be a list of claim values", field=role)
    cleaned = [str(v).strip() for v in values if str(v).strip()]
    if len(cleaned) > MAX_CLAIM_VALUES:
        raise ValidationError(f"at most {MAX_CLAIM_VALUES} values per role", field=role)
    for value in cleaned:
        if len(value) > MAX_CLAIM_VALUE_LENGTH or any(ord(c) < 32 for c in value):
            raise ValidationError(
                f"a claim value must be at most {MAX_CLAIM_VALUE_LENGTH} printable characters",
                field=role,
            )
    return cleaned


def validate_role_map(values: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    """(claim value, role) pairs from role -> values (a list, or comma-separated text); a value
    given for two roles is refused (it would be unclear which one is meant)."""
    unknown = sorted(set(values) - set(ROLE_NAMES))
    if unknown:
        raise ValidationError(f"unknown roles {unknown}", field="role_map")
    pairs: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for role in ROLE_NAMES:
        for value in _claim_values(role, values.get(role, [])):
            if value in seen and seen[value] != role:
                raise ValidationError(
                    f"'{value}' is given for both {seen[value]} and {role}", field=role
                )
            if value not in seen:
                seen[value] = role
                pairs.append((value, role))
    return tuple(pairs)


def _role_claim(value: object) -> str:
    claim = str(value or "").strip()
    if not claim or len(claim) > ROLE_CLAIM_MAX_LENGTH or not claim.isprintable():
        raise ValidationError(
            f"the role claim must be 1–{ROLE_CLAIM_MAX_LENGTH} printable characters "
            "(for example groups or roles)",
            field="role_claim",
        )
    return claim


def _known(ctx: ServiceContext, provider: str) -> SsoProvider:
    found = ctx.settings.sso.provider(str(provider))
    if found is None:
        raise NotFound(f"no provider '{provider}' in secrets.toml [auth]", field="provider")
    return found


def set_provider_settings(
    ctx: ServiceContext,
    actor: Actor,
    provider: str,
    *,
    auto_create: object,
    role_claim: object,
    role_map: Mapping[str, object],
) -> None:
    """Store an admin's auto-create choice, role claim and role map for a provider; from the
    next sign-in on they replace the provider's values in secrets.toml."""
    require_admin(actor)
    known = _known(ctx, provider)
    auto = validate_flag(auto_create, "auto_create")
    claim = _role_claim(role_claim)
    pairs = validate_role_map(role_map)

    def write(cur: duckdb.DuckDBPyConnection) -> None:
        require_admin_in(cur, actor)
        before = store.provider_setting_for_update(cur, known.name)
        store.store_provider_setting(
            cur,
            known.name,
            auto_create=auto,
            role_claim=claim,
            role_map=_role_map_json(pairs),
            by=actor.username,
        )
        audit.record(
            cur,
            actor,
            "sso.provider_settings",
            "sso_provider",
            known.name,
            before and {k: before[k] for k in ("auto_create", "role_claim", "role_map")},
            {"auto_create": auto, "role_claim": claim, "role_map": _role_map_json(pairs)},
        )

    ctx.db.write(write)


def clear_provider_settings(ctx: ServiceContext, actor: Actor, provider: str) -> bool:
    """Drop what the Users page stored for a provider (secrets.toml's values apply again);
    False when nothing was stored."""
    require_admin(actor)
    known = _known(ctx, provider)

    def write(cur: duckdb.DuckDBPyConnection) -> bool:
        require_admin_in(cur, actor)
        before = store.provider_setting_for_update(cur, known.name)
        if before is None:
            return False
        store.delete_provider_setting(cur, known.name)
        audit.record(
            cur,
            actor,
            "sso.provider_settings_cleared",
            "sso_provider",
            known.name,
            {k: before[k] for k in ("auto_create", "role_claim", "role_map")},
            None,
        )
        return True

    return ctx.db.write(write)


def local_sign_in_enabled(ctx: ServiceContext) -> bool:
    """Whether every account may sign in with its password (off: only break-glass accounts)."""
    return store.local_sign_in(ctx.db)


def set_local_sign_in(ctx: ServiceContext, actor: Actor, enabled: object) -> None:
    """Switch password sign-in on or off for the accounts not marked break-glass. Off is refused
    while no enabled admin is marked break-glass, or while no provider is configured."""
    require_admin(actor)
    flag = validate_flag(enabled, "local_sign_in")

    def write(cur: duckdb.DuckDBPyConnection) -> None:
        require_admin_in(cur, actor)
        before = store.local_sign_in_in(cur)
        if before == flag:
            return
        if not flag and not configured(ctx):
            raise Conflict(
                "no identity provider is configured in secrets.toml: nobody but break-glass "
                "accounts could sign in",
                field="local_sign_in",
            )
        if not flag and not store.enabled_break_glass_admins(cur):
            raise Conflict(NO_BREAK_GLASS, field="local_sign_in")
        store.set_local_sign_in(cur, flag, actor.username)
        audit.record(
            cur,
            actor,
            "sign_in.local",
            "sign_in_policy",
            "local",
            {"local_sign_in": before},
            {"local_sign_in": flag},
        )

    ctx.db.write(write)


def keeps_break_glass_admin(cur: duckdb.DuckDBPyConnection, username: str, what: str) -> None:
    """Inside a write that would take admin rights, the account or the break-glass flag from
    username: refused when local sign-in is off and they are the last enabled break-glass
    admin (called by users.change_role, users.set_disabled and set_break_glass)."""
    if store.local_sign_in_in(cur):
        return
    if store.enabled_break_glass_admins(cur) == [username]:
        raise Conflict(
            f"{username} is the last enabled break-glass admin while local sign-in is off; "
            f"{what} would leave no way in when the IdP fails",
            field="username",
        )


def set_break_glass(ctx: ServiceContext, actor: Actor, username: str, flag: object) -> None:
    """Mark a user break-glass (their password works while local sign-in is off) or not."""
    require_admin(actor)
    name = str(username or "").strip().lower()
    marked = validate_flag(flag, "break_glass")

    def write(cur: duckdb.DuckDBPyConnection) -> None:
        require_admin_in(cur, actor)
        user = user_store.user_for_update(cur, name)
        if user is None:
            raise NotFound(f"user '{name}' does not exist", field="username")
        before = store.break_glass_in(cur, name)
        if before == marked:
            return
        if not marked:
            keeps_break_glass_admin(cur, name, "clearing the flag")
        store.set_break_glass(cur, name, marked)
        audit.record(
            cur,
            actor,
            "user.break_glass",
            "user",
            name,
            {"break_glass": before},
            {"break_glass": marked},
        )

    ctx.db.write(write)


def sign_in_methods(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """Per user: how they can sign in (password, break-glass, each linked IdP with its subject)
    and when an IdP last signed them in."""
    require_admin(actor)
    people = user_store.users_with_pool_counts(ctx.db)
    linked = store.identities(ctx.db)
    local_on = store.local_sign_in(ctx.db)
    rows = []
    for person in people.itertuples(index=False):
        mine = linked[linked["username"] == person.username]
        methods = []
        if local_on or person.break_glass:
            methods.append("password (break-glass)" if person.break_glass else "password")
        methods.extend(f"oidc:{p}" for p in dict.fromkeys(mine["provider"]))
        rows.append(
            {
                "username": person.username,
                "sign_in_methods": ", ".join(methods) or "none",
                "break_glass": bool(person.break_glass),
                "linked_identities": "; ".join(
                    f"{p}: {s}" for p, s in zip(mine["provider"], mine["subject"], strict=True)
                ),
                "last_sso_sign_in": mine["last_sign_in_at"].max() if len(mine) else pd.NaT,
            }
        )
    columns = ["username", "sign_in_methods", "break_glass", "linked_identities"]
    return pd.DataFrame(rows, columns=[*columns, "last_sso_sign_in"])
