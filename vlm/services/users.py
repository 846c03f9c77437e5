"""User administration: add with a one-time password, change role, disable, reset, set password."""

from __future__ import annotations

import os
import re
import secrets

import bcrypt
import pandas as pd

from vlm.context import ServiceContext
from vlm.domain import (
    EMAIL_MAX_LENGTH,
    NAME_MAX_LENGTH,
    Actor,
    Conflict,
    NotFound,
    PermissionDenied,
    Role,
    ValidationError,
    optional_text,
    require_text,
    secret_text,
    validate_flag,
)
from vlm.services import audit, logins, sso
from vlm.services.permissions import require_active_user_in, require_admin, require_admin_in
from vlm.store import users as store

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]{1,31}$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_BYTES = 72
BCRYPT_ROUNDS = int(os.environ.get("VLM_BCRYPT_ROUNDS", "12"))


def validate_username(value: object) -> str:
    name = str(value or "").strip().lower()
    if not _USERNAME.match(name):
        raise ValidationError(
            "user name must be 2–32 characters: letters, digits, '.', '_' or '-'",
            field="username",
        )
    return name


def validate_password(password: str) -> None:
    if password != password.strip():
        raise ValidationError(
            "password must not start or end with a space (the sign-in form trims them)",
            field="password",
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"password must be at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValidationError(
            f"password must be at most {MAX_PASSWORD_BYTES} bytes", field="password"
        )


def hash_password(password: str) -> str:
    validate_password(password)
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()


def check_password(password: str, password_hash: str) -> bool:
    """Whether password matches the bcrypt hash (False for what no stored password can be)."""
    try:
        given = password.encode()
    except UnicodeEncodeError:  # a lone surrogate: never part of a stored password
        return False
    if len(given) > MAX_PASSWORD_BYTES:
        return False
    return bcrypt.checkpw(given, password_hash.encode())


def one_time_password() -> str:
    return secrets.token_urlsafe(12)


def _role(value: object) -> Role:
    try:
        return Role(str(value).strip().lower())
    except ValueError:
        raise ValidationError(
            f"role must be one of {', '.join(r.value for r in Role)}", field="role"
        ) from None


def _user(cur, username: str) -> dict:
    user = store.user_for_update(cur, username)
    if user is None:
        raise NotFound(f"user '{username}' does not exist", field="username")
    return user


def add_user(
    ctx: ServiceContext,
    actor: Actor,
    username: str,
    role: object,
    *,
    display_name: str = "",
    email: str = "",
    password: str | None = None,
) -> str:
    """Create a user; without a password one is generated, shown once, and must be changed."""
    require_admin(actor)
    name = validate_username(username)
    user_role = _role(role)
    display_name = optional_text(
        display_name, "display_name", max_len=NAME_MAX_LENGTH, label="display name"
    )
    email = optional_text(email, "email", max_len=EMAIL_MAX_LENGTH, label="e-mail")
    if password is not None:
        secret_text(password, "password", max_len=MAX_PASSWORD_BYTES)
    chosen = password if password is not None else one_time_password()
    password_hash = hash_password(chosen)

    def write(cur):
        require_admin_in(cur, actor)
        if store.user_exists(cur, name):
            raise Conflict(f"user '{name}' exists already", field="username")
        store.insert_user(
            cur,
            name,
            display_name=display_name.strip() or name,
            email=email.strip(),
            role=user_role.value,
            password_hash=password_hash,
            must_change_password=password is None,
        )
        audit.record(
            cur,
            actor,
            "user.add",
            "user",
            name,
            None,
            {"role": user_role.value, "display_name": display_name or name},
        )

    ctx.db.write(write)
    return chosen


def change_role(ctx: ServiceContext, actor: Actor, username: str, role: object) -> None:
    """Give a user another role; the last admin keeps theirs, a pool's manager stays a manager."""
    require_admin(actor)
    username = validate_username(username)
    new_role = _role(role)

    def write(cur):
        require_admin_in(cur, actor)
        user = _user(cur, username)
        if user["role"] == new_role.value:
            return
        if user["role"] == "admin" and not user["disabled"] and store.active_admin_count(cur) <= 1:
            raise Conflict("the last active admin cannot lose the admin role", field="role")
        if user["role"] == "admin" and not user["disabled"]:
            sso.keeps_break_glass_admin(cur, username, "taking the admin role")
        pools = store.managed_pool_count(cur, username)
        if user["role"] == "manager" and pools:
            raise Conflict(
                f"'{username}' manages {pools} pool(s); give them another manager first",
                field="role",
            )
        store.set_role(cur, username, new_role.value)
        audit.record(
            cur,
            actor,
            "user.role",
            "user",
            username,
            {"role": user["role"]},
            {"role": new_role.value},
        )

    ctx.db.write(write)


