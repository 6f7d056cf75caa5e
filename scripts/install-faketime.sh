#!/usr/bin/env bash
# Installs Debian's `faketime` package (libfaketime, preloaded into one worker process by the
# clock-skew fault of `bench/chaos.ts`), unless its library is present. Idempotent, non-interactive.
set -euo pipefail
LIB=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
if [ -e "$LIB" ] || ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1; then
  echo "libfaketime already installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends faketime >/dev/null
ls /usr/lib/*/faketime/libfaketime.so.1
