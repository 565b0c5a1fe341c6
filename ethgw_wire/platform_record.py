"""The platform record: where the token contract is and who administers it.

Written by the launcher once the token is deployed (`ethgw up`, the test
fixtures); read by the providers. Addresses only: the keys stay in keystores.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class PlatformRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    chain_id: int
    token_address: str
    token_block: int  # where the token's events start
    admin_address: str
    faucet_address: str
    sealer_address: str


def load_platform(path: Path) -> PlatformRecord | None:
    """The record, or None while the platform is not deployed yet."""
    if not path.exists():
        return None
    return PlatformRecord.model_validate(json.loads(path.read_text()))


def save_platform(path: Path, record: PlatformRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(record.model_dump_json(indent=2))
    temporary.replace(path)  # atomic: a provider never reads half a file
