"""FlexNet clients built from license_servers rows, and a thread-safe cache of them."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from vlm.context import ServiceContext
from vlm.domain import NotFound
from vlm.flexnet import FlexNetClient
from vlm.flexnet.connection import ServerConnection
from vlm.store.servers import load_server

CONNECTION_FIELDS = (
    "base_url",
    "instance",
    "username",
    "password_encrypted",
    "verify_tls",
    "ca_path",
    "timeout_seconds",
)


class ServerConfigError(RuntimeError):
    """A license_servers row cannot be turned into a client (e.g. undecryptable password)."""


def client_for_server(ctx: ServiceContext, server: Mapping[str, Any]) -> FlexNetClient:
    """A new client for one license_servers row (password decrypted here, never stored plain)."""
    try:
        password = ctx.secrets.decrypt(server.get("password_encrypted"))
    except RuntimeError as exc:
        raise ServerConfigError(f"license server {server.get('name')!r}: {exc}") from exc
    return ServerConnection.from_record(server, password).client()


def connection_key(server: Mapping[str, Any]) -> tuple:
    """The fields whose change requires a new client."""
    return tuple(server.get(name) for name in CONNECTION_FIELDS)


class ClientCache:
    """One client per server id, rebuilt when the row's connection fields change."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._clients: dict[int, tuple[tuple, FlexNetClient]] = {}
        self._retired: list[FlexNetClient] = []

    def get(self, server: Mapping[str, Any]) -> FlexNetClient:
        """The cached client for this row, replacing it if the connection settings changed."""
        server_id = int(server["id"])
        key = connection_key(server)
        with self._lock:
            cached = self._clients.get(server_id)
            if cached is not None and cached[0] == key:
                return cached[1]
            client = client_for_server(self._ctx, server)
            if cached is not None:
                self._retired.append(cached[1])
            self._clients[server_id] = (key, client)
            return client

    def get_by_id(self, server_id: int) -> FlexNetClient:
        """The client for a server id, reading its current row."""
        server = load_server(self._ctx.db, server_id)
        if server is None:
            raise NotFound(f"license server {server_id} does not exist")
        return self.get(server)

    def discard(self, server_id: int) -> None:
        """Forget a server's client (it is closed with the cache, as a request may be in flight)."""
        with self._lock:
            cached = self._clients.pop(int(server_id), None)
            if cached is not None:
                self._retired.append(cached[1])

    def close_all(self) -> None:
        """Close every client this cache created."""
        with self._lock:
            clients = [c for _, c in self._clients.values()] + self._retired
            self._clients.clear()
            self._retired = []
        for client in clients:
            client.close()


@contextmanager
def borrowed_client(
    ctx: ServiceContext, server_id: int, client: FlexNetClient | None = None
) -> Iterator[FlexNetClient]:
    """Yield the given client, or a fresh one for the server that is closed afterwards."""
    if client is not None:
        yield client
        return
    server = load_server(ctx.db, server_id)
    if server is None:
        raise NotFound(f"license server {server_id} does not exist")
    own = client_for_server(ctx, server)
    try:
        yield own
    finally:
        own.close()


class ServerLocks:
    """One lock per server of one context's database (ctx.owned)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_server: dict[int, threading.RLock] = {}

    def of(self, server_id: int) -> threading.RLock:
        with self._lock:
            return self._by_server.setdefault(int(server_id), threading.RLock())


def server_lock(ctx: ServiceContext, server_id: int) -> threading.RLock:
    """The lock serialising inventory pulls and reconcile passes of one server of one database."""
    return ctx.owned(ServerLocks).of(server_id)
