"""The PostGIS store (see README.md): ``open_store("postgresql://...")`` selects it."""
from .database import drop as drop_database
from .database import upgrade
from .store import ATLAS_CHANNEL, SYSTEM_SCOPE, PostGISStore

__all__ = ["PostGISStore", "drop_database", "upgrade", "ATLAS_CHANNEL", "SYSTEM_SCOPE"]
