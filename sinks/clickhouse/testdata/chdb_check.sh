#!/usr/bin/env bash
# chdb_check.sh validates the ClickHouse sink's SQL on a real ClickHouse engine: chdb,
# ClickHouse in-process from PyPI, so that no server or Docker is needed.
#
# It installs chdb with pip when it is missing, has the Go test TestRenderSQLForChdb
# write the rendered DDL, the writer's inserts (Native-format files with their
# settings) and its read queries to a temporary directory, and runs chdb_check.py on
# them. Exit status 0 when every check passes.
#
# Usage (from anywhere): bash sinks/clickhouse/testdata/chdb_check.sh
# Environment: PYTHON (default python3), GO (default go).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
py="${PYTHON:-python3}"
go="${GO:-go}"

if ! "$py" -c 'import chdb' >/dev/null 2>&1; then
	echo "chdb_check: installing chdb with pip" >&2
	# A distribution's own Python refuses system-wide installs (PEP 668): fall back to
	# the user site, then to overriding the marker.
	export PIP_ROOT_USER_ACTION=ignore
	"$py" -m pip install --quiet --disable-pip-version-check chdb ||
		"$py" -m pip install --quiet --disable-pip-version-check --user chdb ||
		"$py" -m pip install --quiet --disable-pip-version-check --break-system-packages chdb
fi

out="$(mktemp -d "${TMPDIR:-/tmp}/spanpipe-chdb-sql.XXXXXX")"
trap 'rm -rf "$out"' EXIT

if ! log="$(cd "$root" && SPANPIPE_CHDB_OUT="$out" "$go" test -count=1 -run '^TestRender(Reader)?SQLForChdb$' ./sinks/clickhouse 2>&1)"; then
	echo "$log" >&2
	echo "chdb_check: rendering the SQL failed" >&2
	exit 1
fi

"$py" "$here/chdb_check.py" "$out"
