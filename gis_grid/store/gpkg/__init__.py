"""The embedded default store: one GeoPackage file that QGIS and GDAL open (all of its SQL is here)."""
from .store import GeoPackageStore

__all__ = ["GeoPackageStore"]
