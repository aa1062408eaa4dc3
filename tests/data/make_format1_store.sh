#!/usr/bin/env bash
# How tests/data/format1-store was made: by the code of commit b7fbb46 (store format 1,
# catalog schema 3), before forget, ownership and later schemas. Kept so a newer ds is
# proven to open, read, write and fsck a store an older one wrote. Run from the repo
# root; it writes /tmp/format1-store and never touches the checked-in copy.
set -euo pipefail
OLD=$(mktemp -d)
WORK=$(mktemp -d)
git archive b7fbb46 | tar -x -C "$OLD"
PY="$PWD/.venv/bin/python"
ds() { (cd "$OLD" && DS_STORE="$WORK/store" PYTHONPATH="$OLD" "$PY" -c "from cli.main import ds; ds()" "$@"); }
SRC="$WORK/src"
mkdir -p "$SRC/sub"
ds init
ds create sales -d "monthly sales"
printf 'region,amount\nnorth,10\nsouth,20\n' > "$SRC/2026-10.csv"
printf 'hello\n' > "$SRC/sub/readme.txt"
printf 'x%.0s' $(seq 1 3000) > "$SRC/sub/big.txt"
chmod 600 "$SRC/sub/readme.txt"
ds put sales "$SRC/2026-10.csv"
ds put sales "$SRC/sub" --to sub
ds snapshot sales --tag v1.0 -m "October"
printf 'region,amount\nnorth,11\n' > "$SRC/2026-11.csv"
ds put sales "$SRC/2026-11.csv"
ds rm sales/sub/big.txt
ds snapshot sales --tag v1.1 -m "November"
ds tag sales v1.0 prod
ds tag sales v1.1 prod --force
ds tag sales v1.0 rc
ds untag sales rc
ds create derived
printf 'total\n41\n' > "$SRC/total.csv"
ds put derived "$SRC/total.csv"
ds snapshot derived --source sales@v1.1 --tag d1
printf 'late\n' > "$SRC/late.txt"
ds put sales "$SRC/late.txt" --to staged
ds rm sales/2026-10.csv
ds fsck
rm -rf /tmp/format1-store && cp -a "$WORK/store" /tmp/format1-store
rm -f /tmp/format1-store/locks/*.lock
find /tmp/format1-store -type d -empty -delete
rm -rf "$OLD" "$WORK"
echo "made /tmp/format1-store"
