#!/usr/bin/env bash
# Make sure a Docker Engine answers, for e2b-tools.
#
# If one answers (DOCKER_HOST or /var/run/docker.sock), print its version and exit 0.
# Otherwise, as root on Debian/Ubuntu: install docker.io if dockerd is missing, start
# dockerd (systemd if it runs, else nohup, logging to /var/log/e2b-tools-dockerd.log),
# and wait up to 60 s for it. Elsewhere, explain how to get an engine and exit 1.
# Needs only python3 (the Docker SDK is used when installed, else the raw socket).
set -euo pipefail

LOG=/var/log/e2b-tools-dockerd.log
WAIT_SECONDS=60
DEFAULT_HOST=unix:///var/run/docker.sock

# Prints the engine version and exits 0 if an engine answers; else prints why on stderr.
engine_version() {
    python3 - <<'PY'
import json, os, socket, sys

host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

def via_sdk():
    import docker  # optional: handles TLS, ssh:// and contexts
    client = docker.from_env(timeout=5)
    client.ping()
    return client.version().get("Version", "?")

def via_socket():
    if host.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(host[len("unix://"):])
    elif host.startswith("tcp://"):
        hostport = host[len("tcp://"):].split("/")[0]
        name, _, port = hostport.rpartition(":")
        sock = socket.create_connection((name or hostport, int(port or 2375)), timeout=5)
    else:
        raise OSError(f"cannot check DOCKER_HOST={host} without the docker Python package")
    with sock:
        sock.sendall(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    if " 200 " not in status + " ":
        raise OSError(f"engine answered {status!r}")
    return json.loads(body).get("Version", "?")

try:
    try:
        version = via_sdk()
    except ImportError:
        version = via_socket()
except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
print(version)
PY
}

how_to_get_docker() {
    cat >&2 <<EOF
e2b-tools needs a Docker Engine, and none answers at ${DOCKER_HOST:-$DEFAULT_HOST}${1:+ ($1)}.
  - macOS / Windows: install and start Docker Desktop: https://docs.docker.com/desktop/
  - Linux: install Docker Engine (https://docs.docker.com/engine/install/), start it
    (sudo systemctl start docker) and run as root or as a member of the docker group;
    as root on Debian/Ubuntu this script installs and starts one itself.
  - a remote engine: export DOCKER_HOST=tcp://HOST:2376 (with DOCKER_TLS_VERIFY=1 and
    DOCKER_CERT_PATH) or DOCKER_HOST=ssh://USER@HOST, then run this again.
EOF
}

is_debian_like() {
    [ -r /etc/os-release ] || return 1
    # shellcheck disable=SC1091
    (. /etc/os-release && case " ${ID:-} ${ID_LIKE:-} " in *" debian "* | *" ubuntu "*) exit 0 ;; *) exit 1 ;; esac)
}

find_dockerd() {
    command -v dockerd 2>/dev/null || { [ -x /usr/sbin/dockerd ] && echo /usr/sbin/dockerd; } || { [ -x /usr/bin/dockerd ] && echo /usr/bin/dockerd; } || true
}

if ! command -v python3 >/dev/null 2>&1; then
    echo "ensure-docker: python3 is required" >&2
    exit 1
fi

errfile=$(mktemp)
trap 'rm -f "$errfile"' EXIT

if version=$(engine_version 2>"$errfile"); then
    echo "Docker Engine $version"
    exit 0
fi
reason=$(tail -n 1 "$errfile" || true)

if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "$DEFAULT_HOST" ]; then
    # The user chose an engine elsewhere: starting a local one would not help.
    how_to_get_docker "$reason"
    exit 1
fi
if [ "$(id -u)" -ne 0 ] || ! is_debian_like || ! command -v apt-get >/dev/null 2>&1; then
    how_to_get_docker "$reason"
    exit 1
fi

dockerd_bin=$(find_dockerd)
if [ -z "$dockerd_bin" ]; then
    echo "ensure-docker: installing docker.io with apt-get ..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
    dockerd_bin=$(find_dockerd)
    if [ -z "$dockerd_bin" ]; then
        echo "ensure-docker: docker.io is installed but dockerd was not found" >&2
        exit 1
    fi
fi

if command -v pgrep >/dev/null 2>&1 && pgrep -x dockerd >/dev/null 2>&1; then
    echo "ensure-docker: dockerd is running but does not answer yet; waiting ..." >&2
elif [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 \
    && systemctl start docker >/dev/null 2>&1; then
    echo "ensure-docker: started docker with systemd; waiting ..." >&2
else
    echo "ensure-docker: starting $dockerd_bin (log: $LOG); waiting ..." >&2
    mkdir -p "$(dirname "$LOG")"
    nohup "$dockerd_bin" >>"$LOG" 2>&1 </dev/null &
    disown || true
fi

for _ in $(seq "$WAIT_SECONDS"); do
    if version=$(engine_version 2>"$errfile"); then
        echo "Docker Engine $version"
        exit 0
    fi
    sleep 1
done

echo "ensure-docker: the Docker Engine did not answer within ${WAIT_SECONDS}s:" \
    "$(tail -n 1 "$errfile" || true)" >&2
if [ -r "$LOG" ]; then
    echo "--- last lines of $LOG ---" >&2
    tail -n 30 "$LOG" >&2
elif command -v journalctl >/dev/null 2>&1; then
    journalctl -u docker --no-pager -n 30 >&2 || true
fi
exit 1
