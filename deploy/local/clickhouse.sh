#!/usr/bin/env bash
# Run a real ClickHouse server locally, without Docker: the ClickHouse engine that
# PyPI's chdb-core embeds (clickhouse-local's LocalServer), serving the native TCP and
# HTTP protocols on loopback. See README.md here.
#
#   clickhouse.sh install
#   clickhouse.sh python
#   clickhouse.sh start [--port P] [--http-port H] [--data-dir DIR]
#   clickhouse.sh stop [--data-dir DIR]
#   clickhouse.sh kill [--data-dir DIR]
#   clickhouse.sh restart [--data-dir DIR]
#   clickhouse.sh status [--data-dir DIR]
#   clickhouse.sh dsn [--data-dir DIR]
#   clickhouse.sh clean [--all]
#
# Progress goes to stderr; `start` and `restart` print the native DSN
# (clickhouse://default@127.0.0.1:PORT/default) as the last line of stdout, so
# `CLICKHOUSE_DSN=$(deploy/local/clickhouse.sh start)` works.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
PROG="$(basename "$0")"

# Pinned: the server's behaviour (SQL, defaults, the listen trick below) is tested
# against this release.
CHDB_CORE_VERSION="${CHDB_CORE_VERSION:-26.9.0}"
CACHE_DIR="${CLICKHOUSE_CACHE_DIR:-$SCRIPT_DIR/.cache}"
PYTHON="${CLICKHOUSE_PYTHON:-python3}"
START_TIMEOUT="${CLICKHOUSE_START_TIMEOUT:-120}"
STOP_TIMEOUT="${CLICKHOUSE_STOP_TIMEOUT:-30}"
VENV="$CACHE_DIR/clickhouse-venv-$CHDB_CORE_VERSION"
MARKER="$VENV/.complete"

log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$PROG" "$*" >&2; exit 1; }

usage() {
  cat >&2 <<EOF
usage: $PROG <command> [options]

commands:
  install                          create the venv with chdb-core $CHDB_CORE_VERSION (idempotent)
  python                           install, then print the venv's python (it imports chdb)
  start [--port P] [--http-port H] [--data-dir DIR]
                                   start the server and wait until it answers; prints the
                                   native DSN on the last line of stdout. Ports default to the
                                   ones recorded in DIR, else free ones.
  stop                             stop it (graceful; SIGKILL after \$CLICKHOUSE_STOP_TIMEOUT s)
  kill                             SIGKILL it (fault injection); data survives
  restart                          stop, then start on the same ports and data
  status                           exit 0 if it answers, 3 otherwise
  dsn                              print the native DSN (and the HTTP one on stderr)
  clean [--all]                    stop and delete the data dir (--all: the venv too)

every command but install accepts --data-dir DIR (default: that of the last start,
else <cache>/clickhouse-data).
env: CLICKHOUSE_CACHE_DIR CLICKHOUSE_DATA_DIR CHDB_CORE_VERSION CLICKHOUSE_PYTHON
     CLICKHOUSE_START_TIMEOUT CLICKHOUSE_STOP_TIMEOUT
EOF
}

abspath() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$(pwd -P)" "$1" ;;
  esac
}

# ---------------------------------------------------------------- install

# venv_works -> 0 if python can create a venv with pip (Debian ships that part in
# python3-venv, apart from python3).
venv_works() {
  local probe
  probe="$(mktemp -d "${TMPDIR:-/tmp}/clickhouse-venv-probe.XXXXXX")"
  if "$PYTHON" -m venv "$probe/v" >/dev/null 2>&1 && [[ -x "$probe/v/bin/pip" ]]; then
    rm -rf "$probe"
    return 0
  fi
  rm -rf "$probe"
  return 1
}

