"""One way from a stored server's connection settings to a FlexNet client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vlm.flexnet.client import FlexNetClient

DEFAULT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ServerConnection:
    """How to reach and sign in to one license server; the password is plain, never stored so."""

    base_url: str
    instance: str = "~"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verify_tls: bool = True
    ca_path: str | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def from_record(cls, record: Mapping[str, Any], password: str | None) -> ServerConnection:
        """The connection of a license_servers row (or form values) with its decrypted password."""
        verify = record.get("verify_tls")
        return cls(
            base_url=str(record["base_url"]),
            instance=record.get("instance") or "~",
            username=record.get("username") or None,
            password=password,
            verify_tls=True if verify is None else bool(verify),
            ca_path=record.get("ca_path") or None,
            timeout_seconds=float(record.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS),
        )

    @property
    def verify(self) -> bool | str:
        """httpx `verify`: False when verification is off, else the CA bundle path or True."""
        if not self.verify_tls:
            return False
        return self.ca_path or True

    def client(self) -> FlexNetClient:
        """A new client for this connection; the caller closes it."""
        return FlexNetClient(
            self.base_url,
            instance=self.instance,
            username=self.username,
            password=self.password,
            verify=self.verify,
            timeout=self.timeout_seconds,
        )
