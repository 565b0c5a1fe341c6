#!/bin/sh
# One Geth node of compose.yaml: `geth init` on the first start, then geth with the ports of
# geth_cluster.layout (base + index) and the flags of GethCluster.geth_args, except that a
# service node's RPC and P2P listen on the compose network (never published) instead of
# loopback. The sealer serves no HTTP: its account is unlocked to seal, so its only RPC is
# its IPC socket in a 0700 folder of the chain's volume, which the manager (root) opens.
# The node mounts its own folder of the chain's volume only (genesis, peers, keys are in it).
# NODE_NAME and NODE_INDEX come from compose.yaml; the files from `devstack.compose_init files`.
set -eu
umask 077
DATA="/state/cluster/$NODE_NAME"
P2P=$((30303 + NODE_INDEX))
RPC=$((8545 + NODE_INDEX))
AUTH=$((8651 + NODE_INDEX))
if [ ! -d "$DATA/geth/chaindata" ]; then
  geth init --datadir "$DATA" "$DATA/genesis.json"
fi
set -- --datadir "$DATA" --config "$DATA/config.toml" --networkid "${CHAIN_ID:-4242}" \
  --nodiscover --port "$P2P" --authrpc.addr 127.0.0.1 --authrpc.port "$AUTH" \
  --syncmode full --cache 128 \
  --txpool.accountslots 256 --txpool.globalslots 10240 --verbosity 3
if [ "$NODE_INDEX" = 0 ]; then
  ADDRESS="$(cat "$DATA/etherbase")"
  mkdir -p "$DATA/ipc" && chmod 700 "$DATA/ipc"
  set -- "$@" --ipcpath "$DATA/ipc/geth.ipc" \
    --mine --miner.etherbase "$ADDRESS" --miner.gaslimit 30000000 \
    --unlock "$ADDRESS" --password "$DATA/password"
else
  set -- "$@" --http --http.addr 0.0.0.0 --http.port "$RPC" --http.vhosts '*' \
    --http.api eth,net,web3,txpool --ipcdisable
fi
exec geth "$@"
