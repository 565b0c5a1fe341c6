"""The private network as a whole: prepare, start, wait for, inspect, restart, stop."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from ethgw_wire.settings import ClusterSettings, KeystoreSettings
from geth_cluster.errors import ClusterError, NodeStartError, UnknownNodeError
from geth_cluster.genesis import clique_genesis
from geth_cluster.keys import LOOPBACK, enode_url, ensure_nodekey
from geth_cluster.layout import NodeSpec, node_specs
from geth_cluster.node_rpc import block_number, peer_count, rpc_call
from geth_cluster.runtimes import remember_runtime
from geth_cluster.runtimes.base import NodeRuntime
from service_kit.keyfiles import ChainAccount, ensure_account
from service_kit.ports import PortInUseError, ensure_port_free

log = logging.getLogger("ethgw.cluster")

WEI_PER_ETH = 10**18
# The namespaces each service node serves on its loopback HTTP RPC, which the providers and
# the gateway's /rpc reach: no management namespace at all. The sealer serves no HTTP: its
# account is unlocked to seal, and over HTTP anyone on the host could send transactions
# from it (eth_sendTransaction). The manager reaches it on its IPC socket, in a 0700 folder
# (mining stop/start, heads).
NODE_HTTP_APIS = "eth,net,web3,txpool"
# A Unix socket's path is at most 107 bytes (sun_path, with its NUL).
MAX_IPC_PATH_BYTES = 107


@dataclass(frozen=True)
class NodeStatus:
    """What `ethgw cluster status` shows for one node."""

    name: str
    pid: int | None
    rpc_port: int | None  # None: the sealer, on its IPC socket only
    block: int | None
    peers: int | None
    cpu: float | None
    memory: float | None

    @property
    def answering(self) -> bool:
        return self.block is not None


@dataclass(frozen=True)
class MiningState:
    """Whether the sealer seals blocks, and the chain height it is at."""

    mining: bool
    block: int


@dataclass(frozen=True)
class ChainAccounts:
    """The accounts the chain is born with."""

    sealer: ChainAccount
    faucet: ChainAccount


class GethCluster:
    """One Clique sealer plus N service nodes peered by static nodes, on one runtime."""

    def __init__(self, settings: ClusterSettings, runtime: NodeRuntime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.specs = node_specs(settings)
        scrypt_n = KeystoreSettings().scrypt_n
        self.accounts = ChainAccounts(
            sealer=ensure_account(settings.state_dir / "accounts", "sealer", scrypt_n),
            faucet=ensure_account(settings.state_dir / "accounts", "faucet", scrypt_n),
        )
        self._http = httpx.AsyncClient(timeout=3.0)
        self._sealer_head_at_stop: dict[str, int | None] = {}

    async def aclose(self) -> None:
        await self._http.aclose()
        await self.runtime.close()

    def spec(self, name: str) -> NodeSpec:
        for spec in self.specs:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.specs)
        raise UnknownNodeError(f"no node named {name!r} (nodes: {known})")

    @property
    def genesis_path(self) -> Path:
        return self.settings.state_dir / "genesis.json"

    # -- preparing the folders -------------------------------------------------

    async def prepare(self) -> None:
        """Genesis, node keys, static peers and `geth init`, each done only once."""
        self.write_node_files()
        for spec in self.specs:
            if not (spec.datadir / "geth" / "chaindata").exists():
                await self._geth_init(spec)

    def write_node_files(self, peer_host: Callable[[NodeSpec], str] | None = None) -> None:
        """Genesis, node keys, static peers and the sealer's keystore; no geth needed.

        `peer_host` gives the address a node's peers dial it at (default: loopback);
        compose.yaml's init service passes each container's fixed address. A node listens for
        peers on loopback, or on every address of its container when peers dial it there.
        """
        listen_host = LOOPBACK if peer_host is None else "0.0.0.0"
        self._write_genesis()
        enodes = {
            s.name: enode_url(
                ensure_nodekey(s.datadir), s.p2p_port, peer_host(s) if peer_host else LOOPBACK
            )
            for s in self.specs
        }
        for spec in self.specs:
            peers = [url for name, url in enodes.items() if name != spec.name]
            listen = f"{listen_host}:{spec.p2p_port}"
            (spec.datadir / "config.toml").write_text(_config_toml(peers, listen))
        sealer = self.specs[0]
        sealer_keystore = sealer.datadir / "keystore" / "sealer.json"
        sealer_keystore.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.accounts.sealer.keystore_path, sealer_keystore)
        sealer_keystore.chmod(0o600)
        _private_socket_folder(sealer.ipc_path)

    def _write_genesis(self) -> None:
        # The genesis is fixed for the life of the state folder: rewriting it
        # would fork new nodes away from the existing chain.
        if self.genesis_path.exists():
            return
        genesis = clique_genesis(
            chain_id=self.settings.chain_id,
            period=self.settings.block_period,
            gas_limit=self.settings.gas_limit,
            signer=self.accounts.sealer.address,
            alloc={
                self.accounts.faucet.address: self.settings.faucet_balance_eth * WEI_PER_ETH,
                self.accounts.sealer.address: 1000 * WEI_PER_ETH,
            },
        )
        self.genesis_path.parent.mkdir(parents=True, exist_ok=True)
        self.genesis_path.write_text(json.dumps(genesis, indent=2))

    async def _geth_init(self, spec: NodeSpec) -> None:
        code, output = await self.runtime.run_once(
            spec, ["init", "--datadir", str(spec.datadir), str(self.genesis_path)]
        )
        if code != 0:
            raise NodeStartError(f"geth init of {spec.name} failed:\n{output[-2000:]}")

    def geth_args(self, spec: NodeSpec) -> list[str]:
        """The command line of one node; the same on every runtime (host networking)."""
        s = self.settings
        options: list[tuple[str, str | int | None]] = [
            ("--datadir", str(spec.datadir)),
            ("--config", str(spec.datadir / "config.toml")),
            ("--networkid", s.chain_id),
            ("--nodiscover", None),
            # The P2P port is config.toml's ListenAddr, on loopback; no NAT mapping attempts.
            ("--nat", "none"),
            ("--authrpc.addr", "127.0.0.1"),
            ("--authrpc.port", spec.authrpc_port),
            *_rpc_options(spec),
            ("--syncmode", "full"),
            ("--cache", s.geth_cache_mb),
            # Room for bursts of one account's writes (the pipeline's 100-transfer test).
            ("--txpool.accountslots", 256),
            ("--txpool.globalslots", 10240),
            ("--verbosity", 3),
        ]
        if spec.is_sealer:
            sealer = self.accounts.sealer
            options += [
                ("--mine", None),
                ("--miner.etherbase", sealer.address),
                ("--miner.gaslimit", s.gas_limit),
                ("--unlock", sealer.address),
                ("--password", str(sealer.password_path)),
            ]
        return [str(part) for flag, value in options for part in (flag, value) if part is not None]

    # -- life cycle --------------------------------------------------------------

    async def up(self) -> None:
        """Start every node that is not running and wait until the network is ready."""
        remember_runtime(self.settings.state_dir, self.runtime.name)
        await self.prepare()
        sealer, *service_nodes = self.specs
        await self._start_if_stopped(sealer)
        timeout_s = self.settings.start_timeout_s
        if service_nodes and not await self._sealer_past(0, timeout_s):
            raise NodeStartError(
                f"the sealer sealed no block in {timeout_s:.0f}s; last lines of its log:\n"
                + self.runtime.log_tail(sealer)
            )
        for spec in service_nodes:
            await self._start_if_stopped(spec)
        await self.wait_ready(self.specs, timeout_s)

    async def _start_if_stopped(self, spec: NodeSpec) -> None:
        if await self.runtime.is_running(spec):
            return
        for port, setting in spec.port_settings():
            ensure_port_free(port, setting)
        await self.runtime.start(spec, self.geth_args(spec))
        log.info("node started node=%s rpc=%s", spec.name, spec.rpc_url)

    async def down(self) -> None:
        """Stop every node; the chain data stays for the next start."""
        await asyncio.gather(*(self.runtime.stop(s) for s in self.specs))
        log.info("cluster stopped nodes=%d", len(self.specs))

    async def restart_node(self, name: str) -> None:
        """Stop one node, start it again and wait until it is back at the head."""
        await self.stop_node(name)
        await self.start_node(name)

    async def stop_node(self, name: str) -> None:
        self._sealer_head_at_stop[name] = await self._sealer_head()
        await self.runtime.stop(self.spec(name))
        log.info("node stopped node=%s", name)

    async def start_node(self, name: str) -> None:
        """Start one stopped node and wait until it has caught up with the head.

        A service node starts once the sealer has sealed past the node's head: past the
        sealer's head when stop_node stopped it, or else (a crashed node) when this call began.
        The wait is at most two block periods; see _sealer_past for why."""
        spec = self.spec(name)
        level = self._sealer_head_at_stop.pop(name, None)
        if not spec.is_sealer:
            level = level if level is not None else await self._sealer_head()
            if level is not None:
                await self._sealer_past(level, 2.0 * self.settings.block_period)
        for port, setting in spec.port_settings():
            await _wait_port_free(port, setting)
        await self.runtime.start(spec, self.geth_args(spec))
        log.info("node started node=%s rpc=%s", name, spec.rpc_url)
        await self.wait_ready([spec], self.settings.start_timeout_s)

    async def _sealer_head(self) -> int | None:
        try:
            return await block_number(self._http, self.specs[0].rpc_url)
        except ClusterError:
            return None

    async def _sealer_past(self, block: int, timeout_s: float) -> bool:
        """Whether the sealer's head got past `block` within timeout_s.

        A starting geth discards propagated blocks until its first sync, and it syncs only
        from a peer it knows to be ahead: ahead at their handshake, or one that sent it a
        whole block, which the sealer sends to the square root of its peers. A service node
        that meets a sealer already past its own head syncs at once; one that meets it level
        may wait for geth's 10 s forced-sync cycle."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            head = await self._sealer_head()
            if head is not None and head > block:
                return True
            if not await self.runtime.is_running(self.specs[0]):
                return False
            await asyncio.sleep(0.2)
        return False

    # -- sealing -------------------------------------------------------------------

    async def set_mining(self, on: bool) -> MiningState:
        """Start or stop sealing on the sealer, over its IPC socket (rpc_url).

        Raises NodeUnreachableError or RpcError when the sealer does not do it.
        """
        sealer = self.specs[0]
        await rpc_call(self._http, sealer.rpc_url, "miner_start" if on else "miner_stop")
        return await self.mining_state()

    async def mining_state(self) -> MiningState:
        sealer = self.specs[0]
        mining = bool(await rpc_call(self._http, sealer.rpc_url, "eth_mining"))
        return MiningState(mining, await block_number(self._http, sealer.rpc_url))

    # -- readiness -----------------------------------------------------------------

    async def heads(self) -> dict[str, int | None]:
        """Each node's block number, None for a node that does not answer."""
        results = await asyncio.gather(
            *(block_number(self._http, s.rpc_url) for s in self.specs), return_exceptions=True
        )
        return {
            s.name: r if isinstance(r, int) else None
            for s, r in zip(self.specs, results, strict=True)
        }

    async def wait_ready(self, specs: list[NodeSpec], timeout_s: float) -> None:
        """Until each node answers RPC, has a peer and is within max_lag of the head.

        The node must also be past genesis, so "following" means blocks are
        being sealed and reaching it.
        """
        deadline = asyncio.get_running_loop().time() + timeout_s
        waiting = [s.name for s in specs]
        while asyncio.get_running_loop().time() < deadline:
            waiting = [s.name for s in specs if not await self._is_ready(s)]
            if not waiting:
                return
            for spec in specs:
                if not await self.runtime.is_running(spec):
                    raise NodeStartError(
                        f"{spec.name} exited during start; last lines of its log:\n"
                        + self.runtime.log_tail(spec)
                    )
            await asyncio.sleep(0.5)
        raise NodeStartError(
            f"not ready after {timeout_s:.0f}s: {', '.join(waiting)}; last log lines of "
            f"{waiting[0]}:\n{self.runtime.log_tail(self.spec(waiting[0]))}"
        )

    async def _is_ready(self, spec: NodeSpec) -> bool:
        heads = await self.heads()
        head = max((h for h in heads.values() if h is not None), default=0)
        mine = heads.get(spec.name)
        if mine is None or mine == 0 or mine < head - self.settings.max_lag:
            return False
        if len(self.specs) == 1:
            return True
        try:
            return await peer_count(self._http, spec.rpc_url) > 0
        except ClusterError:
            return False

    async def status(self) -> list[NodeStatus]:
        """A row per node: pid, RPC port, block, peers, CPU and memory ratios."""
        return list(await asyncio.gather(*(self._node_status(s) for s in self.specs)))

    async def _node_status(self, spec: NodeSpec) -> NodeStatus:
        pid = self.runtime.pid(spec)
        block = peers = None
        cpu = memory = None
        try:
            block = await block_number(self._http, spec.rpc_url)
            peers = await peer_count(self._http, spec.rpc_url)
        except ClusterError:
            pass
        if pid is not None:
            try:
                sampler = self.runtime.sampler(
                    spec, self.settings.node_memory_budget_mb, self.settings.cpu_cores_of(spec.name)
                )
                await asyncio.sleep(0.2)  # CPU is a rate: measure over a short window
                sample = await asyncio.to_thread(sampler.sample)  # docker's is blocking
                cpu, memory = sample.cpu, sample.memory
            except psutil.Error:
                pass
        rpc_port = None if spec.is_sealer else spec.rpc_port
        return NodeStatus(spec.name, pid, rpc_port, block, peers, cpu, memory)


