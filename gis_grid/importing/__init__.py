"""`gis-grid import`: a district's own grids, buildings or households from GIS files.

* :mod:`.reader`  format by content, the layer in a GeoPackage, the CRS -> EPSG:4490
* :mod:`.layers`  the columns each layer needs and the per-feature checks
* :mod:`.commit`  the next state, the coverage check on it, the atomic commit

The expected columns and the rules are in ``README.md`` beside this file.
"""
from .commit import LAYERS, CoverageRefusedError, ImportRejectedError, import_layer
from .layers import MissingColumnsError
from .reader import ImportFileError, detect_format

__all__ = ["LAYERS", "CoverageRefusedError", "ImportRejectedError", "ImportFileError", "MissingColumnsError",
           "import_layer", "detect_format"]
