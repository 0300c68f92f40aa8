#!/usr/bin/env bash
# Makes clients/mastra ready to test on any machine that reaches the npm registry:
# Node 22 (node22.sh), the dependencies from the committed package-lock.json (npm ci,
# skipped when node_modules already matches the lock), and the ESM and CJS builds.
# Idempotent. Prints the node binary on its last stdout line.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(bash "$here/scripts/node22.sh")"
export PATH="$bin:$PATH"
cd "$here"
stamp=node_modules/.spanpipe-lock
if ! cmp -s package-lock.json "$stamp" 2>/dev/null; then
	npm ci --no-audit --no-fund --loglevel=error >&2
	cp package-lock.json "$stamp"
fi
# Build unless dist/ is newer than everything it is built from.
if [ ! -f dist/.built ] || [ -n "$(find src scripts/build.mjs tsconfig.json package-lock.json -newer dist/.built | head -n1)" ]; then
	npm run --silent build >&2
	touch dist/.built
fi
echo "$bin/node"
