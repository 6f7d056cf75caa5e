#!/usr/bin/env bash
# Builds the native binding of @confluentinc/kafka-javascript (librdkafka, the `kafka.client:
# confluent` client) after `npm ci`. package.json's allowScripts denies the package's own install
# script: it fetches a prebuilt binary and, failing that, sources of zlib, OpenSSL, zstd and curl
# from outside the registries. Here librdkafka, which ships in the package, is built against
# Debian's OpenSSL and zlib instead (CKJS_LINKING=dynamic; ~4 CPU-minutes). The result is kept in a
# cache outside the checkout, by package version and Node ABI, so a fresh clone copies it back.
# Idempotent and non-interactive.
set -euo pipefail
cd "$(dirname "$0")/.."
PKG=node_modules/@confluentinc/kafka-javascript
if [ ! -f "$PKG/package.json" ]; then
  echo "install-confluent-kafka: $PKG is missing: run npm ci first" >&2
  exit 1
fi
loads() { node -e 'require("@confluentinc/kafka-javascript")' >/dev/null 2>&1; }
if loads; then
  echo "@confluentinc/kafka-javascript binding already built"
  exit 0
fi
VERSION=$(node -p 'require("./'"$PKG"'/package.json").version')
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/sage/confluent-kafka-javascript-$VERSION-node-$(node -p process.versions.modules)-$(uname -m).tar"
if [ -f "$CACHE" ]; then
  tar -xf "$CACHE" -C "$PKG"
  if loads; then
    echo "@confluentinc/kafka-javascript $VERSION binding restored from $CACHE"
    exit 0
  fi
  echo "install-confluent-kafka: the cached build in $CACHE does not load: building again" >&2
fi
# A compiler, make and python3 for node-gyp; OpenSSL (TLS, SASL SCRAM) and zlib headers for librdkafka.
MISSING=()
for p in g++ make python3 pkg-config libssl-dev zlib1g-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || MISSING+=("$p")
done
if [ ${#MISSING[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${MISSING[@]}" >/dev/null
fi
# node-gyp must use the installed Node's headers: it would download them otherwise.
NODEDIR="${npm_config_nodedir:-$(npm config get nodedir 2>/dev/null || true)}"
if [ -z "$NODEDIR" ] || [ "$NODEDIR" = "undefined" ] || [ "$NODEDIR" = "null" ]; then NODEDIR=$(dirname "$(dirname "$(command -v node)")"); fi
if [ ! -f "$NODEDIR/include/node/node_api.h" ]; then
  echo "install-confluent-kafka: no Node headers under $NODEDIR/include/node (node-gyp would download them): install Node with its headers" >&2
  exit 1
fi
export npm_config_nodedir="$NODEDIR"
PRE_GYP=$(node -p 'require.resolve("@mapbox/node-pre-gyp/bin/node-pre-gyp", { paths: ["'"$PKG"'"] })')
LOG=$(mktemp)
if ! (cd "$PKG" && CKJS_LINKING=dynamic node "$PRE_GYP" install --build-from-source) >"$LOG" 2>&1; then
  tail -n 40 "$LOG" >&2
  echo "install-confluent-kafka: the build failed (full log: $LOG)" >&2
  exit 1
fi
rm -f "$LOG"
loads || { echo "install-confluent-kafka: built, but the binding does not load" >&2; exit 1; }
mkdir -p "$(dirname "$CACHE")"
(cd "$PKG" && tar -cf "$CACHE.tmp" build/Release/confluent-kafka-javascript.node build/deps/librdkafka.so* build/deps/librdkafka++.so*) && mv "$CACHE.tmp" "$CACHE"
node -e 'const k = require("@confluentinc/kafka-javascript"); console.log(`@confluentinc/kafka-javascript built: librdkafka ${k.librdkafkaVersion} (${k.features.join(", ")})`)'
