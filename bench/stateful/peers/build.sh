#!/usr/bin/env bash
# Builds the stateful bench's Java peers (Kafka Streams, Flink) with the installed JDK and Maven into
# .tools/stateful-peers/<peer>/{peer.jar,lib/}. Idempotent: a peer is skipped while its jar exists
# and its sources (pom.xml, src/) are unchanged. Offline first; online only when Maven's local
# repository lacks something (the first build fetches ~100 MB of jars).
#   bash bench/stateful/peers/build.sh [kafka-streams|flink ...]   # default: both
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
OUT_ROOT="$ROOT/.tools/stateful-peers"

sources_hash() { (cd "$1" && find pom.xml src -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1); }

build() {
  local peer="$1" src="$HERE/$1" out="$OUT_ROOT/$1"
  [ -f "$src/pom.xml" ] || { echo "no such peer: $peer" >&2; exit 2; }
  local hash; hash="$(sources_hash "$src")"
  if [ -f "$out/peer.jar" ] && [ -d "$out/lib" ] && [ "$(cat "$out/sources.sha256" 2>/dev/null)" = "$hash" ]; then
    echo "$peer peer up to date: $out"
    return
  fi
  rm -rf "$out/lib" "$out/peer.jar" "$out/sources.sha256"
  mkdir -p "$out"
  local goals=(-q -B -f "$src/pom.xml" "-Dpeer.out=$out" package dependency:copy-dependencies -DincludeScope=runtime "-DoutputDirectory=$out/lib")
  if ! mvn -o "${goals[@]}" >"$out/build.log" 2>&1; then
    rm -rf "$out/lib"
    mvn "${goals[@]}" >"$out/build.log" 2>&1 || { cat "$out/build.log" >&2; echo "$peer peer build failed" >&2; exit 1; }
  fi
  cp "$out/build/peer.jar" "$out/peer.jar"
  echo "$hash" >"$out/sources.sha256"
  echo "$peer peer built: $out ($(ls "$out/lib" | wc -l) jars)"
}

for peer in "${@:-kafka-streams flink}"; do
  for p in $peer; do build "$p"; done
done
