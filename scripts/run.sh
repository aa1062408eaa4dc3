#!/usr/bin/env bash
# Runs the ds daemon on an embedded store under ./var: API on 127.0.0.1:8080, the mount
# at ./var/mnt (when FUSE is usable) and the inbox at ./var/inbox.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export DS_STORE=${DS_STORE:-$PWD/var/store}
mkdir -p var/mnt var/inbox "$DS_STORE"
args=(--host 127.0.0.1 --port "${DS_PORT:-8080}" --inbox var/inbox)
if [ -e /dev/fuse ] && command -v fusermount3 >/dev/null; then
  args+=(--mount var/mnt)
fi
exec "$VENV/bin/ds" serve "${args[@]}"
