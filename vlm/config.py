"""Runtime settings from environment variables (the UI layer may overlay Streamlit secrets)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEMO_COOKIE_KEY = "vlm-demo-cookie-key-not-for-production-use-0001"
DEMO_SECRET_KEY = "dmxtLWRlbW8tZmVybmV0LWtleS1ub3QtZm9yLXByb2Q="


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything VLM needs to know about its installation."""

    db_path: str = "data/vlm.duckdb"
    demo: bool = False
    group_prefix: str = "vlm-"
    sync_interval_seconds: float = 60.0
    db_memory_limit: str = "512MB"
    cookie_key: str | None = None
    cookie_name: str = "vlm_auth"
    cookie_expiry_days: float = 1.0
    secret_key: str | None = None
    max_login_attempts: int = 5
    demo_dir: Path = field(default_factory=lambda: Path("data/demo"))

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Build settings from VLM_* environment variables, then apply overrides."""
        values: dict[str, object] = {
            "db_path": os.environ.get("VLM_DB_PATH", cls.db_path),
            "demo": _env_bool("VLM_DEMO", False),
            "group_prefix": os.environ.get("VLM_GROUP_PREFIX", cls.group_prefix),
            "sync_interval_seconds": float(os.environ.get("VLM_SYNC_INTERVAL", "60")),
            "db_memory_limit": os.environ.get("VLM_DB_MEMORY_LIMIT", cls.db_memory_limit),
            "cookie_key": os.environ.get("VLM_COOKIE_KEY"),
            "secret_key": os.environ.get("VLM_SECRET_KEY"),
            "max_login_attempts": int(os.environ.get("VLM_MAX_LOGIN_ATTEMPTS", "5")),
        }
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.demo:
            settings = cls(
                **{
                    **settings.__dict__,
                    "cookie_key": settings.cookie_key or DEMO_COOKIE_KEY,
                    "secret_key": settings.secret_key or DEMO_SECRET_KEY,
                }
            )
        return settings

    def problems(self) -> list[str]:
        """Reasons the app must refuse to start (empty outside demo mode when keys are sound)."""
        if self.demo:
            return []
        found = []
        if not self.cookie_key or self.cookie_key == DEMO_COOKIE_KEY:
            found.append(
                "set VLM_COOKIE_KEY (or [auth] cookie_key in secrets.toml) to a random key"
            )
        elif len(self.cookie_key.encode()) < 32:
            found.append("the cookie key must be at least 32 bytes long")
        if not self.secret_key or self.secret_key == DEMO_SECRET_KEY:
            found.append("set VLM_SECRET_KEY (a Fernet key) to encrypt license-server passwords")
        return found
