"""Synchronisation with the license servers: inventory pull, reservation reconciler, scheduler."""

from vlm.sync.clients import ClientCache, ServerConfigError, client_for_server
from vlm.sync.drift import store_conflicts
from vlm.sync.inventory import InventoryResult, pull_inventory, read_reservations
from vlm.sync.reconciler import ReconcileReport, reconcile_all, reconcile_server
from vlm.sync.scheduler import ServerSyncResult, SyncScheduler, sync_all, sync_server

__all__ = [
    "ClientCache",
    "InventoryResult",
    "ReconcileReport",
    "ServerConfigError",
    "ServerSyncResult",
    "SyncScheduler",
    "client_for_server",
    "pull_inventory",
    "reconcile_all",
    "reconcile_server",
    "read_reservations",
    "store_conflicts",
    "sync_all",
    "sync_server",
]