def set_disabled(ctx: ServiceContext, actor: Actor, username: str, disabled: bool) -> None:
    """Disable or re-enable a user; nobody disables themselves or the last admin."""
    require_admin(actor)
    username = validate_username(username)
    disabled = validate_flag(disabled, "disabled")

    def write(cur):
        require_admin_in(cur, actor)
        user = _user(cur, username)
        if disabled and username == actor.username:
            raise Conflict("you cannot disable yourself", field="username")
        if disabled and user["role"] == "admin" and store.active_admin_count(cur) <= 1:
            raise Conflict("the last active admin cannot be disabled", field="username")
        if disabled and user["role"] == "admin":
            sso.keeps_break_glass_admin(cur, username, "disabling them")
        store.set_disabled(cur, username, disabled)
        audit.record(
            cur,
            actor,
            "user.disable" if disabled else "user.enable",
            "user",
            username,
            {"disabled": user["disabled"]},
            {"disabled": disabled},
        )

    ctx.db.write(write)


def reset_password(ctx: ServiceContext, actor: Actor, username: str) -> str:
    """Give a user a new one-time password (returned once) that must be changed at login."""
    require_admin(actor)
    username = validate_username(username)
    chosen = one_time_password()
    password_hash = hash_password(chosen)

    def write(cur):
        require_admin_in(cur, actor)
        _user(cur, username)
        store.set_password_hash(cur, username, password_hash, must_change=True)
        audit.record(cur, actor, "user.reset_password", "user", username)
        logins.clear_failed_attempts(ctx, username)  # nested: the same transaction

    ctx.db.write(write)
    return chosen


def set_own_password(
    ctx: ServiceContext, actor: Actor, current_password: str, new_password: str
) -> None:
    """A signed-in user replaces their password (required after a one-time password)."""
    require_text(current_password, "current_password")
    secret_text(require_text(new_password, "password"), "password", max_len=MAX_PASSWORD_BYTES)
    stored = store.enabled_password_hash(ctx.db, actor.username)
    if stored is None:
        raise NotFound(f"user '{actor.username}' does not exist")
    if not check_password(current_password, stored):
        raise PermissionDenied("the current password is wrong", field="current_password")
    if new_password == current_password:
        raise ValidationError("choose a password different from the current one", field="password")
    password_hash = hash_password(new_password)

    def write(cur):
        require_active_user_in(cur, actor)
        store.set_password_hash(cur, actor.username, password_hash, must_change=False)
        audit.record(cur, actor, "user.set_password", "user", actor.username)

    ctx.db.write(write)


def list_users(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    require_admin(actor)
    return store.users_with_pool_counts(ctx.db)


def managers(ctx: ServiceContext, actor: Actor) -> list[str]:
    require_admin(actor)
    return store.enabled_managers(ctx.db)


def get_user(ctx: ServiceContext, username: str) -> dict | None:
    """The stored profile of a user (no hash), or None."""
    return store.user_profile(ctx.db, str(username or "").lower())


def actor_for(ctx: ServiceContext, username: str) -> Actor:
    """The Actor for a signed-in user, refusing unknown or disabled accounts."""
    user = get_user(ctx, username)
    if user is None or user["disabled"]:
        raise PermissionDenied(f"user '{username}' is unknown or disabled")
    return Actor(user["username"], Role(user["role"]))


def authenticator_credentials(ctx: ServiceContext) -> dict:
    """The credentials dict streamlit-authenticator expects, built from enabled users."""
    rows = store.enabled_credentials(ctx.db)
    return {
        "usernames": {
            username: {
                "name": display,
                "first_name": display,
                "last_name": "",
                "email": email or f"{username}@vlm.local",
                "password": password_hash,
                "roles": [role],
                "failed_login_attempts": 0,
                "logged_in": False,
            }
            for username, display, email, role, password_hash in rows
        }
    }


def has_users(ctx: ServiceContext) -> bool:
    return bool(store.user_count(ctx.db))
