#!/usr/bin/env bash
# Installs what ds needs on a fresh Debian machine: FUSE 3 and the tools the tests drive
# (rsync, git, sqlite3, e2fsprogs), then a virtualenv with ds and its test and dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

need=()
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v rsync >/dev/null || need+=(rsync)
command -v git >/dev/null || need+=(git)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)  # the power-loss test's loop device
command -v losetup >/dev/null || need+=(mount)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# the install is current when its stamp is newer than pyproject.toml (the dependency
# list) and ds imports: then a second 'make run' or 'make test' starts in seconds
stamp="$VENV/.installed"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ -x "$VENV/bin/python" ] \
  && "$VENV/bin/python" -c 'import datastore, cli, httpapi, mount' 2>/dev/null; then
  echo "ds: $VENV is up to date"
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e '.[test,dev]'
touch "$stamp"
