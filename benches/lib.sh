# Shared by the benchmark scripts: source it after setting `bin` (the p2p-store binary).

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
