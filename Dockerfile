# One image for every ethgw Python service; the command picks the service, e.g.
#   docker run ethgw gateway | provider | read_service | write_service | geth_cluster.api
# (the entrypoint is `python -m`). compose.yaml builds it; it is not built or run in CI.

# The token contract, compiled as `make bootstrap` does (solc-js from npm, EVM paris).
FROM node:20-bookworm-slim AS contracts
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY scripts/compile_contracts.js scripts/
COPY contracts/ contracts/
RUN node scripts/compile_contracts.js --out /src/.tools/contracts

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    ETHGW_TOOLS_DIR=/app/.tools \
    ETHGW_STATE_DIR=/state
WORKDIR /app
# The runtime lock only (no benchmark, test or lint tools), first, so a code change does not
# reinstall the dependencies. Every file must match one of the lock's hashes.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY ethgw_wire/ ethgw_wire/
COPY service_kit/ service_kit/
COPY consumer_service/ consumer_service/
COPY balancer/ balancer/
COPY geth_cluster/ geth_cluster/
COPY gateway/ gateway/
COPY read_service/ read_service/
COPY write_service/ write_service/
COPY provider/ provider/
COPY devstack/ devstack/
COPY ethgw/ ethgw/
COPY --from=contracts /src/.tools/contracts .tools/contracts
# The state's volumes (compose.yaml mounts each part only where it is needed) are born owned
# by the service user, private (Docker copies the mount point's owner and mode into an empty
# named volume). The manager alone runs as root, for the Docker socket.
RUN useradd --system --uid 10001 --home-dir /state ethgw \
    && mkdir -p /state/auth /state/gateway /state/cluster/accounts /state/platform /state/sealing \
       /state/kafka-config /state/kafka-admin /state/kafka-platform /state/kafka-data \
       /state/cluster/sealer /state/cluster/node-1 /state/cluster/node-2 /state/cluster/node-3 \
    && chown -R ethgw /state && chmod -R 0700 /state
USER ethgw
ENTRYPOINT ["python", "-m"]
CMD ["gateway"]
