"""Fixtures for the contract tests: the compiled artifact, and on the real chain a
client, the owner (the faucet account), one deployed PlatformToken and a pool of
funded token holders."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from web3.contract import AsyncContract
from web3.types import TxReceipt

from ethgw_wire.artifacts import ContractArtifact, load_artifact
from geth_cluster.cluster import GethCluster
from service_kit.paths import REPO_ROOT
from tests.chain_helpers import (
    ETHER,
    ChainClient,
    Signer,
    connect,
    deploy,
    fund,
    wait_for_all,
)

PUBLISH_REWARD = 100
DEFAULT_PRICE = 30
HOLDING = 1_000  # tokens minted to every account of the pool
POOL_SIZE = 40


class AccountPool:
    """Accounts with ether for gas and HOLDING tokens each; every test takes its own."""

    def __init__(self, signers: list[Signer]) -> None:
        self._free = list(signers)

    def take(self, count: int = 1) -> list[Signer]:
        if count > len(self._free):
            raise RuntimeError("the account pool is used up: raise POOL_SIZE")
        taken, self._free = self._free[:count], self._free[count:]
        return taken


@pytest.fixture(scope="session")
def token_artifact() -> ContractArtifact:
    """The compiled PlatformToken from .tools/contracts, rebuilt first if a source
    changed since the bootstrap (a no-op otherwise), so the tests test the source."""
    build = subprocess.run(
        ["node", str(REPO_ROOT / "scripts" / "compile_contracts.js")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    return load_artifact("PlatformToken")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def w3(geth_cluster: GethCluster) -> AsyncIterator[ChainClient]:
    """A web3 client of the first service node."""
    client = connect(geth_cluster.spec("node-1").rpc_url)
    try:
        yield client
    finally:
        await client.provider.disconnect()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def owner(w3: ChainClient, geth_cluster: GethCluster) -> Signer:
    """The faucet account: it deploys, so it owns the token."""
    faucet = geth_cluster.accounts.faucet
    return Signer(w3, faucet.private_key(), geth_cluster.settings.chain_id)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def deployed(
    owner: Signer, token_artifact: ContractArtifact
) -> tuple[AsyncContract, TxReceipt]:
    """One PlatformToken for the module, with its deployment receipt."""
    return await deploy(owner, token_artifact, PUBLISH_REWARD, DEFAULT_PRICE)


@pytest.fixture(scope="module")
def token(deployed: tuple[AsyncContract, TxReceipt]) -> AsyncContract:
    """The module's PlatformToken."""
    return deployed[0]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool(owner: Signer, token: AsyncContract, geth_cluster: GethCluster) -> AccountPool:
    """POOL_SIZE accounts, each funded with 1 ether and minted HOLDING tokens, all
    sent at once so the whole pool is ready within a block or two."""
    signers = [Signer.random(owner.w3, geth_cluster.settings.chain_id) for _ in range(POOL_SIZE)]
    addresses = [s.address for s in signers]
    mints = await asyncio.gather(
        *(owner.submit(token.functions.mint(a, HOLDING)) for a in addresses)
    )
    await asyncio.gather(fund(owner, addresses, ETHER), wait_for_all(owner.w3, mints))
    return AccountPool(signers)
