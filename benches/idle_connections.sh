#!/usr/bin/env bash
# A bulk push while `serve` holds 10,000 idle connections (TLS and Hello done), against the same push
# with none, interleaved in one run; and the server's peak RSS under that load.
#
# Usage: benches/idle_connections.sh [ROUNDS] [CONNECTIONS]   (defaults: 7 rounds, 10000)
# Needs: a release build (`cargo build --release`), python3, openssl, a hard open-file limit above
# CONNECTIONS (`ulimit -Hn`).
set -euo pipefail

rounds=${1:-7}
idle=${2:-10000}
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "python3 is needed for the idle clients" >&2; exit 2; }

# The idle connections all come from 127.0.0.1, so the per-address cap is raised with the total.
serve_options=(--max-connections $((idle + 100)) --max-connections-per-address $((idle + 100))
    --idle-timeout 3600 --handshake-timeout 600)

work=$(mktemp -d "${TMPDIR:-/tmp}/p2p-idle-bench.XXXXXX")
server_pid=
holder=
cleanup() {
    [ -z "$holder" ] || kill "$holder" 2>/dev/null || true
    [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

python3 - <<'PY'
import os
os.mkdir("parts")
for i in range(1024):
    with open(f"parts/p{i:04}", "wb") as f:
        f.write(os.urandom(1 << 20))
PY

# Holds N handshaken connections open until its stdin closes.
# The idle peers speak version 2 as any client would: TLS 1.3 with a certificate of their own
# (one for all of them, from openssl), then Hello, then nothing.
openssl req -x509 -newkey ed25519 -nodes -days 1 -subj /CN=idle \
    -keyout idle.key -out idle.crt 2>/dev/null
cat > hold.py <<'PY'
import resource, socket, ssl, struct, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["p2ps/2"])
ctx.load_cert_chain("idle.crt", "idle.key")
peer = b"idle"
header = struct.pack("<I4sHQ", 0, b"P2PS", 2, len(peer)) + peer
hello = struct.pack("<I", len(header)) + header
held = []
for _ in range(count):
    s = ctx.wrap_socket(socket.create_connection((host, port)))
    s.sendall(hello)
    held.append(s)
for s in held:
    s.recv(4096)
print("holding", len(held), flush=True)
sys.stdin.read()
PY

push() {
    seconds "$bin" -q send --to "$addr" --json parts/*
}

cat parts/* > /dev/null
ratios=()
peaks=()
printf '%-6s %12s %12s %8s %14s\n' round unloaded_s loaded_s ratio serve_peak_MiB
for round in $(seq 1 "$rounds"); do
    start_server plain.db "${serve_options[@]}"
    unloaded=$(push)
    stop_server

    start_server loaded.db "${serve_options[@]}"
    rm -f hold.in hold.out
    mkfifo hold.in
    python3 hold.py 127.0.0.1 "${addr##*:}" "$idle" < hold.in > hold.out &
    holder=$!
    exec 3> hold.in
    while ! grep -q '^holding' hold.out 2>/dev/null; do sleep 0.1; done
    loaded=$(push)
    peak=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$server_pid/status")
    exec 3>&-
    wait "$holder"
    holder=
    rm -f hold.in
    stop_server

    ratio=$(awk -v u="$unloaded" -v l="$loaded" 'BEGIN { print u / l }')
    printf '%-6s %12.3f %12.3f %8.3f %14s\n' "$round" "$unloaded" "$loaded" "$ratio" "$peak"
    ratios+=("$ratio")
    peaks+=("$peak")
done
echo "loaded = while serve held $idle idle connections; ratio = unloaded time / loaded time"
spread ratio higher "${ratios[@]}"
spread "peak MiB" lower "${peaks[@]}"
