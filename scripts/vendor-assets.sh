#!/usr/bin/env bash
# Vendor the map viewer's JS/CSS from the npm registry into web/static/ (committed; the
# viewer never loads anything from a CDN). Re-run to upgrade, then review and commit.
set -euo pipefail
LEAFLET_VERSION="${LEAFLET_VERSION:-1.9.4}"
VECTORGRID_VERSION="${VECTORGRID_VERSION:-1.3.0}"
here="$(cd "$(dirname "$0")/.." && pwd)"
static="$here/web/static"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "leaflet@$LEAFLET_VERSION" "leaflet.vectorgrid@$VECTORGRID_VERSION" >/dev/null
mkdir leaflet vectorgrid
tar xzf "leaflet-$LEAFLET_VERSION.tgz" -C leaflet
tar xzf "leaflet.vectorgrid-$VECTORGRID_VERSION.tgz" -C vectorgrid

rm -rf "$static/leaflet" "$static/vectorgrid"
mkdir -p "$static/leaflet/images" "$static/vectorgrid"
cp leaflet/package/dist/leaflet.js leaflet/package/dist/leaflet.css "$static/leaflet/"
# no source maps are vendored: drop the reference so dev tools do not request one
sed -i "/sourceMappingURL/d" "$static/leaflet/leaflet.js"
cp leaflet/package/dist/images/*.png "$static/leaflet/images/"
cp leaflet/package/LICENSE "$static/leaflet/LICENSE"
echo "leaflet $LEAFLET_VERSION (npm)" > "$static/leaflet/VERSION"
cp vectorgrid/package/dist/Leaflet.VectorGrid.bundled.min.js "$static/vectorgrid/"
# the package ships no LICENSE file: its README carries the licence text
{
  echo "Leaflet.VectorGrid $VECTORGRID_VERSION (npm leaflet.vectorgrid), licence \"Beerware\" as stated in its README:"
  echo
  sed -n '/THE BEER-WARE LICENSE/,/^-----/p' vectorgrid/package/README.md
  echo
  echo "The bundled build also contains (per the README): geojson-vt (ISC), pbf (BSD),"
  echo "topojson (BSD) and vector-tile (BSD), all by their respective authors."
} > "$static/vectorgrid/LICENSE"
echo "leaflet.vectorgrid $VECTORGRID_VERSION (npm)" > "$static/vectorgrid/VERSION"
echo "vendored into $static"