install_venv_package() {
  command -v apt-get >/dev/null 2>&1 || die "$PYTHON cannot create a venv and apt-get is not available: install the venv module of $PYTHON"
  local ver sudo=""
  ver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "$PYTHON cannot create a venv; run as root or install python3-venv"
    sudo="sudo -n"
  fi
  log "installing python3-venv with apt-get (python $ver cannot create a venv)"
  $sudo apt-get update -qq >&2 || true
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$ver-venv" >&2 ||
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2 ||
    die "apt-get could not install python$ver-venv or python3-venv"
}

installed() {
  [[ -f "$MARKER" && -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'from chdb import _chdb' >/dev/null 2>&1
}

cmd_install() {
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: Python 3.9+ is needed"
  installed && { log "chdb-core $CHDB_CORE_VERSION already in $VENV"; return 0; }
  mkdir -p "$CACHE_DIR"
  # Concurrent installs into one cache (the integration suite, a bench, a person)
  # wait for each other.
  exec 9>"$CACHE_DIR/.clickhouse-install.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  if ! installed; then
    venv_works || install_venv_package
    venv_works || die "$PYTHON still cannot create a venv with pip"
    local t0=$SECONDS
    log "installing chdb-core $CHDB_CORE_VERSION from PyPI into $VENV (about 300 MB download, once)"
    # Built in place (a venv hard-codes its path); the marker, written last, says it is whole.
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "chdb-core==$CHDB_CORE_VERSION" >&2 ||
      { rm -rf "$VENV"; die "pip install chdb-core==$CHDB_CORE_VERSION failed"; }
    "$VENV/bin/python" -c 'from chdb import _chdb' || { rm -rf "$VENV"; die "chdb-core installed but does not import"; }
    echo "$CHDB_CORE_VERSION" >"$MARKER"
    log "installed chdb-core $CHDB_CORE_VERSION ($((SECONDS - t0)) s)"
  fi
  exec 9>&-
}

# ----------------------------------------------------------------- layout

DATA_DIR=""
TCP_PORT=""
HTTP_PORT=""

# Resolve the data dir: --data-dir > $CLICKHOUSE_DATA_DIR > last started > default.
resolve_data_dir() {
  local flag="${1:-}"
  if [[ -n "$flag" ]]; then
    DATA_DIR="$(abspath "$flag")"
  elif [[ -n "${CLICKHOUSE_DATA_DIR:-}" ]]; then
    DATA_DIR="$(abspath "$CLICKHOUSE_DATA_DIR")"
  elif [[ -s "$CACHE_DIR/clickhouse-current-data-dir" ]]; then
    DATA_DIR="$(cat "$CACHE_DIR/clickhouse-current-data-dir")"
  else
    DATA_DIR="$CACHE_DIR/clickhouse-data"
  fi
}

load_layout() {
  local f="$DATA_DIR/server.env" k v
  [[ -f "$f" ]] || return 1
  while IFS='=' read -r k v; do
    case "$k" in
      TCP_PORT) TCP_PORT="$v" ;;
      HTTP_PORT) HTTP_PORT="$v" ;;
    esac
  done <"$f"
}

require_layout() { load_layout || die "no server in $DATA_DIR (run '$PROG start' first)"; }

save_layout() {
  printf 'TCP_PORT=%s\nHTTP_PORT=%s\nCHDB_CORE_VERSION=%s\n' "$TCP_PORT" "$HTTP_PORT" "$CHDB_CORE_VERSION" >"$DATA_DIR/server.env.tmp"
  mv "$DATA_DIR/server.env.tmp" "$DATA_DIR/server.env"
}

dsn() { printf 'clickhouse://default@127.0.0.1:%s/default\n' "$TCP_PORT"; }

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" >/dev/null 2>&1; }

free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

server_pid() { # -> prints the pid if this data dir's server is alive
  local pid
  pid="$(cat "$DATA_DIR/clickhouse.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against pid reuse: the process must serve this data dir.
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$DATA_DIR/db" || return 1
  fi
  printf '%s\n' "$pid"
}

# answers -> 0 if the HTTP interface runs a query (the native port opens at the same time).
answers() {
  "$VENV/bin/python" - "$HTTP_PORT" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/?query=SELECT%201", timeout=3) as r:
    sys.exit(0 if r.read().strip() == b"1" else 1)
EOF
}

