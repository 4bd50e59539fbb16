#!/usr/bin/env bash
# Debian packages the test suite drives for real: GDAL's ogrinfo (OGC API client test), its validate_gpkg.py
# and Chromium (browser test). Installs only what is missing; needs root or sudo.
set -euo pipefail
need=()
command -v ogrinfo >/dev/null 2>&1 || need+=(gdal-bin)
# GDAL's validate_gpkg.py (tests/gis_grid/test_store_gpkg.py checks the GeoPackage exports with it)
[ -e /usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py ] || need+=(python3-gdal)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# Chinese labels on the map (and in the browser test screenshot) need a CJK font
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
