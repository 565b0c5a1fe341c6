"""The platform's first steps on a new chain: an admin account with gas money,
the token contract deployed by it, and the record that tells providers where
it is. Idempotent: a recorded deployment whose code is on chain is kept."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

from ethgw_wire.artifacts import load_artifact
from ethgw_wire.platform_record import PlatformRecord, load_platform, save_platform
from ethgw_wire.settings import KeystoreSettings, PlatformSettings
from service_kit.keyfiles import ChainAccount, ensure_account

log = logging.getLogger("ethgw.platform")

GAS_PRICE_WEI = 2 * 10**9  # above the sealer's 1 gwei minimum tip
WEI_PER_ETH = 10**18

Client = AsyncWeb3[AsyncHTTPProvider]


async def ensure_platform(
    rpc_url: str,
    accounts_dir: Path,
    faucet: ChainAccount,
    sealer_address: str,
    settings: PlatformSettings,
) -> PlatformRecord:
    """Deploy the token unless the recorded one is on this chain already."""
    w3: Client = AsyncWeb3(AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    try:
        existing = load_platform(settings.file)
        if existing is not None and await _has_code(w3, existing.token_address):
            return existing
        admin = ensure_account(accounts_dir, "admin", KeystoreSettings().scrypt_n)
        await _fund(w3, faucet, admin.address, settings.admin_funding_eth * WEI_PER_ETH)
        address, block = await _deploy_token(w3, admin, settings)
        record = PlatformRecord(
            chain_id=int(await w3.eth.chain_id),
            token_address=address,
            token_block=block,
            admin_address=admin.address,
            faucet_address=faucet.address,
            sealer_address=sealer_address,
        )
        save_platform(settings.file, record)
        log.info(
            "platform token deployed address=%s block=%d admin=%s", address, block, admin.address
        )
        return record
    finally:
        await w3.provider.disconnect()


async def _has_code(w3: Client, address: str) -> bool:
    code = await w3.eth.get_code(w3.to_checksum_address(address))
    return len(code) > 0


async def _send(w3: Client, account: ChainAccount, tx: dict[str, Any]) -> dict[str, Any]:
    key = account.private_key()
    nonce = await w3.eth.get_transaction_count(w3.to_checksum_address(account.address), "pending")
    fields = {
        "gasPrice": GAS_PRICE_WEI,
        "nonce": nonce,
        "chainId": await w3.eth.chain_id,
        "value": 0,
        **tx,
    }
    signed = Account.sign_transaction(fields, key)
    tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
    return dict(await _receipt(w3, tx_hash.to_0x_hex()))


async def _receipt(w3: Client, tx_hash: str, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        response = await w3.provider.make_request("eth_getTransactionReceipt", [tx_hash])
        result = response.get("result")
        if result:
            if int(result["status"], 16) != 1:
                raise RuntimeError(f"platform setup transaction {tx_hash} failed")
            return dict(result)
        await asyncio.sleep(0.25)  # not mined yet, or "indexing is in progress"
    raise TimeoutError(f"no receipt for {tx_hash} after {timeout_s}s")


async def _fund(w3: Client, faucet: ChainAccount, to: str, wei: int) -> None:
    balance = await w3.eth.get_balance(w3.to_checksum_address(to))
    if balance >= wei // 2:
        return
    await _send(w3, faucet, {"to": to, "value": wei, "gas": 21_000})


async def _deploy_token(
    w3: Client, admin: ChainAccount, settings: PlatformSettings
) -> tuple[str, int]:
    artifact = load_artifact("PlatformToken")
    factory = w3.eth.contract(abi=artifact.web3_abi, bytecode=artifact.bytecode)
    data = factory.constructor(settings.publish_reward, settings.default_price).data_in_transaction
    receipt = await _send(w3, admin, {"data": data, "gas": 5_000_000})
    return str(w3.to_checksum_address(receipt["contractAddress"])), int(receipt["blockNumber"], 16)