def _rpc_options(spec: NodeSpec) -> list[tuple[str, str | int | None]]:
    """A service node: HTTP on loopback, no IPC. The sealer: its IPC socket only."""
    if spec.is_sealer:
        return [("--ipcpath", str(spec.ipc_path))]
    return [
        ("--http", None),
        ("--http.addr", "127.0.0.1"),
        ("--http.port", spec.rpc_port),
        ("--http.api", NODE_HTTP_APIS),
        ("--ipcdisable", None),
    ]


def _private_socket_folder(socket_path: Path) -> None:
    """The socket's folder, 0700 whatever the umask: whoever can open the socket can use
    the sealer's unlocked account."""
    if len(str(socket_path).encode()) > MAX_IPC_PATH_BYTES:
        raise NodeStartError(
            f"the sealer's IPC socket path {socket_path} is over {MAX_IPC_PATH_BYTES} bytes;"
            " choose a shorter ETHGW_CLUSTER_STATE_DIR"
        )
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.parent.chmod(0o700)


def _config_toml(peers: list[str], listen_addr: str) -> str:
    """geth's TOML config: the P2P listen address (geth has no flag for the listen host, and
    --port would listen on every address) and the peers, every other node of the cluster.

    geth starts its first sync once it has min(5, MaxPeers) peers, or else on a 10 s cycle.
    MaxPeers is the number of peers, so a node that has met all of them syncs at once. The
    peers are static (dialled and re-dialled) and trusted (never refused for want of a slot),
    and DialRatio 1 lets a node dial all of them (by default it dials MaxPeers / 3)."""
    quoted = ",\n  ".join(json.dumps(url) for url in peers)
    return (
        f"[Node.P2P]\nMaxPeers = {len(peers)}\nDialRatio = 1\n"
        f"ListenAddr = {json.dumps(listen_addr)}\n"
        f"StaticNodes = [\n  {quoted}\n]\nTrustedNodes = [\n  {quoted}\n]\n"
    )


async def _wait_port_free(port: int, setting: str, timeout_s: float = 10.0) -> None:
    """A restarted node's ports may linger briefly after its exit."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            ensure_port_free(port, setting)
            return
        except PortInUseError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
