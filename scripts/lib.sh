# Shared by scripts/test and scripts/demo: install what is missing, find a free port, start and
# stop a throw-away redis-server. Sourced, not run.

# libcli11-dev and libcpp-httplib-dev are optional for users (redkit-queue, and its board, are
# built when CMake finds them); the scripts install them so the demo and CI build and test the tool.
# libasio-dev is optional too (redkit/asio.hpp); installed so that the tests cover it.
REDKIT_PACKAGES=(g++ cmake ninja-build pkg-config libhiredis-dev nlohmann-json3-dev libgtest-dev
                 redis-server redis-tools python3 clang-format libssl-dev openssl libcli11-dev tzdata
                 libcpp-httplib-dev libasio-dev)

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
    # below the kernel's ephemeral range (as the test harness does): no outgoing connection can
    # take the port between this pick and redis-server's bind
    python3 - 2>/dev/null <<'PY' || echo $(( 20000 + RANDOM % 10000 ))
import random, socket
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
for _ in range(200 if low > 10001 else 0):
    port = random.randrange(10000, low)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
PY
}

# start_throwaway_redis DIR: starts redis-server on a free loopback port, persistence off, and
# exports REDIS_URL; a server that does not answer (its port taken meanwhile) is stopped and
# another port tried, three times. stop_throwaway_redis stops it (registered as an EXIT trap by
# callers).
start_throwaway_redis() {
    REDKIT_REDIS_DIR="$1"
    mkdir -p "$REDKIT_REDIS_DIR"
    for _ in 1 2 3; do
        REDKIT_REDIS_PORT="$(free_port)"
        rm -f "$REDKIT_REDIS_DIR/redis.pid"
        redis-server --port "$REDKIT_REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
            --daemonize yes --pidfile "$REDKIT_REDIS_DIR/redis.pid" --dir "$REDKIT_REDIS_DIR" \
            --logfile "$REDKIT_REDIS_DIR/redis.log" >/dev/null
        for _ in $(seq 1 100); do
            # ours, not another server that had the port
            if [ -s "$REDKIT_REDIS_DIR/redis.pid" ] &&
                redis-cli -p "$REDKIT_REDIS_PORT" info server 2>/dev/null | tr -d '\r' |
                grep -qx "process_id:$(cat "$REDKIT_REDIS_DIR/redis.pid")"; then
                export REDIS_URL="redis://127.0.0.1:$REDKIT_REDIS_PORT"
                return 0
            fi
            sleep 0.05
        done
        if [ -s "$REDKIT_REDIS_DIR/redis.pid" ]; then kill "$(cat "$REDKIT_REDIS_DIR/redis.pid")" 2>/dev/null || true; fi
        REDKIT_REDIS_PORT=""
    done
    echo "redkit: redis-server did not start; see $REDKIT_REDIS_DIR/redis.log" >&2
    return 1
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

# Downloads Debian trixie's .debs of the packages named into directory $1 (which must exist),
# without touching the system's apt configuration: the mirror is the one this machine's
# /etc/apt/sources.list.d/debian.sources already names (Debian 12 and later).
trixie_download() {
    local into="$1"; shift
    local sources=/etc/apt/sources.list.d/debian.sources uri work rc=0
    [ -f "$sources" ] || { echo "redkit: $sources not found (not Debian 12+?)" >&2; return 2; }
    uri="$(awk '/^URIs:/ { print $2; exit }' "$sources")"
    [ -n "$uri" ] || { echo "redkit: no URIs: line in $sources" >&2; return 2; }
    work="$(mktemp -d)"
    mkdir -p "$work/parts" "$work/lists/partial" "$work/cache/archives/partial"
    printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$uri" > "$work/parts/trixie.sources"
    local apt_opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$work/parts"
                    -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache" -o APT::Sandbox::User=root)
    apt-get "${apt_opts[@]}" update -qq >/dev/null &&
        (cd "$into" && apt-get "${apt_opts[@]}" download "$@" >/dev/null) || rc=$?
    rm -rf "$work"
    return "$rc"
}
