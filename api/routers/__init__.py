"""Every router of the app, in one list the factory includes."""
from . import locate

ROUTERS = [locate.router]

# routers added by later work register themselves here
for _name in ("grids", "residents", "ogc", "tiles", "mapview", "capabilities", "planning", "incidents", "incident_stats", "auth", "incident_map"):
    try:
        ROUTERS.append(__import__(f"{__name__}.{_name}", fromlist=["router"]).router)
    except ModuleNotFoundError as exc:  # not written yet
        if exc.name != f"{__name__}.{_name}":
            raise
