#!/usr/bin/env bash
# Fetch the Apache Kafka broker jars pinned in build/kafka/pom.xml and link them
# at .tools/kafka (the broker runs with java -cp '.tools/kafka/*').
#
# Idempotent and cached: the jars live in ~/.cache/ethgw/kafka-<version>/libs,
# shared by every clone on the machine; a stamp file holding the pom's hash marks
# the copy as complete. A second run only re-links and takes well under a second.
#
# Environment: ETHGW_TOOLS_DIR (default <repo>/.tools), XDG_CACHE_HOME (default ~/.cache).
set -euo pipefail

KAFKA_VERSION=3.9.1 # keep in step with <kafka.version> in build/kafka/pom.xml
INSTALL_HINT="apt-get install -y openjdk-17-jdk-headless maven"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POM="$REPO_ROOT/build/kafka/pom.xml"
TOOLS_DIR="${ETHGW_TOOLS_DIR:-$REPO_ROOT/.tools}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/ethgw/kafka-$KAFKA_VERSION"
LIBS="$CACHE_DIR/libs"
STAMP="$CACHE_DIR/complete.stamp"

say() { printf 'bootstrap-kafka: %s\n' "$*"; }
die() {
    printf 'bootstrap-kafka: error: %s\n' "$*" >&2
    exit 1
}

# The broker needs java at run time and mvn fetches the jars; check both up front
# so a newcomer learns about both missing tools at once, not one per run.
missing=()
command -v java >/dev/null 2>&1 || missing+=(java)
command -v mvn >/dev/null 2>&1 || missing+=(mvn)
if ((${#missing[@]})); then
    die "missing tool(s): ${missing[*]} (Kafka $KAFKA_VERSION needs a JDK >= 11 and Maven); install with: $INSTALL_HINT"
fi
java_major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\(\.[0-9]*\)*.*/\1/p' | head -n1)"
if [[ "$java_major" == 1 ]]; then java_major=8; fi # "1.8.0_x" is Java 8
if [[ -z "$java_major" || "$java_major" -lt 11 ]]; then
    die "java ${java_major:-of unknown version} is too old (Kafka $KAFKA_VERSION needs >= 11); install with: $INSTALL_HINT"
fi

pom_hash="$(sha256sum "$POM" | cut -d' ' -f1)"

link_tools() {
    mkdir -p "$TOOLS_DIR"
    # Swap the link with a rename so a broker starting meanwhile never sees a
    # missing .tools/kafka; a real folder left by an older layout is replaced.
    if [[ -d "$TOOLS_DIR/kafka" && ! -L "$TOOLS_DIR/kafka" ]]; then
        rm -rf "$TOOLS_DIR/kafka"
    fi
    ln -sfn "$LIBS" "$TOOLS_DIR/kafka.tmp.$$"
    mv -Tf "$TOOLS_DIR/kafka.tmp.$$" "$TOOLS_DIR/kafka"
}

is_complete() { [[ -f "$STAMP" && "$(cat "$STAMP")" == "$pom_hash" && -d "$LIBS" ]]; }

if is_complete; then
    link_tools
    say "Kafka $KAFKA_VERSION jars cached in $LIBS; linked $TOOLS_DIR/kafka"
    exit 0
fi

mkdir -p "$CACHE_DIR"
# Two clones bootstrapping at once must not interleave their copies.
exec 9>"$CACHE_DIR/.lock"
flock 9
if is_complete; then # the other run finished while we waited
    link_tools
    say "Kafka $KAFKA_VERSION jars cached in $LIBS; linked $TOOLS_DIR/kafka"
    exit 0
fi

tmp="$(mktemp -d "$CACHE_DIR/libs.tmp.XXXXXX")"
mvn_log="$CACHE_DIR/mvn.log"
mvn_pid=""
cleanup() {
    if [[ -n "$mvn_pid" ]]; then kill "$mvn_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "fetching Kafka $KAFKA_VERSION jars from Maven Central (57 jars, 46 MB; log: $mvn_log)..."
started=$SECONDS
# Not -q and not --no-transfer-progress: the "Downloaded from" lines are what the
# progress lines below count.
mvn -B -f "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mvn_log" 2>&1 &
mvn_pid=$!
# A heartbeat every ~10 s: a cold fetch takes tens of seconds and must not look hung.
while kill -0 "$mvn_pid" 2>/dev/null; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        sleep 1
        kill -0 "$mvn_pid" 2>/dev/null || break
    done
    if kill -0 "$mvn_pid" 2>/dev/null; then
        # Count jars only: Maven also fetches hundreds of small .pom files.
        jars="$(grep -E 'Downloaded from .*\.jar ' "$mvn_log" | sed 's| (.*||; s|.*/||' || true)"
        count="$(printf '%s' "$jars" | grep -c . || true)"
        say "  ... $((SECONDS - started)) s, $count jars downloaded${jars:+, last: ${jars##*$'\n'}}"
    fi
done
if ! wait "$mvn_pid"; then
    mvn_pid=""
    grep -E '^\[ERROR\]' "$mvn_log" | head -n 20 >&2 || tail -n 20 "$mvn_log" >&2
    die "mvn dependency:copy-dependencies failed (full log: $mvn_log); Maven Central must be reachable"
fi
mvn_pid=""

# Refuse a copy that lacks what the broker cannot start without.
for jar in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-clients-$KAFKA_VERSION.jar" slf4j-reload4j-1.7.36.jar; do
    [[ -f "$tmp/$jar" ]] || die "$jar missing after the fetch (see $mvn_log)"
done

# Move into place, then stamp: a run killed before the stamp refetches next time.
rm -rf "$LIBS"
mv "$tmp" "$LIBS"
printf '%s\n' "$pom_hash" >"$STAMP"
link_tools
count="$(find "$LIBS" -name '*.jar' | wc -l)"
size="$(du -sh "$LIBS" | cut -f1)"
say "fetched $count jars ($size) in $((SECONDS - started)) s into $LIBS; linked $TOOLS_DIR/kafka"
