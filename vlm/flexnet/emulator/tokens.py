"""Users, roles and HS512 JWTs: issuing tokens at /authorize and checking bearer headers."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from vlm.flexnet.emulator.common import EmulatorError, TimeSource, iso_utc

ROLE_READ = "ROLE_READ"
ROLE_RESERVATIONS = "ROLE_RESERVATIONS"
ROLE_DROPCLIENT = "ROLE_DROPCLIENT"
ROLE_ADMIN = "ROLE_ADMIN"
ALL_ROLES = (ROLE_ADMIN, ROLE_DROPCLIENT, ROLE_READ, ROLE_RESERVATIONS, "ROLE_OFFLINE")

Account = tuple[str, frozenset[str]]  # (password, roles)


@dataclass(frozen=True)
class Principal:
    user: str
    roles: frozenset[str]


def load_users(users: list[dict[str, Any]], admin_password: str) -> dict[str, Account]:
    """Accounts from fixture `users` (roles default to read), plus admin with every role."""
    accounts: dict[str, Account] = {}
    for user in users:
        roles = user.get("roles") or ROLE_READ
        if isinstance(roles, str):
            roles = [r.strip() for r in roles.split(",") if r.strip()]
        accounts[str(user["user"])] = (str(user.get("password", "")), frozenset(roles))
    accounts["admin"] = (admin_password, frozenset(ALL_ROLES))
    return accounts


class TokenIssuer:
    """The user accounts and the signing key tokens are issued with."""

    def __init__(self, time: TimeSource) -> None:
        self._time = time
        self.users: dict[str, Account] = {}
        self.secret = secrets.token_bytes(64)

    def rotate(self) -> None:
        """A new signing key: every token issued so far stops verifying."""
        self.secret = secrets.token_bytes(64)

    def issue(self, user: Any, password: Any, *, issuer: str, lifetime: int) -> dict[str, str]:
        """A signed HS512 JWT and its ISO expiry, or 401 for unknown user or wrong password."""
        account = self.users.get(str(user)) if isinstance(user, str) else None
        if account is None or account[0] != password:
            raise EmulatorError(401, "Bad credentials")
        now = self._time.now()
        expires = now + lifetime
        claims = {
            "sub": user,
            "iss": issuer,
            "iat": int(now),
            "exp": int(expires),
            "roles": ",".join(sorted(account[1])),
            "xsrfToken": str(uuid.uuid4()),
        }
        token = jwt.encode(claims, self.secret, algorithm="HS512")
        return {"expires": iso_utc(int(expires)), "token": token}


def bearer_token(authorization: str | None) -> str:
    """The token of a `Bearer …` header; 401 if missing."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise EmulatorError(401, "Full authentication is required to access this resource")
    return token.strip()


def verify(token: str, secret: bytes, role: str) -> Principal:
    """The principal of a token signed with `secret`: 401 if expired/invalid, 403 without `role`."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS512"],
            options={"require": ["exp", "sub"]},
            leeway=0,
        )
    except jwt.ExpiredSignatureError as exc:
        raise EmulatorError(401, "JWT token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise EmulatorError(401, "Invalid JWT token") from exc
    roles = frozenset(r.strip() for r in str(claims.get("roles", "")).split(",") if r)
    if role not in roles:
        raise EmulatorError(403, "Access is denied")
    return Principal(user=str(claims["sub"]), roles=roles)
