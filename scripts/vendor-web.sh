#!/usr/bin/env bash
# Refreshes the web app's third-party browser libraries under
# server/web/vendor/ from npm, unmodified, at the pinned versions below.
# The files are committed: `go build` embeds them and needs no network, no
# npm and no bundler. Run this only to change a version:
#
#   bash scripts/vendor-web.sh
#
# then check the page still works (README "Web app") and commit the result.
# Needs npm (only for `npm pack`, which downloads a package tarball without
# installing anything or running its scripts), tar and sha256sum.
set -euo pipefail

XTERM_VERSION=6.0.0     # @xterm/xterm, MIT
FIT_VERSION=0.11.0      # @xterm/addon-fit, MIT

cd "$(dirname "$0")/.."
dest=server/web/vendor/xterm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "@xterm/xterm@$XTERM_VERSION" "@xterm/addon-fit@$FIT_VERSION" >/dev/null)
mkdir -p "$tmp/xterm" "$tmp/fit"
tar -xzf "$tmp/xterm-xterm-$XTERM_VERSION.tgz" -C "$tmp/xterm"
tar -xzf "$tmp/xterm-addon-fit-$FIT_VERSION.tgz" -C "$tmp/fit"

rm -rf "$dest"
mkdir -p "$dest"
# ES module builds (the page loads them with <script type="module">), the
# stylesheet, and each package's licence. Source maps stay out: they are
# several MB and only a debugger asks for them.
cp "$tmp/xterm/package/lib/xterm.mjs" "$dest/xterm.mjs"
cp "$tmp/xterm/package/css/xterm.css" "$dest/xterm.css"
cp "$tmp/xterm/package/LICENSE" "$dest/LICENSE"
cp "$tmp/fit/package/lib/addon-fit.mjs" "$dest/addon-fit.mjs"
cp "$tmp/fit/package/LICENSE" "$dest/LICENSE.addon-fit"

cat >"$dest/VERSIONS" <<EOF
@xterm/xterm $XTERM_VERSION (lib/xterm.mjs, css/xterm.css, LICENSE)
@xterm/addon-fit $FIT_VERSION (lib/addon-fit.mjs, LICENSE as LICENSE.addon-fit)
Unmodified copies from npm; refresh with scripts/vendor-web.sh.
EOF
(cd "$dest" && sha256sum xterm.mjs xterm.css addon-fit.mjs LICENSE LICENSE.addon-fit >SHA256SUMS)
echo "vendored into $dest:"
ls -l "$dest"
