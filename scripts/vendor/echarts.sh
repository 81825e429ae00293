#!/usr/bin/env bash
# Refresh the committed Apache ECharts build from the npm registry (run by hand when upgrading; the
# build and CI use the committed copy, so they need no network). The tarball's integrity is checked
# against the value npm publishes, then the minified file and its licence files are copied in.
set -euo pipefail
VERSION="${1:-6.1.0}"
DEST="$(cd "$(dirname "$0")/../.." && pwd)/src/suanwang/web/static/vendor/echarts"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
expected="$(npm view "echarts@$VERSION" dist.integrity)"
npm pack --silent "echarts@$VERSION" >/dev/null
actual="sha512-$(openssl dgst -sha512 -binary "echarts-$VERSION.tgz" | base64 -w0)"
[ "$expected" = "$actual" ] || { echo "integrity mismatch: $expected != $actual" >&2; exit 1; }
tar xzf "echarts-$VERSION.tgz"
mkdir -p "$DEST"
cp package/dist/echarts.min.js package/LICENSE package/NOTICE "$DEST/"
cp package/licenses/LICENSE-d3 "$DEST/LICENSE-d3"
echo "$VERSION" > "$DEST/VERSION"
echo "echarts $VERSION -> $DEST ($expected)"
