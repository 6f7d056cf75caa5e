#!/usr/bin/env bash
# Installs SAGE itself (PyPI package isage) into the ignored .tools/sage venv: the peer the bounded
# benchmark runs side by side with (bench/bounded/sage_baseline.py). Idempotent; ~2 s when pip fetches it.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${ISAGE_VERSION:-0.3.2.4}"
PY=".tools/sage/bin/python"
if [ -x "$PY" ] && "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('isage') != '$VERSION')" 2>/dev/null; then
  echo "isage $VERSION already installed: $PY"
  exit 0
fi
python3 -m venv .tools/sage
.tools/sage/bin/pip install --quiet --disable-pip-version-check "isage==$VERSION"
"$PY" -c "import importlib.metadata as m; print('isage', m.version('isage'), 'installed in .tools/sage')"
