#!/usr/bin/env bash
# Installs everything the stack and the tests need, into git-ignored folders of
# the repository (.venv, .tools, node_modules), reusing the user's caches
# (~/.cache/ethgw, Go's, Maven's, npm's, uv's) so a fresh clone is quick.
# Idempotent: a second run only checks stamps and finishes in seconds.
set -euo pipefail

ROOT="$(cd "${BASH_SOURCE[0]%/*}/.." && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ethgw"
GETH_VERSION="v1.13.15"
UV_VERSION="0.13.9"

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }

# -- 1. every tool first, so a missing one stops us before anything is written --
declare -A HOW_TO_GET=(
  [python3]="Python 3.11: apt-get install -y python3.11 python3.11-venv (or pyenv install 3.11)"
  [go]="Go >= 1.21: https://go.dev/doc/install, or apt-get install -y golang"
  [gcc]="gcc (geth builds with cgo): apt-get install -y build-essential"
  [java]="a JDK 17: apt-get install -y openjdk-17-jdk-headless"
  [mvn]="Maven: apt-get install -y maven"
  [node]="Node.js >= 18: apt-get install -y nodejs"
  [npm]="npm: apt-get install -y npm"
)
missing=0
for tool in python3 go gcc java mvn node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    printf 'bootstrap: required tool %s is missing. Install %s\n' "$tool" "${HOW_TO_GET[$tool]}" >&2
    missing=1
  fi
done
[ "$missing" -eq 0 ] || exit 1
python3 -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))' \
  || die "python3 is $(python3 --version 2>&1); ethgw needs Python 3.11 or 3.12. Install ${HOW_TO_GET[python3]}"

# Run a long command with its output in a log, printing a line every 15 s so
# the user sees it is moving; show the log's tail if it fails.
run_with_progress() {
  local what="$1" log="$2"; shift 2
  say "$what (log: $log)"
  "$@" >"$log" 2>&1 &
  local pid=$! started=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( (SECONDS - started) % 15 == 0 )); then
      say "  ... still $what ($((SECONDS - started)) s)"
    fi
  done
  if ! wait "$pid"; then
    tail -n 30 "$log" >&2
    die "$what failed; full log: $log"
  fi
  say "  done in $((SECONDS - started)) s"
}

mkdir -p "$CACHE" "$ROOT/.tools/bin"

# -- 2. Python virtual environment from the pinned dev lock -----------------------
# The dev lock is the runtime lock (requirements.lock, the service image's) plus the bench
# and dev extras. Both locks and the install recipe are part of the stamp: changing either
# lock, or how we install, reinstalls.
lock_stamp="$( (cat "$ROOT/requirements.lock" "$ROOT/requirements-dev.lock" "$ROOT/pyproject.toml"
  echo "editable=compat require-hashes") | sha256sum | cut -c1-16)"
if [ "$(cat "$ROOT/.venv/.ethgw-stamp" 2>/dev/null)" != "$lock_stamp" ]; then
  [ -x "$ROOT/.venv/bin/python" ] || python3 -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
  say "installing Python dependencies from requirements-dev.lock"
  # Every file must match a hash of the lock: a changed file on the index stops the install.
  "$ROOT/.venv/bin/uv" pip install -q --python "$ROOT/.venv/bin/python" --require-hashes \
    -r "$ROOT/requirements-dev.lock"
  # compat mode is a plain path entry: packages added later are importable at once.
  "$ROOT/.venv/bin/uv" pip install -q --python "$ROOT/.venv/bin/python" --no-deps \
    --config-settings editable_mode=compat -e "$ROOT"
  echo "$lock_stamp" >"$ROOT/.venv/.ethgw-stamp"
fi
say "python: $("$ROOT/.venv/bin/python" --version)"

# -- 3. Geth, built once per user through the Go module proxy -----------------------
geth_cached="$CACHE/geth-$GETH_VERSION/geth"
if [ ! -x "$geth_cached" ]; then
  ldflags=""
  # Go >= 1.23 refuses geth 1.13's memsize dependency's linkname without this.
  if [ "$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')" -ge 23 ]; then
    ldflags="-checklinkname=0"
  fi
  run_with_progress "building geth $GETH_VERSION with $(go env GOVERSION) (2-5 min the first time)" \
    "$CACHE/geth-build.log" \
    env CGO_ENABLED=1 GOBIN="$CACHE/geth-$GETH_VERSION" \
    go install -ldflags="$ldflags" "github.com/ethereum/go-ethereum/cmd/geth@$GETH_VERSION"
fi
ln -sfn "$geth_cached" "$ROOT/.tools/bin/geth"
say "geth: $("$ROOT/.tools/bin/geth" version | sed -n 's/^Version: //p')"

# -- 4. Apache Kafka jars through Maven ---------------------------------------------
bash "$ROOT/scripts/bootstrap_kafka.sh"

# -- 5. The Solidity compiler through npm --------------------------------------------
if [ ! -f "$ROOT/node_modules/.ethgw-stamp" ] \
   || ! cmp -s "$ROOT/package-lock.json" "$ROOT/node_modules/.ethgw-stamp"; then
  run_with_progress "installing solc from npm" "$CACHE/npm.log" \
    npm ci --prefix "$ROOT" --no-audit --no-fund
  cp "$ROOT/package-lock.json" "$ROOT/node_modules/.ethgw-stamp"
fi
say "solc: $(node -e 'console.log(require(process.argv[1]).version())' "$ROOT/node_modules/solc")"

# -- 6. The contracts, compiled for EVM paris into .tools/contracts (skipped when unchanged) --
say "compiling contracts"
node "$ROOT/scripts/compile_contracts.js"
# -- 7. docker-compose, only to validate compose.yaml (tests/compose); never run here --
# Debian's docker-compose (1.29, the Compose Specification) checks the file offline;
# Docker's compose plugin is not packaged by Debian. Installed as root only; without it
# the compose test uses its own checks and says that docker-compose is missing.
if ! command -v docker-compose >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  if ! apt-cache show docker-compose >/dev/null 2>&1; then
    apt-get update -o DPkg::Lock::Timeout=600 >"$CACHE/apt-update.log" 2>&1 || true
  fi
  run_with_progress "installing docker-compose from Debian" "$CACHE/apt-docker-compose.log" \
    env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -o DPkg::Lock::Timeout=600 --no-install-recommends docker-compose
fi

say "ready"
