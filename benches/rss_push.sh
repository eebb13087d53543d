#!/usr/bin/env bash
# Peak resident memory of `serve` and of `send` while one large file (default 4 GiB) is
# pushed into a fresh default (sled) store, as `/usr/bin/time -v` reports it.
#
# Usage: benches/rss_push.sh [GIB]   (default 4)
# Needs: a release build (`cargo build --release`), GNU time at /usr/bin/time (package `time`).
set -euo pipefail

gib=${1:-4}
bin=$(realpath "${P2P_STORE_BIN:-target/release/p2p-store}")
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "GNU time is needed: apt-get install time" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/p2p-rss-bench.XXXXXX")
server=
cleanup() {
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

head -c "$((gib * 1024 * 1024 * 1024))" /dev/urandom > big.bin

/usr/bin/time -v -o serve.time "$bin" -q --db store.db serve --listen 127.0.0.1:0 > serve.out &
timed=$!
addr=
while [ -z "$addr" ]; do
    sleep 0.01
    addr=$(awk '/^listening on / { print $3; exit }' serve.out 2>/dev/null)
done
server=$(pgrep -P "$timed")
/usr/bin/time -v -o send.time "$bin" -q send --to "$addr" --json big.bin
kill -TERM "$server"
wait "$timed"
server=

peak() { awk -F': ' '/Maximum resident/ { printf "%.1f MiB", $2 / 1024 }' "$1"; }
took() { awk -F': ' '/Elapsed/ { print $2 }' "$1"; }
echo "pushed $gib GiB in $(took send.time): peak RSS serve $(peak serve.time), send $(peak send.time)"
