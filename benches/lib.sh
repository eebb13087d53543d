# Shared by the benchmark scripts, which source it first: it sets `repo` (this repository) and
# `bin` (the p2p-store binary: $P2P_STORE_BIN, or the release build), and stops when there is
# no binary to run.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(realpath "${P2P_STORE_BIN:-$repo/target/release/p2p-store}")
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }

# Runs a command with its stdout discarded and prints how many seconds it took; fails with it.
seconds() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null || { echo "failed: $*" >&2; return 1; }
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { print b - a }'
}

# start_server DB [SERVE-OPTIONS...]: a fresh store at DB served on a free port; sets
# `server_pid` and `addr` once the server has said where it listens.
start_server() {
    local db=$1
    shift
    rm -rf "$db" serve.out
    "$bin" -q --db "$db" serve --listen 127.0.0.1:0 "$@" > serve.out &
    server_pid=$!
    addr=
    while [ -z "$addr" ]; do
        sleep 0.01
        addr=$(awk '/^listening on / { print $3; exit }' serve.out 2>/dev/null)
    done
}

# Stops the server start_server started, gracefully, and waits for it.
stop_server() {
    kill -TERM "$server_pid"
    wait "$server_pid"
    server_pid=
}

send_flags=()

# push_parts DB [SERVE-OPTIONS...]: every part in parts/ pushed into a fresh store at DB (left
# in place: the caller decides when to delete it), with
# the options in the array `send_flags` (none unless set) given to `send`. Prints "seconds
# cpu_seconds" (the sender, and the server up to the last acknowledgement).
push_parts() {
    local db=$1 wall
    shift
    start_server "$db" "$@"
    wall=$(seconds measured send.cpu "$bin" -q "${send_flags[@]}" send --to "$addr" --json parts/*) ||
        { stop_server; exit 1; }
    local served
    served=$(server_cpu)
    stop_server
    echo "$wall $(awk -v s="$served" '{ print $2 + s }' send.cpu)"
}

# measured OUT CMD...: runs CMD with its stdout discarded and writes "seconds cpu_seconds" to
# OUT, the CPU seconds being its user + system time (and that of children it waited for);
# fails with it.
measured() {
    python3 -c '
import os, subprocess, sys, time
start = time.monotonic()
child = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{time.monotonic() - start} {usage.ru_utime + usage.ru_stime}\n")
sys.exit(os.waitstatus_to_exitcode(status))
' "$@"
}

# cpu_of FILE...: the CPU seconds that `measured` wrote into the files, added up.
cpu_of() {
    awk '{ total += $2 } END { print total }' "$@"
}

# The CPU seconds (user + system, every thread) the server of start_server has used so far.
server_cpu() {
    awk -v tick="$(getconf CLK_TCK)" '{ print ($14 + $15) / tick }' "/proc/$server_pid/stat"
}

# ratio A B: A / B.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'
}

# The median of the numbers on stdin, one a line.
median() {
    sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# spread NAME lower|higher VALUES...: prints the median, best and worst of VALUES, best being
# the lowest or the highest as the second argument says.
spread() {
    local name=$1 better=$2
    shift 2
    printf '%s\n' "$@" | sort -g | awk -v name="$name" -v better="$better" '
        { a[NR] = $1 }
        END {
            best = better == "lower" ? a[1] : a[NR]
            worst = better == "lower" ? a[NR] : a[1]
            printf "  %-14s median %8.3f   best %8.3f   worst %8.3f   (%d rounds)\n",
                name, a[int((NR + 1) / 2)], best, worst, NR
        }'
}
