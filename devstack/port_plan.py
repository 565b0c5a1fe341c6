"""How many instances of each kind of service `ethgw up` starts unless told, and where it
puts them: offsets from the gateway's port (`--port-base` moves them all, so a second
stack, e.g. the benchmark's, runs beside the first)."""

from __future__ import annotations

PROVIDERS = 1
READERS = 2
WRITERS = 2

READ_OFFSET = 100
WRITE_OFFSET = 150
PROVIDER_OFFSET = 200
# Each kind's block of ports holds this many instances before it meets the next block.
MAX_INSTANCES = WRITE_OFFSET - READ_OFFSET
MAX_PORT_BASE = 65535 - PROVIDER_OFFSET - MAX_INSTANCES
