"""The published body-size limit is enforced with 413 before the body is read."""
from __future__ import annotations

import json

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import bearer, make_toy_store


def test_oversized_body_gets_413_and_small_one_passes(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    with TestClient(create_app(Settings(db=store.url, max_body_bytes=200)), headers=bearer(store)) as c:
        small = c.post("/locate", json=[[117.505, 34.815]])
        assert small.status_code == 200 and small.json()["results"][0]["grid"] == "370402001001001"
        big = c.post("/locate", json=[[117.505, 34.815]] * 50)
        assert big.status_code == 413
        assert "200" in big.json()["detail"] and "gis-grid locate" in big.json()["detail"]


def _chunks(data: bytes, size: int = 64):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_chunked_body_over_the_limit_is_413_and_nothing_is_stored(tmp_path):
    """No Content-Length (a generator body goes chunked): the bytes are counted as they arrive."""
    store = make_toy_store(tmp_path / "toy.gpkg")
    with TestClient(create_app(Settings(db=store.url, max_body_bytes=2000)), headers=bearer(store)) as c:
        before = len(store.incidents(columns=["id"]))
        case = json.dumps(dict(lon=117.505, lat=34.815, category="dispute", description="x" * 5000)).encode()
        r = c.post("/incidents", content=_chunks(case), headers={"content-type": "application/json"})
        assert "content-length" not in {k.lower() for k in r.request.headers}
        assert r.status_code == 413, r.text[:300]
        assert "2000" in r.json()["detail"]
        assert len(store.incidents(columns=["id"])) == before
        ring = [[117.5 + 0.001 * (i % 10), 34.81 + 0.0001 * i] for i in range(500)]
        poly = json.dumps({"type": "Polygon", "coordinates": [ring + [ring[0]]]}).encode()
        for url in ("/residents/search", "/locate"):
            body = poly if url != "/locate" else json.dumps([[117.505, 34.815]] * 300).encode()
            r = c.post(url, content=_chunks(body), headers={"content-type": "application/json"})
            assert r.status_code == 413, (url, r.status_code, r.text[:300])
        small = json.dumps(dict(lon=117.505, lat=34.815, category="dispute", description="ok")).encode()
        r = c.post("/incidents", content=_chunks(small), headers={"content-type": "application/json"})
        assert r.status_code == 201, r.text[:300]


def test_a_lying_content_length_is_counted_too(tmp_path):
    """The middleware counts what arrives, not what the header says."""
    import asyncio

    from api.app import BodyLimit

    seen = []

    async def app(scope, receive, send):
        while True:
            m = await receive()
            seen.append(len(m.get("body", b"")))
            if not m.get("more_body"):
                break

    messages = [{"type": "http.request", "body": b"x" * 80, "more_body": True}] * 5

    async def receive():
        return messages[len(seen)]

    mw = BodyLimit(app, max_bytes=200)
    scope = {"type": "http", "headers": [(b"content-length", b"10")]}
    from api.app import BodyTooLarge
    # a loop of its own on a thread of its own: an earlier test may have left this thread's loop running
    from concurrent.futures import ThreadPoolExecutor
    try:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, mw(scope, receive, None)).result()
        raised = False
    except BodyTooLarge:
        raised = True
    assert raised and seen == [80, 80]  # the third chunk (240 bytes in all) is refused unread by the app
