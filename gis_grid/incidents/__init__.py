"""Cases (社情民意事件): the workflow model, aggregations and early warning.

- :mod:`.model`: categories, departments, deadlines, the 7-step workflow, supervision colours;
- :mod:`.service`: create (auto-located) and advance cases in a store;
- the 2014-2016 demo history lives in :mod:`gis_grid.demo.cases`;
- :mod:`.aggregate`: per-grid / per-department statistics, assessment, rankings.
"""
