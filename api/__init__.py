"""The FastAPI service over the gis_grid library: routers, dependencies and HTTP error mapping only."""
