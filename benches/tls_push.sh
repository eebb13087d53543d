#!/usr/bin/env bash
# What TLS costs a push: `p2p-store send` of 1 GiB as 1024 parts of 1 MiB into a fresh
# `serve` (default sled store, every part acknowledged only once durable), encrypted (TLS 1.3,
# the default) against plaintext frames of the same build (`--plaintext-on-loopback`, a hidden
# flag refused off loopback), interleaved round by round after a warm-up round of each.
# Prints each round's seconds, ratio (plaintext time / TLS time: 1.0 means TLS costs nothing)
# and CPU seconds (user + system of both processes), then the median and worst ratio and the
# median CPU seconds of each mode.
#
# Usage: benches/tls_push.sh [ROUNDS]   (default 7; needs a release build and python3)
set -euo pipefail

rounds=${1:-7}
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

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

# push MODE: "seconds cpu_seconds" of one push of every part into a fresh server, MODE tls
# or plain.
push() {
    send_flags=()
    local serve_flags=()
    if [ "$1" = plain ]; then
        send_flags=(--plaintext-on-loopback)
        serve_flags=(--plaintext-on-loopback)
    fi
    push_parts served.db "${serve_flags[@]}"
}

push tls >/dev/null
push plain >/dev/null
: > ratios
: > cpu.tls
: > cpu.plain
printf '%-6s %8s %8s %7s %9s %9s\n' round tls plain ratio cpu-tls cpu-plain
for round in $(seq "$rounds"); do
    took=$(push tls) || exit 1
    read -r tls tls_cpu <<< "$took"
    took=$(push plain) || exit 1
    read -r plain plain_cpu <<< "$took"
    ratio=$(awk -v t="$tls" -v p="$plain" 'BEGIN { printf "%.3f", p / t }')
    echo "$ratio" >> ratios
    echo "$tls_cpu" >> cpu.tls
    echo "$plain_cpu" >> cpu.plain
    printf '%-6s %8.3f %8.3f %7s %9.2f %9.2f\n' "$round" "$tls" "$plain" "$ratio" "$tls_cpu" "$plain_cpu"
done
printf 'median ratio %s, worst %s (goal: at least 0.85)\n' \
    "$(median < ratios)" "$(sort -g ratios | head -1)"
printf 'median CPU seconds per GiB, both processes: TLS %.2f, plaintext %.2f\n' \
    "$(median < cpu.tls)" "$(median < cpu.plain)"
