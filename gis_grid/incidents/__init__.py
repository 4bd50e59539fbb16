"""Cases (社情民意事件): the workflow model, the demo history, aggregations and early warning.

- :mod:`.model`: categories, departments, deadlines, the 7-step workflow, supervision colours;
- :mod:`.service`: create (auto-located) and advance cases in a store;
- :mod:`.history`: the 2014-2016 demo history that reproduces the seed's figures;
- :mod:`.aggregate`: per-grid / per-department statistics, assessment, rankings.
"""
