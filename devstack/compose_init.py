"""compose.yaml's one-shot set-up steps, run in the ethgw image.

`python -m devstack.compose_init files --peer-address-base 172.28.0.10` writes the chain's
genesis, accounts, node keys and static peers into the shared state volume, the node at
index i (sealer 0, node-1 1, ...) being dialled at base + i: geth resolves a peer's name once,
when it starts, so a service name would fail whenever that peer is not up yet, while a fixed
address on the compose network is simply retried. Each geth container then runs `geth init`
on its own folder (geth is in its image, not in ours).

`python -m devstack.compose_init platform` creates the Kafka topics and deploys the platform
token, once the broker and node-1 answer. Both steps are idempotent, like `ethgw up`'s.

The `files` step also writes what the Kafka container needs (deploy/kafka/run-broker.sh): the
admin's and the platform's passwords, random, each in a volume of its own; and, in the
broker's config volume, its server.properties (SASL and ACLs, as `ethgw up`'s broker), the
storage format's arguments with both principals' SCRAM credentials, and the client settings
of its health check.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import logging
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from devstack.kafka_broker import (
    STORAGE_TOOL,
    KafkaBroker,
    argument_file_text,
    format_arguments,
    properties_text,
    server_properties,
)
from devstack.platform_setup import ensure_platform
from ethgw_wire.kafka import SASL_MECHANISM
from ethgw_wire.sealing import ensure_sealing_keys
from ethgw_wire.settings import ClusterSettings, KafkaSettings, PlatformSettings, SealingSettings
from geth_cluster.cluster import GethCluster
from geth_cluster.layout import NodeSpec
from geth_cluster.runtimes.local import LocalProcessRuntime
from geth_cluster.toolchain import geth_binary
from service_kit.keyfiles import write_private
from service_kit.logs import configure_logging
from service_kit.paths import keep_state_private

log = logging.getLogger("ethgw.compose")

ETHERBASE_FILE = "etherbase"  # in the sealer's folder: the address its command line unlocks
# In the sealer's folder too: the password of its keystore, so the node containers mount the
# chain's volume alone, never the platform accounts' (faucet, admin and their passwords).
SEALER_PASSWORD_FILE = "password"
# In every node's folder: a node container mounts its own folder of the chain's volume alone.
NODE_GENESIS_FILE = "genesis.json"
# In the broker's config volume (ETHGW_KAFKA_STATE_DIR), for deploy/kafka/run-broker.sh.
KAFKA_DATA_DIR = Path("/state/kafka-data/data")  # log.dirs; LOG_DIR is its sibling
KAFKA_FORMAT_ARGS = "format.args"
KAFKA_CLIENT_PROPERTIES = "client.properties"


def _cluster() -> GethCluster:
    # The runtime is never asked to run anything here: the files need no geth.
    return GethCluster(ClusterSettings(), LocalProcessRuntime(geth_binary()))


async def write_files(peer_address_base: str) -> None:
    """Genesis, accounts, node keys, static peers at base + index, the sealer's etherbase
    and password."""
    base = ipaddress.IPv4Address(peer_address_base)

    def peer_host(spec: NodeSpec) -> str:
        return str(base + spec.index)

    cluster = _cluster()
    try:
        cluster.write_node_files(peer_host)
        sealer = cluster.specs[0]
        (sealer.datadir / ETHERBASE_FILE).write_text(cluster.accounts.sealer.address)
        password = cluster.accounts.sealer.password_path.read_text()
        write_private(sealer.datadir / SEALER_PASSWORD_FILE, password)
        for spec in cluster.specs:
            shutil.copyfile(cluster.genesis_path, spec.datadir / NODE_GENESIS_FILE)
        log.info(
            "compose files written state=%s nodes=%d sealer=%s",
            cluster.settings.state_dir,
            len(cluster.specs),
            cluster.accounts.sealer.address,
        )
    finally:
        await cluster.aclose()


def write_kafka_files(data_dir: Path = KAFKA_DATA_DIR) -> None:
    """The principals' passwords (made once), and the broker's config, format arguments and
    health-check client settings (written on every run, from the settings)."""
    settings = KafkaSettings()
    broker = KafkaBroker(settings)
    broker.ensure_credentials()
    props = server_properties(settings, listen_host="0.0.0.0", log_dirs=data_dir)
    write_private(broker.config_file, properties_text(props, "devstack/compose_init.py"))
    if not broker.cluster_id_file.is_file():
        # What kafka-storage random-uuid prints: 16 random bytes, base64url without padding.
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        write_private(broker.cluster_id_file, f"{cluster_id}\n")
    cluster_id = broker.cluster_id_file.read_text().strip()
    arguments = format_arguments(settings, cluster_id, broker.config_file)
    write_private(
        settings.state_dir / KAFKA_FORMAT_ARGS, argument_file_text(STORAGE_TOOL, arguments)
    )
    admin_password = settings.admin_password_path.read_text().strip()
    client = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": SASL_MECHANISM,
        "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required"
        f' username="{settings.admin_username}" password="{admin_password}";',
    }
    write_private(
        settings.state_dir / KAFKA_CLIENT_PROPERTIES,
        properties_text(client, "devstack/compose_init.py"),
    )
    log.info("kafka files written config=%s", broker.config_file)


async def set_up_platform() -> None:
    """The sealing keys, the Kafka topics, then the platform token (deployed once per chain)."""
    ensure_sealing_keys(SealingSettings().dir)
    created = await KafkaBroker(KafkaSettings()).ensure_topics()
    log.info("kafka topics ready created=%d", len(created))
    cluster = _cluster()
    try:
        record = await ensure_platform(
            cluster.spec("node-1").rpc_url,
            cluster.settings.state_dir / "accounts",
            cluster.accounts.faucet,
            cluster.accounts.sealer.address,
            PlatformSettings(),
        )
        log.info("platform ready token=%s", record.token_address)
    finally:
        await cluster.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.compose_init")
    steps = parser.add_subparsers(dest="step", required=True)
    files = steps.add_parser("files", help="genesis, keys and static peers in the state volume")
    files.add_argument("--peer-address-base", required=True, help="the sealer's fixed address")
    steps.add_parser("platform", help="Kafka topics and the platform token")
    args = parser.parse_args(argv)
    keep_state_private()
    configure_logging()
    if args.step == "files":
        asyncio.run(write_files(args.peer_address_base))
        write_kafka_files()
    else:
        asyncio.run(set_up_platform())


if __name__ == "__main__":
    main()
