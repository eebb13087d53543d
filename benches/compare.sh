#!/usr/bin/env bash
# `p2p-store send` of 1 GiB as 1024 parts of 1 MiB into a fresh `serve` (default sled store,
# durable acknowledgements) against a raw `socat -b 1048576` copy of the same GiB
# file -> socket -> file with an fsync of the result, interleaved in one run. Then the
# small-part rate: 100,000 parts of 1 KiB pushed from a store to a fresh `serve`.
#
# Usage: benches/push_vs_socat.sh [ROUNDS] [SMALL_PARTS]   (defaults: 3 rounds, 100000 parts)
# Needs: a release build (`cargo build --release`), socat, python3.
set -euo pipefail

rounds=${1:-3}
small=${2:-100000}
bin=$(realpath "${P2P_STORE_BIN:-target/release/p2p-store}")
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
command -v socat >/dev/null || { echo "socat is needed: apt-get install socat" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is needed to generate the data" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/p2p-push-bench.XXXXXX")
server_pid=
cleanup() {
    [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
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

seconds() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null || { echo "failed: $*" >&2; return 1; }
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { print b - a }'
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# socat: listener writes the file, sender reads it; then fsync the result.
raw_copy() {
    local port
    port=$(free_port)
    rm -f received.bin
    socat -u -b 1048576 "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" OPEN:received.bin,creat,trunc &
    local listener=$!
    while ! socat -u /dev/null "TCP:127.0.0.1:$port" 2>/dev/null; do sleep 0.01; done
    wait "$listener"
    socat -u -b 1048576 "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" OPEN:received.bin,creat,trunc &
    listener=$!
    sleep 0.05
    raw_timed() {
        socat -u -b 1048576 OPEN:whole.bin "TCP:127.0.0.1:$port"
        wait "$listener"
        python3 -c 'import os; fd=os.open("received.bin", os.O_RDONLY); os.fsync(fd)'
    }
    seconds raw_timed
}

start_server() {
    rm -rf "$1" serve.out
    "$bin" -q --db "$1" serve --listen 127.0.0.1:0 > serve.out &
    server_pid=$!
    addr=
    while [ -z "$addr" ]; do
        sleep 0.01
        addr=$(awk '/^listening on / { print $3; exit }' serve.out 2>/dev/null)
    done
}

stop_server() {
    kill -TERM "$server_pid"
    wait "$server_pid"
    server_pid=
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
push_parts > /dev/null

printf '%-6s %10s %10s %8s\n' round raw_s push_s ratio
ratios=()
for round in $(seq 1 "$rounds"); do
    r=$(raw_copy) || exit 1
    p=$(push_parts) || exit 1
    ratio=$(awk -v r="$r" -v p="$p" 'BEGIN { print r / p }')
    ratios+=("$ratio")
    printf '%-6s %10.3f %10.3f %8.3f\n' "$round" "$r" "$p" "$ratio"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
printf '1 GiB, 1 MiB parts: median ratio (raw time / push time): %.3f\n' "$median"

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
printf 'small parts: median %s parts/s\n' "$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
