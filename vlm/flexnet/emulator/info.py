"""Fixed answers about the emulated server itself: /health and /version."""

from __future__ import annotations

from typing import Any

LLS_VERSION = "2024.09.0"
LLS_BUILD = "287413"


def health(instance_id: str, security: bool) -> dict[str, Any]:
    return {
        "LLS": {
            "version": LLS_VERSION,
            "buildDate": "2024-09-30",
            "buildVersion": LLS_BUILD,
            "branch": "emulator",
            "gitHash": "0000000",
            "patch": "0",
            "fneBuildVersion": "2024.09",
            "serverInstanceID": instance_id,
            "database": {"connectionCheck": "success"},
            "security": "enabled" if security else "disabled",
            "httpAuth": "enabled",
            "licensingSecurityJSON": "disabled",
            "diskspace": {"status": "UP"},
        }
    }


def version() -> dict[str, str]:
    return {"version": LLS_VERSION, "build": LLS_BUILD}
