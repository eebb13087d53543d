#!/usr/bin/env bash
# A push of 64 parts of 256 KiB from 127.0.0.1 while another host (127.0.1.1) replays one TLS
# 1.3 ClientHello on fresh connections as fast as it can, against the same push alone,
# interleaved round by round, each push into a fresh `serve`. The flood does no crypto of its
# own: it makes serve do a key exchange and a signature for each connect. Prints each round,
# the handshakes serve answered per second, and the median and worst of both pushes.
#
# Usage: benches/handshake_flood.sh [ROUNDS]   (default: 7)
# Needs: a release build (`cargo build --release`), python3.
set -euo pipefail

rounds=${1:-7}
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "python3 is needed for the flood" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/p2p-handshake-flood.XXXXXX")
server_pid=
flood_pid=
cleanup() {
    [ -z "$flood_pid" ] || kill "$flood_pid" 2>/dev/null || true
    [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

# flood PORT SECONDS: four threads replaying the ClientHello Python's TLS stack makes (ALPN
# p2ps/2, TLS 1.3 only), each connection closed once serve answers; prints the handshakes
# answered per second.
flood() {
    python3 - "$1" "$2" <<'PY'
import socket, ssl, sys, threading, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
context.minimum_version = ssl.TLSVersion.TLSv1_3
context.set_alpn_protocols(["p2ps/2"])
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
client = context.wrap_bio(incoming, outgoing)
try:
    client.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = outgoing.read()
answered = [0] * 4
end = time.monotonic() + seconds
def replay(index):
    while time.monotonic() < end:
        connection = socket.socket()
        connection.bind(("127.0.1.1", 0))
        connection.settimeout(2)
        try:
            connection.connect(("127.0.0.1", port))
            connection.sendall(hello)
            if connection.recv(5):
                answered[index] += 1
        except OSError:
            pass
        finally:
            connection.close()
threads = [threading.Thread(target=replay, args=(i,)) for i in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(f"{sum(answered) / seconds:.0f}")
PY
}

# push TAG: 64 fresh parts of 256 KiB sent to the server; prints the seconds.
push() {
    rm -rf parts
    mkdir parts
    python3 -c '
import os
for i in range(64):
    with open(f"parts/part-{i:02}.bin", "wb") as f:
        f.write(os.urandom(256 * 1024))'
    seconds "$bin" -q send --to "$addr" parts/*
}

declare -a alone flooded rates
for round in $(seq 1 "$rounds"); do
    start_server "alone.db"
    a=$(push)
    stop_server
    start_server "flooded.db"
    flood "${addr##*:}" 4 > flood.out &
    flood_pid=$!
    sleep 1
    f=$(push)
    wait "$flood_pid"
    flood_pid=
    stop_server
    rate=$(cat flood.out)
    alone+=("$a") flooded+=("$f") rates+=("$rate")
    printf 'round %d: alone %.3f s, during the flood %.3f s (%s handshakes/s answered)\n' \
        "$round" "$a" "$f" "$rate"
done
spread "alone" lower "${alone[@]}"
spread "flooded" lower "${flooded[@]}"
spread "handshakes/s" higher "${rates[@]}"
