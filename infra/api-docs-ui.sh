#!/usr/bin/env bash
# The interactive API docs' browser files (Scalar at /schema, Swagger UI at /schema/swagger),
# vendored from the npm registry at install time so the app serves them itself: nothing is
# fetched from a CDN when a page loads (an agency's locked-down network sees a blank page).
# Pinned by version and by the registry's sha512; re-run after changing a pin.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=backend/api_docs_vendor
SCALAR=@scalar/api-reference@1.72.1
SCALAR_SHA512=XpEJ0rfc/cXbCrR+iC4kK0o/WwX2dTtGQbT049OlPKAHD6IMIFdTeGz2r+M27P2EDWKyUITRm/NzlP8z2pw/Ow==
SWAGGER=swagger-ui-dist@5.35.0
SWAGGER_SHA512=U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==
STAMP="$DEST/.versions"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SCALAR $SWAGGER" ]; then
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() { # package, expected sha512 (base64) -> unpacked into $work/<dir>
  local package=$1 expected=$2 dir=$3 tarball
  tarball=$(cd "$work" && npm pack --silent "$package" | tail -n 1)
  actual=$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w0)
  if [ "$actual" != "$expected" ]; then
    echo "api-docs-ui: $package has sha512 $actual, expected $expected" >&2
    exit 1
  fi
  mkdir -p "$work/$dir"
  tar -xzf "$work/$tarball" -C "$work/$dir" --strip-components=1
}

fetch "$SCALAR" "$SCALAR_SHA512" scalar
fetch "$SWAGGER" "$SWAGGER_SHA512" swagger

rm -rf "$DEST"
mkdir -p "$DEST/scalar" "$DEST/swagger-ui"
cp "$work/scalar/dist/browser/standalone.js" "$work/scalar/dist/style.css" \
  "$work/scalar/package.json" "$DEST/scalar/"
cp "$work/swagger/swagger-ui-bundle.js" "$work/swagger/swagger-ui-standalone-preset.js" \
  "$work/swagger/swagger-ui.css" "$work/swagger/favicon-32x32.png" "$work/swagger/LICENSE" \
  "$DEST/swagger-ui/"
echo "$SCALAR $SWAGGER" > "$STAMP"
echo "api-docs-ui: $SCALAR and $SWAGGER in $DEST"
