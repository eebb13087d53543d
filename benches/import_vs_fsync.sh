#!/usr/bin/env bash
# `p2p-store import` of 1 GiB as 1024 files of 1 MiB into a fresh default (sled) store,
# against writing the same 1024 files with an fsync each, interleaved in one run.
# Prints per-round times, the ratio baseline/import (>= 1 means import is faster), the
# median ratio, and the store's disk use as a multiple of the data's size.
#
# Usage: benches/import_vs_fsync.sh [ROUNDS] [FILES]   (defaults: 3 rounds, 1024 files)
# Needs: a release build (`cargo build --release`), python3 for the baseline writer.
set -euo pipefail

rounds=${1:-3}
files=${2:-1024}
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "python3 is needed for the baseline writer" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/p2p-import-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
python3 - "$work/src" "$files" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, f"part-{i:05}.bin"), "wb") as f:
        f.write(os.urandom(1 << 20))
PY
data_bytes=$(du -sb "$work/src" | cut -f1)

baseline() {
    python3 - "$work/src" "$1" <<'PY'
import os, sys
src, dst = sys.argv[1], sys.argv[2]
os.mkdir(dst)
for name in sorted(os.listdir(src)):
    with open(os.path.join(src, name), "rb") as f:
        data = f.read()
    fd = os.open(os.path.join(dst, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    os.close(fd)
PY
}

import() {
    "$bin" -q --db "$1" import "$work"/src/* >/dev/null
}

# Warm up the page cache and the disk right before timing.
cat "$work"/src/* >/dev/null
baseline "$work/warm-baseline" && rm -rf "$work/warm-baseline"
import "$work/warm.db" && rm -rf "$work/warm.db"

ratios=()
printf '%-6s %12s %12s %8s\n' round fsync_s import_s ratio
for round in $(seq 1 "$rounds"); do
    b=$(seconds baseline "$work/baseline-$round")
    i=$(seconds import "$work/store-$round.db")
    ratio=$(awk -v b="$b" -v i="$i" 'BEGIN { print b / i }')
    ratios+=("$ratio")
    printf '%-6s %12.3f %12.3f %8.3f\n' "$round" "$b" "$i" "$ratio"
    store_bytes=$(du -sb "$work/store-$round.db" | cut -f1)
    rm -rf "$work/baseline-$round"
    [ "$round" = "$rounds" ] || rm -rf "$work/store-$round.db"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
gbps=$(awk -v d="$data_bytes" 'BEGIN { print d / 1e9 }')
printf 'median ratio (fsync baseline time / import time): %.3f\n' "$median"
printf 'data: %d bytes (%.2f GB); store on disk: %d bytes = %.3fx the data\n' \
    "$data_bytes" "$gbps" "$store_bytes" "$(awk -v s="$store_bytes" -v d="$data_bytes" 'BEGIN { print s / d }')"
