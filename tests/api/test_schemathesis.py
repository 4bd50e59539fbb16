"""Schemathesis over the whole OpenAPI document, with a key of every role in the role table.

Hypothesis draws 100 schema-conforming requests per operation (fewer only when an
operation's whole input space is smaller, e.g. ``GET /me`` has one), once; every role in
``gis_grid.security.roles.ROLES`` (read from the table, so a new role is fuzzed without
touching this file) then sends all of them with its own key. Every response must pass: no
5xx, a documented status code, a documented content type and headers, and a body that
conforms to the documented schema.

Why generate once: drawing a request costs ~10-30 ms here (Hypothesis and the schema
strategies), sending it in-process ~3-5 ms. Replaying one pool for all roles keeps the
whole module at ~11 roles x ~45 operations x 100 = ~50,000 requests in a few minutes on
2 cores instead of ~15 (``test_schemathesis_summary`` prints the figures of a run).
Generation is derandomised, so a failure reproduces.
"""
from __future__ import annotations

import time
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from fastapi.testclient import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from api.app import create_app
from api.settings import Settings
from common import bearer, make_toy_store, scope_of
from gis_grid.security.roles import ROLES

# the HTTP contract is the same on both stores: the full 100 per operation and role run on the
# GeoPackage store; the PostGIS pass draws fewer, to catch store-specific 5xx at a fifth of the cost
EXAMPLES_BY_BACKEND = {"gpkg": 100, "postgis": 20}
EXAMPLES = EXAMPLES_BY_BACKEND["gpkg"]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
G1 = "370402001001001"  # a toy base grid; narrower roles get its street/community/grid as scope
STATS: dict[str, Counter] = {}


def scope_for(role: str) -> str:
    return scope_of(role, G1)


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory, store_backend):
    examples = EXAMPLES_BY_BACKEND[store_backend]
    STATS.clear()  # one backend at a time
    path = tmp_path_factory.mktemp("fuzz") / "toy.gpkg"
    store = make_toy_store(path)
    app = create_app(Settings(db=store.url))
    with TestClient(app):  # runs the lifespan once; schemathesis then calls the app in-process
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        pool = {op.label: (op, _draw(op, examples)) for op in (r.ok() for r in schema.get_all_operations())}
        with asgi.get_client(app) as session:  # one in-process client for every request
            yield pool, session, {role: bearer(store, role, scope_for(role)) for role in ROLES}, examples
    store.close()


def _draw(op, examples: int) -> list:
    cases: list = []

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def collect(case):
        cases.append(case)

    collect()
    return cases


@pytest.mark.parametrize("role", list(ROLES))
def test_every_operation_conforms_for_role(fuzz_env, role):
    pool, session, heads, _ = fuzz_env
    failures: list[str] = []
    counts = STATS.setdefault(role, Counter())
    started = time.monotonic()
    for label, (op, cases) in pool.items():
        seen: set[str] = set()
        for case in cases:
            counts[label] += 1
            try:
                case.call_and_validate(headers=heads[role], checks=CHECKS, session=session)
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a group; collect, don't stop
                text = str(exc).strip()
                key = text.splitlines()[0] if text else type(exc).__name__
                if key not in seen and len(seen) < 3:
                    seen.add(key)
                    failures.append(f"{label}: {text[:1500]}")
    STATS[role]["_seconds"] = int(time.monotonic() - started)
    assert not failures, f"{len(failures)} failures for {role}:\n\n" + "\n\n".join(failures)


def test_schemathesis_summary(fuzz_env):
    """Runs last in this module: prints how many requests each role made, and checks the floor."""
    pool, examples = fuzz_env[0], fuzz_env[3]
    if len(STATS) < len(ROLES):
        pytest.skip("the per-role runs did not all run in this session")
    small = {label: len(cases) for label, (_, cases) in pool.items() if len(cases) < examples}
    total = sum(v for c in STATS.values() for k, v in c.items() if k != "_seconds")
    print(f"\nschemathesis: {len(pool)} operations, {total} requests over {len(ROLES)} roles; "
          f"operations with fewer than {examples} distinct inputs: {small}")
    for role, c in STATS.items():
        print(f"  {role}: {sum(v for k, v in c.items() if k != '_seconds')} requests in {c['_seconds']} s")
    # only operations whose whole input space is smaller than the target may fall short of it
    assert all(n >= examples or _finite_inputs(op) for op, n in ((op, len(c)) for op, c in pool.values())), small


def _finite_inputs(op) -> bool:
    """No body, and every parameter an enum or a boolean: Hypothesis exhausts such a space early."""
    raw = op.definition.raw
    params = raw.get("parameters", [])
    return "requestBody" not in raw and all(
        "enum" in p.get("schema", {}) or p.get("schema", {}).get("type") == "boolean" for p in params)
