#!/usr/bin/env bash
# The console's browser libraries (htmx for the pages' requests, uPlot for the charts),
# vendored from the npm registry at install time so the app serves them itself under
# /console/static/vendor: nothing is fetched from a CDN when a page loads.
# Pinned by version and by the registry's sha512; re-run after changing a pin.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=frontend_api/static/vendor
HTMX=htmx.org@2.0.11
HTMX_SHA512=Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==
UPLOT=uplot@1.6.32
UPLOT_SHA512=KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==
STAMP="$DEST/.versions"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HTMX $UPLOT" ]; then
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() { # package, expected sha512 (base64), dir -> unpacked into $work/<dir>
  local package=$1 expected=$2 dir=$3 tarball
  tarball=$(cd "$work" && npm pack --silent "$package" | tail -n 1)
  actual=$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w0)
  if [ "$actual" != "$expected" ]; then
    echo "console-ui: $package has sha512 $actual, expected $expected" >&2
    exit 1
  fi
  mkdir -p "$work/$dir"
  tar -xzf "$work/$tarball" -C "$work/$dir" --strip-components=1
}

fetch "$HTMX" "$HTMX_SHA512" htmx
fetch "$UPLOT" "$UPLOT_SHA512" uplot

rm -rf "$DEST"
mkdir -p "$DEST"
cp "$work/htmx/dist/htmx.min.js" "$DEST/htmx.min.js"
cp "$work/htmx/LICENSE" "$DEST/htmx.LICENSE"
cp "$work/uplot/dist/uPlot.iife.min.js" "$work/uplot/dist/uPlot.min.css" "$DEST/"
cp "$work/uplot/LICENSE" "$DEST/uPlot.LICENSE"
echo "$HTMX $UPLOT" > "$STAMP"
echo "console-ui: $HTMX and $UPLOT in $DEST"
