"""The hub: where devices' records arrive (MQTT, HTTP, files), are stored once each
(SQLite or PostgreSQL), and where the fleet's state is shown (``edgekit hub``, docs/hub.md).

The hub uses the device side's wire formats (``edgekit.sync.wire``) and never the daemon's
internals. It is not device-side code: it may need the ``hub`` extra (psycopg, paho-mqtt).
"""

from edgekit.hub.db import Database, DatabaseError, register_schema
from edgekit.hub.store import HubStore, IngestResult

__all__ = ["Database", "DatabaseError", "HubStore", "IngestResult", "register_schema"]
