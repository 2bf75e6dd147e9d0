#!/bin/sh
# Rebuilds the dashboard's vendored xterm.js (web/vendor/) from Debian's
# node-xterm package with Debian's esbuild; README.md says why and how.
#
#   apt-get install -y node-xterm esbuild
#   sh dashboard/vendor/build-xterm.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../web/vendor"
src=/usr/share/nodejs/xterm
version=$(sed -n 's/^ *"version": *"\(.*\)",*$/\1/p' "$src/package.json")
[ "$version" = 3.8.1 ] || echo "note: node-xterm is $version, README.md describes 3.8.1" >&2
mkdir -p "$out"
# One ES module exporting the Terminal class with the fit addon applied
# (term.fit(), term.proposeGeometry()).
cd /usr/share/nodejs
esbuild --bundle --format=esm --minify --legal-comments=inline \
	--target=es2020 --log-level=warning --outfile="$out/xterm.js" <<'JS'
import Terminal from './xterm/lib/xterm.js';
import * as fit from './xterm/lib/addons/fit/fit.js';
Terminal.applyAddon(fit);
export { Terminal };
JS
{
	printf '/* xterm.js %s (node-xterm, Debian); MIT: see xterm.LICENSE */\n' "$version"
	cat "$out/xterm.js"
} >"$out/xterm.js.tmp" && mv "$out/xterm.js.tmp" "$out/xterm.js"
cp "$src/lib/xterm.css" "$out/xterm.css"
cp /usr/share/doc/node-xterm/copyright "$out/xterm.LICENSE"
sha256sum "$out/xterm.js" "$out/xterm.css" | sed "s|$out/||"
