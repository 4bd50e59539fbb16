"""The pages: HTML built from the library's data (``gis_grid`` never imports this package).

* :mod:`.viewer`          the command-centre map viewer (GET /map)
* :mod:`.incident_pages`  the standalone incident page (GET /map/incidents, ``gis-grid map``)
* :mod:`.plan_diff`       the plan diff map (GET /plans/{id}/map)
* :mod:`.assets`          what the pages share
"""
