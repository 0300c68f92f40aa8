#!/bin/sh
# Checks and unit-tests the Prometheus rules in this directory:
#   promtool check rules rules.yml && promtool test rules rules_test.yml
# Installs promtool first if it is missing: on Debian/Ubuntu from the distribution's
# "prometheus" package (bookworm ships 2.42), quietly. The package may start a
# prometheus service on hosts with systemd; this script stops and disables it again.
# Set PROMTOOL to use a specific binary.
set -eu
cd "$(dirname "$0")"

PROMTOOL="${PROMTOOL:-promtool}"
if ! command -v "$PROMTOOL" >/dev/null 2>&1; then
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "check.sh: promtool not found and this is not a Debian-like system;" >&2
		echo "  get it from https://prometheus.io/download/ (it ships in the prometheus tarball) or set PROMTOOL" >&2
		exit 1
	fi
	SUDO=""
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
			echo "check.sh: promtool not found; installing it needs root (apt-get install prometheus)" >&2
			exit 1
		fi
	fi
	echo "check.sh: installing promtool (Debian package prometheus)" >&2
	log=$(mktemp)
	if ! { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } >"$log" 2>&1; then
		cat "$log" >&2
		rm -f "$log"
		echo "check.sh: could not install promtool" >&2
		exit 1
	fi
	rm -f "$log"
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
		$SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
	fi
	PROMTOOL=promtool
fi

"$PROMTOOL" --version 2>&1 | head -n 1
"$PROMTOOL" check rules rules.yml
"$PROMTOOL" test rules rules_test.yml
