#!/usr/bin/env bash
# One run, warmed up, interleaved round by round, of moving the same 1 GiB over loopback:
#   raw:    `socat -b 1048576` file -> socket -> file, then an fsync of the result;
#   rsync:  `rsync --fsync -W` into an rsync daemon on 127.0.0.1 (a generated config);
#   p2p:    `p2p-store send` of the GiB as 1024 parts of 1 MiB into a fresh `serve` (default
#           sled store, every part acknowledged only once durable), right after the raw and
#           rsync copies, so it meets a disk still writing them back, as in a busy system;
#   p2p-fs: the same push into a store of the fs backend, right after;
#   p2p-tmpfs, raw-tmpfs: the same two with the destination on tmpfs (/dev/shm), which leaves
#           the CPU path alone, without the disk;
#   sendme: `sendme send` / `sendme receive` (iroh-blobs), when `sendme` is on PATH
#           (`cargo install sendme --locked`); skipped otherwise;
# then SMALL_PARTS parts of 1 KiB pushed from a store into a fresh `serve` (parts/s), each round
# followed by sled's own rate for as many inserts of 1 KiB plus a flush, and the two compared
# round by round.
# Prints each round, then per tool the median, best and worst time, the ratios, the CPU
# seconds (user + system of both processes) per GiB of p2p-store and socat, and a table for
# README. Times on a busy machine swing 2-4x: compare the ratios of one run.
#
# Usage: benches/compare.sh [ROUNDS] [SMALL_PARTS]   (defaults: 7 rounds, 100000 parts)
# Needs: a release build (`cargo build --release`), socat, rsync, python3, and ROUNDS + 5 GiB
# free on the disk (each round's fs store is kept until the end); installs nothing.
set -euo pipefail

rounds=${1:-7}
small=${2:-100000}
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"
for tool in socat rsync python3; do
    command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install $tool" >&2; exit 2; }
done
if command -v sendme >/dev/null; then
    with_sendme=1
else
    with_sendme=
    echo "sendme is not on PATH, so it is skipped (cargo install sendme --locked)" >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/p2p-compare.XXXXXX")
