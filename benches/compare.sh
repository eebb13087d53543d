#!/usr/bin/env bash
# One run, warmed up, interleaved round by round, of moving the same 1 GiB over loopback:
#   raw:   `socat -b 1048576` file -> socket -> file, then an fsync of the result;
#   rsync: `rsync --fsync -W` into an rsync daemon on 127.0.0.1 (a generated config);
#   p2p:   `p2p-store send` of the GiB as 1024 parts of 1 MiB into a fresh `serve` (default
#          sled store, every part acknowledged only once durable);
# then SMALL_PARTS parts of 1 KiB pushed from a store into a fresh `serve` (parts/s), against
# sled's own rate for as many inserts of 1 KiB plus a flush, measured in the same run.
# Prints per-round times and ratios, medians, and a table for README.
#
# Usage: benches/compare.sh [ROUNDS] [SMALL_PARTS]   (defaults: 3 rounds, 100000 parts)
# Needs: a release build (`cargo build --release`), socat, rsync, python3; installs nothing.
set -euo pipefail

rounds=${1:-3}
small=${2:-100000}
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "${P2P_STORE_BIN:-$repo/target/release/p2p-store}")
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
for tool in socat rsync python3; do
    command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install $tool" >&2; exit 2; }
done

# shellcheck source=benches/lib.sh
source "$repo/benches/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/p2p-compare.XXXXXX")
server_pid=
rsync_pid=
cleanup() {
    [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
    [ -z "$rsync_pid" ] || kill "$rsync_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

python3 - "$small" <<'PY'
import os, sys
os.mkdir("parts")
for i in range(1024):
    with open(f"parts/part-{i:04}.bin", "wb") as f:
        f.write(os.urandom(1 << 20))
os.mkdir("small")
for i in range(int(sys.argv[1])):
    with open(f"small/s{i:06}", "wb") as f:
        f.write(os.urandom(1024))
PY
cat parts/* > whole.bin

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

fsync_file() {
    python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$1"
}

# raw: the listener writes the file, the sender reads it; then fsync the result.
raw_copy() {
    local port listener
    port=$(free_port)
    rm -f received.bin
    socat -u -b 1048576 "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" OPEN:received.bin,creat,trunc &
    listener=$!
    sleep 0.05
    raw_timed() {
        socat -u -b 1048576 OPEN:whole.bin "TCP:127.0.0.1:$port,retry=20,interval=0.01"
        wait "$listener"
        fsync_file received.bin
    }
    seconds raw_timed
}

# rsync: a daemon with one writable module; a whole-file copy of a file it does not have.
mkdir rsync-dst
printf 'use chroot = false\nuid = %s\ngid = %s\n[dst]\n    path = %s\n    read only = false\n' \
    "$(id -u)" "$(id -g)" "$work/rsync-dst" > rsyncd.conf
rsync_port=$(free_port)
rsync --daemon --no-detach --address=127.0.0.1 --port="$rsync_port" --config=rsyncd.conf &
rsync_pid=$!
until rsync "rsync://127.0.0.1:$rsync_port/" >/dev/null 2>&1; do sleep 0.05; done

rsync_copy() {
    rm -f rsync-dst/whole.bin
    seconds rsync --fsync -W whole.bin "rsync://127.0.0.1:$rsync_port/dst/"
}

push_parts() {
    start_server dst.db
    local t
    t=$(seconds "$bin" -q send --to "$addr" --json parts/*) || exit 1
    stop_server
    echo "$t"
}

# Warm up the page cache, the disk and the loopback path right before timing.
cat parts/* whole.bin > /dev/null
raw_copy > /dev/null
rsync_copy > /dev/null
push_parts > /dev/null

printf '%-6s %8s %8s %8s %10s %12s\n' round raw_s rsync_s p2p_s p2p/raw p2p/rsync
raws=()
rsyncs=()
p2ps=()
vs_raw=()
vs_rsync=()
for round in $(seq 1 "$rounds"); do
    r=$(raw_copy) || exit 1
    y=$(rsync_copy) || exit 1
    p=$(push_parts) || exit 1
    a=$(awk -v r="$r" -v p="$p" 'BEGIN { print r / p }')
    b=$(awk -v y="$y" -v p="$p" 'BEGIN { print y / p }')
    raws+=("$r")
    rsyncs+=("$y")
    p2ps+=("$p")
    vs_raw+=("$a")
    vs_rsync+=("$b")
    printf '%-6s %8.3f %8.3f %8.3f %10.3f %12.3f\n' "$round" "$r" "$y" "$p" "$a" "$b"
done
med_raw=$(printf '%s\n' "${vs_raw[@]}" | median)
med_rsync=$(printf '%s\n' "${vs_rsync[@]}" | median)
printf 'medians: raw %.3f s, rsync %.3f s, p2p %.3f s; p2p/raw %.3f, p2p/rsync %.3f\n' \
    "$(printf '%s\n' "${raws[@]}" | median)" "$(printf '%s\n' "${rsyncs[@]}" | median)" \
    "$(printf '%s\n' "${p2ps[@]}" | median)" "$med_raw" "$med_rsync"
echo "(ratios are the other tool's time over p2p-store's: above 1, p2p-store was faster)"

# Small parts: peer 2's store holds them; the push is timed from connect to the last ack.
rm -rf small.db
(cd small && ls | xargs "$bin" -q --db ../small.db import > /dev/null)
rates=()
for round in $(seq 1 "$rounds"); do
    start_server dst-small.db
    t=$(seconds "$bin" -q --db small.db send --to "$addr" --json) || exit 1
    stop_server
    rate=$(awk -v n="$small" -v t="$t" 'BEGIN { printf "%.0f", n / t }')
    rates+=("$rate")
    printf 'small round %s: %d parts of 1 KiB in %.3f s = %s parts/s\n' "$round" "$small" "$t" "$rate"
done
small_rate=$(printf '%s\n' "${rates[@]}" | median)
sled_line=$(cd "$repo" && cargo bench -q --bench sled_baseline -- "$small" 2>/dev/null | grep '^sled:')
echo "$sled_line"
sled_rate=$(echo "$sled_line" | awk '{print $NF}' | tr -d '/s')
small_ratio=$(awk -v a="$small_rate" -v b="$sled_rate" 'BEGIN { print a / b }')
printf 'small parts: median %s parts/s, %.3f of sled%ss own rate\n' "$small_rate" "$small_ratio" "'"

cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "| $(date +%Y-%m-%d), $(nproc) cores, $cpu | result |"
echo "| --- | --- |"
printf '| 1 GiB, p2p-store send (1 MiB parts, durable acks) vs socat + fsync | %.2f (median of %s rounds) |\n' \
    "$med_raw" "$rounds"
printf '| 1 GiB, p2p-store send vs rsync daemon (--fsync -W) | %.2f |\n' "$med_rsync"
printf '| %s parts of 1 KiB, p2p-store send | %s parts/s, %.2f of sled%ss own insert+flush (%s/s) |\n' \
    "$small" "$small_rate" "$small_ratio" "'" "$sled_rate"
