"""The database: engine, schema migrations and repositories that speak in `monitor.model` values.

SQLAlchemy rows never leave this package.
"""

from monitor.store.access import AccessStore, PasswordCipher
from monitor.store.alerts import AlertStore
from monitor.store.bulk import UpsertResult
from monitor.store.db import open_database, schema_status, upgrade
from monitor.store.health import HealthStore
from monitor.store.inventory import Inventory, SyncResult
from monitor.store.support import SupportRequests
from monitor.store.usage import UsageStore

__all__ = [
    "AccessStore",
    "AlertStore",
    "HealthStore",
    "Inventory",
    "PasswordCipher",
    "SupportRequests",
    "SyncResult",
    "UpsertResult",
    "UsageStore",
    "open_database",
    "schema_status",
    "upgrade",
]