# The server: one clickhouse-local query that starts the listeners and then blocks at
# zero CPU reading a fifo nobody writes. Listeners live as long as that query;
# writing EOF into the fifo ends it (graceful stop). Ports come from config.xml in the
# current directory; TabSeparated becomes the default output format (CSV would break
# HTTP clients).
SERVER_PY='
import sys
from chdb import _chdb
path, fifo = sys.argv[1], sys.argv[2]
res = _chdb.query(
    "SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; "
    "SELECT count() FROM file(\x27" + fifo + "\x27, \x27LineAsString\x27, \x27l String\x27)",
    "TabSeparated", path=path)
print("clickhouse.sh: server query ended:", str(res).strip(), file=sys.stderr)
'

launch() {
  mkdir -p "$DATA_DIR/run" "$DATA_DIR/db"
  cat >"$DATA_DIR/run/config.xml" <<EOF
<clickhouse>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>$TCP_PORT</tcp_port>
  <http_port>$HTTP_PORT</http_port>
</clickhouse>
EOF
  rm -f "$DATA_DIR/run/stop.fifo"
  mkfifo "$DATA_DIR/run/stop.fifo"
  save_layout
  (
    cd "$DATA_DIR/run"
    exec 9>&- # the install lock must not be inherited
    setsid nohup "$VENV/bin/python" -c "$SERVER_PY" "$DATA_DIR/db" "$DATA_DIR/run/stop.fifo" \
      >>"$DATA_DIR/server.log" 2>&1 </dev/null &
    echo $! >"$DATA_DIR/clickhouse.pid"
  )
}

# wait_ready [PID]: PID is the process launch just started. Until it has exec'd Python,
# its command line is still the forking shell's (no data dir in it): on a loaded machine
# that lasts long enough for server_pid to call it gone, so a fresh launch is only
# "exited" once the process itself is.
wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT)) launched="${1:-}"
  while ((SECONDS < deadline)); do
    if [[ -n "$launched" ]]; then
      kill -0 "$launched" 2>/dev/null
    else
      server_pid >/dev/null
    fi || {
      tail -n 40 "$DATA_DIR/server.log" >&2 || true
      die "the server exited while starting (log: $DATA_DIR/server.log)"
    }
    if answers; then return 0; fi
    sleep 0.3
  done
  tail -n 40 "$DATA_DIR/server.log" >&2 || true
  cmd_stop_quiet
  die "the server did not answer within ${START_TIMEOUT}s (log: $DATA_DIR/server.log)"
}

# ---------------------------------------------------------------- commands

cmd_start() {
  local flag_port="" flag_http="" flag_dir=""
  while (($#)); do
    case "$1" in
      --port) flag_port="$2"; shift 2 ;;
      --http-port) flag_http="$2"; shift 2 ;;
      --data-dir) flag_dir="$2"; shift 2 ;;
      *) usage; die "unknown option for start: $1" ;;
    esac
  done
  cmd_install
  resolve_data_dir "$flag_dir"
  mkdir -p "$DATA_DIR"
  load_layout || true
  if server_pid >/dev/null; then
    [[ -z "$flag_port" || "$flag_port" == "$TCP_PORT" ]] || die "already running in $DATA_DIR on port $TCP_PORT, not $flag_port"
    wait_ready
    log "already running (pid $(server_pid)), native 127.0.0.1:$TCP_PORT, http 127.0.0.1:$HTTP_PORT"
    echo "$DATA_DIR" >"$CACHE_DIR/clickhouse-current-data-dir"
    dsn
    return 0
  fi
  TCP_PORT="${flag_port:-${TCP_PORT:-$(free_port)}}"
  HTTP_PORT="${flag_http:-${HTTP_PORT:-$(free_port)}}"
  [[ "$TCP_PORT" != "$HTTP_PORT" ]] || HTTP_PORT="$(free_port)"
  local p
  for p in "$TCP_PORT" "$HTTP_PORT"; do
    port_open "$p" && die "port $p on 127.0.0.1 is already in use"
  done
  launch
  log "started pid $(cat "$DATA_DIR/clickhouse.pid") (native 127.0.0.1:$TCP_PORT, http 127.0.0.1:$HTTP_PORT, data $DATA_DIR/db, log $DATA_DIR/server.log)"
  wait_ready "$(cat "$DATA_DIR/clickhouse.pid")"
  echo "$DATA_DIR" >"$CACHE_DIR/clickhouse-current-data-dir"
  log "ready: http://default@127.0.0.1:$HTTP_PORT/default"
  dsn
}

