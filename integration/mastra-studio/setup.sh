#!/usr/bin/env bash
# Makes the Mastra Studio proof (integration/mastra_studio_test.go) ready to run on any
# machine that reaches the npm registry: Node 22 and the built @spanpipe/mastra client
# (clients/mastra/scripts/setup.sh), then this directory's pinned packages from the
# committed package-lock.json (npm ci, skipped when node_modules already matches the
# lock). Idempotent. Prints the node binary on its last stdout line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
node="$(bash "$here/../../clients/mastra/scripts/setup.sh" | tail -n1)"
export PATH="$(dirname "$node"):$PATH"
cd "$here"
stamp=node_modules/.spanpipe-lock
if ! cmp -s package-lock.json "$stamp" 2>/dev/null; then
	npm ci --no-audit --no-fund --loglevel=error >&2
	cp package-lock.json "$stamp"
fi
echo "$node"