shm=$(mktemp -d /dev/shm/p2p-compare.XXXXXX)
server_pid=
rsync_pid=
sendme_pid=
cleanup() {
    [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
    [ -z "$rsync_pid" ] || kill "$rsync_pid" 2>/dev/null || true
    [ -z "$sendme_pid" ] || kill "$sendme_pid" 2>/dev/null || true
    rm -rf "$work" "$shm"
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

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

fsync_file() {
    python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$1"
}

# raw_copy DIR: the listener writes DIR/received.bin, the sender reads whole.bin; then fsync
# the result. Prints "seconds cpu_seconds" (both socat processes; the fsync is the kernel's).
raw_copy() {
    local dir=$1 port listener wall
    port=$(free_port)
    rm -f "$dir/received.bin"
    measured listener.cpu socat -u -b 1048576 "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" \
        "OPEN:$dir/received.bin,creat,trunc" &
    listener=$!
    sleep 0.05
    raw_timed() {
        measured sender.cpu socat -u -b 1048576 OPEN:whole.bin "TCP:127.0.0.1:$port,retry=20,interval=0.01"
        wait "$listener"
        fsync_file "$dir/received.bin"
    }
    wall=$(seconds raw_timed) || return 1
    rm -f "$dir/received.bin"
    echo "$wall $(cpu_of sender.cpu listener.cpu)"
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

# sendme: the GiB offered by `sendme send`, fetched by `sendme receive` into a fresh dir, both
# without iroh's relay servers (the ticket carries the loopback address), so that a machine
# without internet access can run it and nothing leaves the host.
sendme_copy() {
    rm -rf sendme-src sendme-dst
    mkdir sendme-src sendme-dst
    ln whole.bin sendme-src/whole.bin
    (cd sendme-src && exec sendme send --relay disabled --ticket-type addresses whole.bin > ../sendme.out 2>&1) &
    sendme_pid=$!
    local ticket=
    until [ -n "$ticket" ]; do
        kill -0 "$sendme_pid" 2>/dev/null || { cat sendme.out >&2; return 1; }
        sleep 0.05
        ticket=$(awk '/sendme receive/ { print $3; exit }' sendme.out)
    done
    local wall
    wall=$(cd sendme-dst && seconds sendme receive --relay disabled "$ticket" 2> ../sendme.err) ||
        { cat sendme.err >&2; kill "$sendme_pid"; return 1; }
    kill "$sendme_pid"
    wait "$sendme_pid" 2>/dev/null || true
    sendme_pid=
    rm -rf sendme-src sendme-dst
    echo "$wall"
}

# sled's baseline is built now, not inside the timed rounds.
(cd "$repo" && cargo bench -q --no-run --bench sled_baseline 2>/dev/null) ||
    { echo "cannot build the sled_baseline bench" >&2; exit 2; }

# Warm up the page cache, the disk and the loopback path right before timing.
cat parts/* whole.bin > /dev/null
raw_copy . > /dev/null
rsync_copy > /dev/null
push_parts dst.db > /dev/null
rm -rf dst.db

declare -A times cpus
tools="raw rsync p2p p2p-fs raw-tmpfs p2p-tmpfs${with_sendme:+ sendme}"
printf '%-6s' round
for tool in $tools; do printf ' %10s' "$tool"; done
printf ' %8s %10s %9s %9s\n' p2p/raw p2p/rsync cpu_p2p cpu_raw
for round in $(seq 1 "$rounds"); do
    # The push comes right after the raw and rsync copies, whose bytes the disk still writes.
    read -r r rc < <(raw_copy .) || exit 1
    y=$(rsync_copy) || exit 1
    read -r p pc < <(push_parts dst.db) || exit 1
    rm -rf dst.db
    # Each round's fs store stays until the run ends. This disk's ext4 has no journal, and
    # without one ext4 passes over every inode freed in the last minutes, one by one, on every
    # create (recently_deleted in perf: 46% of the fs push's server CPU after a mass delete),
    # so deleting a round's 2,048 files would slow the next round's creates.
    read -r pf _ < <(push_parts "dst-fs-$round.db" --backend fs) || exit 1
    read -r rt rtc < <(raw_copy "$shm") || exit 1
    read -r pt ptc < <(push_parts "$shm/dst.db") || exit 1
    rm -rf "$shm/dst.db"
    s=
    [ -z "$with_sendme" ] || s=$(sendme_copy) || exit 1
    times[raw]+=" $r" times[rsync]+=" $y" times[p2p]+=" $p" times[p2p-fs]+=" $pf"
    times[p2p-fs/raw]+=" $(ratio "$r" "$pf")"
    times[raw-tmpfs]+=" $rt" times[p2p-tmpfs]+=" $pt" times[sendme]+=" $s"
    cpus[raw]+=" $rc" cpus[p2p]+=" $pc" cpus[raw-tmpfs]+=" $rtc" cpus[p2p-tmpfs]+=" $ptc"
    times[p2p/raw]+=" $(ratio "$r" "$p")" times[p2p/rsync]+=" $(ratio "$y" "$p")"
    times[p2p/raw-tmpfs]+=" $(ratio "$rt" "$pt")"
    printf '%-6s' "$round"
    for t in $r $y $p $pf $rt $pt $s; do printf ' %10.3f' "$t"; done
    printf ' %8.3f %10.3f %9.2f %9.2f\n' "$(ratio "$r" "$p")" "$(ratio "$y" "$p")" "$pc" "$rc"
done

echo
echo "seconds for 1 GiB (lower is better):"
for tool in $tools; do
    spread "$tool" lower ${times[$tool]}
done
echo "ratios, the other tool's time over p2p-store's (above 1, p2p-store was faster):"
for ratio in p2p/raw p2p/rsync p2p-fs/raw p2p/raw-tmpfs; do
    spread "$ratio" higher ${times[$ratio]}
done
echo "CPU seconds per GiB, user + system of both processes (socat: sender and listener):"
for tool in raw p2p raw-tmpfs p2p-tmpfs; do
    spread "$tool" lower ${cpus[$tool]}
done
# socat's copy to disk costs 0.6-0.9 CPU s per GiB on these VMs when they are quiet. Far above
# that, it paid for the host handing back memory it had reclaimed (see README, Figures), and
# the 1 GiB ratios of such a run measure the VM more than the tools.
raw_cpu_rounds=$(printf '%s\n' ${cpus[raw]} | awk '$1 > 1.2' | wc -l)
if [ "$raw_cpu_rounds" -gt 0 ]; then
    # Said on both streams, so it is seen whichever one is kept. Not through `tee /dev/stderr`,
    # which reopens a stderr redirected to a file and truncates what stdout wrote there.
    slow="warning: socat's disk copy took over 1.2 CPU s per GiB in $raw_cpu_rounds of $rounds"
    slow+=" rounds (quiet: 0.6-0.9); the 1 GiB ratios of this run are not comparable"
    echo "$slow"
    echo "$slow" >&2
fi

# Small parts: peer 2's store holds them; the push is timed from connect to the last ack.
rm -rf small.db
(cd small && ls | xargs "$bin" -q --db ../small.db import > /dev/null)
rates=()
sled_rates=()
small_ratios=()
for round in $(seq 1 "$rounds"); do
    start_server dst-small.db
    t=$(seconds "$bin" -q --db small.db send --to "$addr" --json) || exit 1
    stop_server
    rate=$(awk -v n="$small" -v t="$t" 'BEGIN { printf "%.0f", n / t }')
    # sled's own rate, right after: the machine's speed swings within a run.
    sled_line=$(cd "$repo" && cargo bench -q --bench sled_baseline -- "$small" 2>/dev/null |
        grep '^sled:') || { echo "the sled_baseline bench failed" >&2; exit 1; }
    sled_rate=$(echo "$sled_line" | awk '{print $NF}' | tr -d '/s')
    rates+=("$rate")
    sled_rates+=("$sled_rate")
    small_ratios+=("$(ratio "$rate" "$sled_rate")")
    printf 'small round %s: %d parts of 1 KiB in %.3f s = %s parts/s; %s\n' \
        "$round" "$small" "$t" "$rate" "$sled_line"
done
small_rate=$(printf '%s\n' "${rates[@]}" | median)
sled_rate=$(printf '%s\n' "${sled_rates[@]}" | median)
small_ratio=$(printf '%s\n' "${small_ratios[@]}" | median)
small_worst=$(printf '%s\n' "${small_ratios[@]}" | sort -g | head -1)
printf 'small parts: median %s parts/s; sled median %s/s; ratio median %.3f, worst %.3f\n' \
    "$small_rate" "$sled_rate" "$small_ratio" "$small_worst"

# middle/worst of a list, for the table: median and the round furthest from it.
mid() { printf '%s\n' "$@" | median; }
lowest() { printf '%s\n' "$@" | sort -g | head -1; }
highest() { printf '%s\n' "$@" | sort -g | tail -1; }
cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "| $(date +%Y-%m-%d), $(nproc) cores, $cpu, $rounds interleaved rounds | median (worst) |"
echo "| --- | --- |"
# shellcheck disable=SC2086 # the lists are words on purpose
{
printf '| 1 GiB, p2p-store send (1 MiB parts, durable acks) vs socat + fsync, push right after rsync | %.2f (%.2f) |\n' \
    "$(mid ${times[p2p/raw]})" "$(lowest ${times[p2p/raw]})"
printf '| 1 GiB, p2p-store send vs rsync daemon (--fsync -W) | %.2f (%.2f) |\n' \
    "$(mid ${times[p2p/rsync]})" "$(lowest ${times[p2p/rsync]})"
printf '| 1 GiB, p2p-store send into the fs backend vs socat + fsync | %.2f (%.2f) |\n' \
    "$(mid ${times[p2p-fs/raw]})" "$(lowest ${times[p2p-fs/raw]})"
printf '| 1 GiB, both on tmpfs (CPU path only): p2p-store vs socat | %.2f (%.2f) |\n' \
    "$(mid ${times[p2p/raw-tmpfs]})" "$(lowest ${times[p2p/raw-tmpfs]})"
printf '| 1 GiB, seconds: socat %.2f, rsync %.2f, p2p-store %.2f, p2p-store on tmpfs %.2f%s | (worst: %.2f, %.2f, %.2f, %.2f) |\n' \
    "$(mid ${times[raw]})" "$(mid ${times[rsync]})" "$(mid ${times[p2p]})" "$(mid ${times[p2p-tmpfs]})" \
    "${with_sendme:+, sendme $(printf '%.2f (worst %.2f)' "$(mid ${times[sendme]})" "$(highest ${times[sendme]})")}" \
    "$(highest ${times[raw]})" "$(highest ${times[rsync]})" "$(highest ${times[p2p]})" "$(highest ${times[p2p-tmpfs]})"
printf '| CPU s per GiB, both processes: p2p-store %.2f, socat %.2f (tmpfs: %.2f, %.2f) | %.2fx socat |\n' \
    "$(mid ${cpus[p2p]})" "$(mid ${cpus[raw]})" "$(mid ${cpus[p2p-tmpfs]})" "$(mid ${cpus[raw-tmpfs]})" \
    "$(ratio "$(mid ${cpus[p2p]})" "$(mid ${cpus[raw]})")"
}
printf '| %s parts of 1 KiB, p2p-store send | %s parts/s; %.2f (worst %.2f) of sled%ss own insert+flush measured after each round (median %s/s) |\n' \
    "$small" "$small_rate" "$small_ratio" "$small_worst" "'" "$sled_rate"
