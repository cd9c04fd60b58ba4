# Shared by scripts/test and scripts/demo: install what is missing, find a free port, start and
# stop a throw-away redis-server. Sourced, not run.

# libcli11-dev and libcpp-httplib-dev are optional for users (redkit-queue, and its board, are
# built when CMake finds them); the scripts install them so the demo and CI build and test the tool.
REDKIT_PACKAGES=(g++ cmake ninja-build pkg-config libhiredis-dev nlohmann-json3-dev libgtest-dev
                 redis-server redis-tools python3 clang-format libssl-dev openssl libcli11-dev tzdata
                 libcpp-httplib-dev)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "redkit: need root (or sudo) to run: $*" >&2; return 1; fi
}

# Installs the Debian/Ubuntu packages redkit builds and tests with, when any is missing.
ensure_packages() {
    local missing=()
    for p in "${REDKIT_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "redkit: installing ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $(( 20000 + RANDOM % 20000 ))
}

# start_throwaway_redis DIR: starts redis-server on a free loopback port, persistence off, and
# exports REDIS_URL. stop_throwaway_redis stops it (registered as an EXIT trap by callers).
start_throwaway_redis() {
    REDKIT_REDIS_DIR="$1"
    mkdir -p "$REDKIT_REDIS_DIR"
    REDKIT_REDIS_PORT="$(free_port)"
    redis-server --port "$REDKIT_REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize yes --pidfile "$REDKIT_REDIS_DIR/redis.pid" --dir "$REDKIT_REDIS_DIR" \
        --logfile "$REDKIT_REDIS_DIR/redis.log" >/dev/null
    for _ in $(seq 1 100); do
        redis-cli -p "$REDKIT_REDIS_PORT" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
    redis-cli -p "$REDKIT_REDIS_PORT" ping >/dev/null || { echo "redkit: redis-server did not start" >&2; return 1; }
    export REDIS_URL="redis://127.0.0.1:$REDKIT_REDIS_PORT"
}

stop_throwaway_redis() {
    if [ -n "${REDKIT_REDIS_PORT:-}" ]; then
        redis-cli -p "$REDKIT_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
        if [ -f "$REDKIT_REDIS_DIR/redis.pid" ]; then
            kill "$(cat "$REDKIT_REDIS_DIR/redis.pid")" 2>/dev/null || true
        fi
        REDKIT_REDIS_PORT=""
    fi
}
