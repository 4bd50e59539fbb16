"""Every router of the app, in one list the factory includes (order: the hot /locate first)."""
from . import (apidocs, auth, capabilities, grids, incident_map, incident_stats, incidents, locate, mapview, ogc,
               planning, residents, tiles)

ROUTERS = [locate.router, grids.router, residents.router, ogc.router, tiles.router, tiles.tms_router, mapview.router,
           capabilities.router, planning.router, incidents.router, incident_stats.router, incident_map.router,
           auth.router, apidocs.router]
