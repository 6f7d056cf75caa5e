#!/usr/bin/env bash
# Builds the real Temporal server (not the dev server) and its SQL schema tool from the Go module
# go.temporal.io/server into the ignored .tools/temporal-server, for scripts/temporal-cluster.sh:
#   .tools/temporal-server/server             frontend/history/matching/worker services
#   .tools/temporal-server/temporal-sql-tool  creates and migrates the PostgreSQL schemas
#   .tools/temporal-server/schema/            the module's schema/ directory (postgresql/v12/...)
# The module needs a newer Go than the installed one: GOTOOLCHAIN=auto fetches it as a module.
# Everything comes through the Go module proxy (the "direct" VCS fallback is dropped). Idempotent;
# not part of npm test or CI: a cold build takes minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${TEMPORAL_SERVER_VERSION:-v1.32.2}"
DIR="$PWD/.tools/temporal-server"
STAMP="$DIR/VERSION"
if [ -x "$DIR/server" ] && [ -x "$DIR/temporal-sql-tool" ] && [ -d "$DIR/schema" ] \
  && [ "$(cat "$STAMP" 2>/dev/null)" = "$VERSION" ]; then
  echo "temporal server $VERSION already built: $DIR/server"
  exit 0
fi
mkdir -p "$DIR"
PROXY="$(go env GOPROXY | sed -e 's/[,|]direct$//' -e 's/^direct$/off/')"
export GOTOOLCHAIN=auto GOPROXY="$PROXY" GOFLAGS=-mod=mod GOBIN="$DIR"
START=$(date +%s)
nice -n 10 go install "go.temporal.io/server/cmd/server@$VERSION"
nice -n 10 go install "go.temporal.io/server/cmd/tools/sql@$VERSION"
mv -f "$DIR/sql" "$DIR/temporal-sql-tool"
# The schema files ship in the module source; copy them so the cluster script needs no Go.
MODDIR="$(GOFLAGS= go mod download -json "go.temporal.io/server@$VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
rm -rf "$DIR/schema"
cp -r "$MODDIR/schema" "$DIR/schema"
chmod -R u+w "$DIR/schema"
echo "$VERSION" >"$STAMP"
echo "temporal server $VERSION built in $(($(date +%s) - START)) s: $(du -h "$DIR/server" | cut -f1) $DIR/server"