cmd_stop_quiet() {
  local pid deadline
  pid="$(server_pid)" || { rm -f "$DATA_DIR/clickhouse.pid"; return 0; }
  # EOF on the fifo ends the serving query; SIGTERM if that does not help.
  timeout 5 bash -c ': >"$1"' _ "$DATA_DIR/run/stop.fifo" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "still running after ${STOP_TIMEOUT}s, sending SIGKILL to pid $pid"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$DATA_DIR/clickhouse.pid"
}

dir_flag() { # parses [--data-dir DIR] and resolves the data dir
  local flag=""
  while (($#)); do
    case "$1" in
      --data-dir) flag="$2"; shift 2 ;;
      *) usage; die "unknown option: $1" ;;
    esac
  done
  resolve_data_dir "$flag"
}

cmd_stop() {
  dir_flag "$@"
  if server_pid >/dev/null; then
    cmd_stop_quiet
    log "stopped (data kept in $DATA_DIR)"
  else
    rm -f "$DATA_DIR/clickhouse.pid"
    log "not running ($DATA_DIR)"
  fi
}

cmd_kill() {
  dir_flag "$@"
  local pid
  pid="$(server_pid)" || { log "not running ($DATA_DIR)"; return 0; }
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$DATA_DIR/clickhouse.pid"
  log "killed pid $pid"
}

cmd_restart() {
  dir_flag "$@"
  require_layout
  cmd_stop_quiet
  cmd_start --data-dir "$DATA_DIR"
}

cmd_status() {
  dir_flag "$@"
  require_layout
  local pid
  if pid="$(server_pid)" && [[ -x "$VENV/bin/python" ]] && answers; then
    log "up: pid $pid, native 127.0.0.1:$TCP_PORT, http 127.0.0.1:$HTTP_PORT, data $DATA_DIR"
    return 0
  fi
  log "down (data $DATA_DIR, native port $TCP_PORT)"
  return 3
}

cmd_dsn() {
  dir_flag "$@"
  require_layout
  log "http: http://default@127.0.0.1:$HTTP_PORT/default"
  dsn
}

cmd_clean() {
  local all=0 flag=""
  while (($#)); do
    case "$1" in
      --all) all=1; shift ;;
      --data-dir) flag="$2"; shift 2 ;;
      *) usage; die "unknown option for clean: $1" ;;
    esac
  done
  resolve_data_dir "$flag"
  cmd_stop_quiet
  rm -rf "$DATA_DIR"
  if [[ "$(cat "$CACHE_DIR/clickhouse-current-data-dir" 2>/dev/null || true)" == "$DATA_DIR" ]]; then
    rm -f "$CACHE_DIR/clickhouse-current-data-dir"
  fi
  log "deleted $DATA_DIR"
  if ((all)); then rm -rf "$VENV"; log "deleted $VENV"; fi
}

main() {
  local cmd="${1:-}"
  (($#)) && shift
  case "$cmd" in
    install) cmd_install ;;
    python) cmd_install && echo "$VENV/bin/python" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    kill) cmd_kill "$@" ;;
    restart) cmd_restart "$@" ;;
    status) cmd_status "$@" ;;
    dsn) cmd_dsn "$@" ;;
    clean) cmd_clean "$@" ;;
    -h | --help | help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
