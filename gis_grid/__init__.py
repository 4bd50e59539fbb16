"""gis_grid: grid-based social management analytics for Chinese city districts."""
__version__ = "0.1.0"
