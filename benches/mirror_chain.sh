#!/usr/bin/env bash
# How long a file pushed to A takes to reach C through the mirrors A <- B <- C (`serve
# --mirror`): three release servers on loopback, default sled stores, every part durable.
# Each round pushes a new file to A and polls C's listing until it is there; prints the push's
# seconds and the seconds from the push's end to the file's arrival at C, then the median and
# worst of each.
#
# Usage: benches/mirror_chain.sh [ROUNDS] [BYTES]   (default 7 rounds of 1 KiB; a release build)
set -euo pipefail

rounds=${1:-7}
bytes=${2:-1024}
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/p2p-mirror.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

# serve NAME [OPTIONS...]: serves a fresh store NAME.db on a free port; sets `at` to its
# address (not through $(...): the server must stay this shell's child, to be stopped).
serve() {
    local name=$1
    shift
    "$bin" -q --db "$name.db" serve --listen 127.0.0.1:0 "$@" > "$name.out" 2> "$name.err" &
    pids+=($!)
    at=
    while [ -z "$at" ]; do
        sleep 0.01
        at=$(awk '/^listening on / { print $3; exit }' "$name.out" 2>/dev/null)
    done
}

serve a
a=$at
serve b --mirror "$a"
b=$at
serve c --mirror "$b"
c=$at

# arrival NAME: seconds until C lists NAME, polled every 10 ms.
arrival() {
    local start end
    start=$(date +%s.%N)
    until "$bin" list --from "$c" | grep -q "^$1	"; do sleep 0.01; done
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { print b - a }'
}

pushes=()
arrivals=()
for round in $(seq 0 "$rounds"); do
    name="round-$round.bin"
    head -c "$bytes" /dev/urandom > "$name"
    push=$(seconds "$bin" send --to "$a" "$name")
    reached=$(arrival "$name")
    # Round 0 warms the caches and the mirrors' connections up, and is not counted.
    [ "$round" = 0 ] && continue
    printf 'round %d: push %.3f s, then at C after %.3f s\n' "$round" "$push" "$reached"
    pushes+=("$push")
    arrivals+=("$reached")
done
echo "$bytes bytes, A <- B <- C:"
spread push lower "${pushes[@]}"
spread "at C after" lower "${arrivals[@]}"
