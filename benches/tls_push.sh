#!/usr/bin/env bash
# What TLS costs a push: `p2p-store send` of 1 GiB as 1024 parts of 1 MiB into a fresh
# `serve` (default sled store, every part acknowledged only once durable), encrypted (TLS 1.3,
# the default) against plaintext frames of the same build (`--plaintext-on-loopback`, a hidden
# flag refused off loopback), interleaved round by round after a warm-up round of each.
# Prints each round's seconds and ratio (plaintext time / TLS time: 1.0 means TLS costs
# nothing), then the median and worst ratio.
#
# Usage: benches/tls_push.sh [ROUNDS]   (default 7; needs a release build and python3)
set -euo pipefail

rounds=${1:-7}
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "${P2P_STORE_BIN:-$repo/target/release/p2p-store}")
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }

# shellcheck source=benches/lib.sh
source "$repo/benches/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/p2p-tls.XXXXXX")
server_pid=
cleanup() {
    [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

python3 - <<'PY'
import os
os.mkdir("parts")
for i in range(1024):
    with open(f"parts/part-{i:04}.bin", "wb") as f:
        f.write(os.urandom(1 << 20))
PY

# push MODE: seconds for one send of every part into a fresh server, MODE tls or plain.
push() {
    local flag=()
    [ "$1" = plain ] && flag=(--plaintext-on-loopback)
    start_server served.db "${flag[@]}"
    local took
    took=$(seconds "$bin" -q "${flag[@]}" send --to "$addr" parts/*)
    stop_server
    echo "$took"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

push tls >/dev/null
push plain >/dev/null
: > ratios
printf '%-6s %8s %8s %7s\n' round tls plain ratio
for round in $(seq "$rounds"); do
    tls=$(push tls)
    plain=$(push plain)
    ratio=$(awk -v t="$tls" -v p="$plain" 'BEGIN { printf "%.3f", p / t }')
    echo "$ratio" >> ratios
    printf '%-6s %8.3f %8.3f %7s\n' "$round" "$tls" "$plain" "$ratio"
done
printf 'median ratio %s, worst %s (goal: at least 0.85)\n' \
    "$(median < ratios)" "$(sort -g ratios | head -1)"
