"""The service's hot path (catalogue/hotpath.py): plain similar-track GETs, batched searches."""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from artistsim.catalogue.hotpath import SimilarBatcher, parse_plain
from artistsim.catalogue.live import LiveCatalogue
from catalogue_cases import Server, make_catalogue, write_run  # noqa: E402
from conftest import write_tiny_dataset  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hotpath")
    data = write_tiny_dataset(root / "data", n_train_artists=8, tracks=5)
    run = write_run(root / "run")
    return {"flat": make_catalogue(root / "flat", data, run), "hnsw": make_catalogue(root / "hnsw", data, run, "hnsw"),
            "data": data}


def trackids(data: Path) -> list[int]:
    return [int(line.split("\t")[0]) for line in (data / "train_meta.tsv").read_text().splitlines()[1:]]


def same(a: dict, b: dict) -> bool:
    """Two answers agree: the same neighbours in the same order, scores equal up to float rounding
    (a batched product may round the last bit differently from a single one)."""
    def ids(x: dict) -> list:
        return [(n["trackid"], n["artist"]) for n in x["neighbours"]]

    return ({**a, "neighbours": None} == {**b, "neighbours": None} and ids(a) == ids(b)
            and [n["score"] for n in a["neighbours"]] == pytest.approx([n["score"] for n in b["neighbours"]]))


def test_only_plain_requests_take_the_hot_path():
    assert parse_plain("/tracks/12/similar", b"") == (12, 100)
    assert parse_plain("/tracks/12/similar", b"k=5") == (12, 5)
    for path, query in [("/tracks/abc/similar", b""), ("/tracks/-3/similar", b""), ("/tracks/12/similar", b"k=0"),
                        ("/tracks/12/similar", b"k=5000"), ("/tracks/12/similar", b"k=5&rerank=true"),
                        ("/tracks/12/similar", b"k=x"), ("/tracks/12", b""), ("/tracks//similar", b""),
                        ("/tracks/" + "9" * 30 + "/similar", b""), ("/tracks/\u0661\u0662/similar", b"")]:
        assert parse_plain(path, query) is None, (path, query)


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_a_batch_answers_each_query_as_alone(built, index):
    cat = LiveCatalogue(built[index])
    batcher = SimilarBatcher(cat, lanes=1)
    tids = trackids(built["data"])
    queries = [(t, k) for t in tids[:8] for k in (3, 7)] + [(123456789, 5)]
    together = batcher.answer(queries)
    alone = [batcher.answer([q])[0] for q in queries]
    assert together[-1] is None and alone[-1] is None  # not catalogued: the FastAPI route answers 404
    assert all(same(orjson.loads(a), orjson.loads(b)) for a, b in zip(together[:-1], alone[:-1]))
    body = orjson.loads(together[1])
    vec, rows = cat.vectors_of(np.array([tids[0]]))
    expected = cat.similar(vec, 7, rows)
    assert body["trackid"] == tids[0] and body["k"] == 7
    assert [n["trackid"] for n in body["neighbours"]] == expected.trackids[0].tolist()
    assert [n["score"] for n in body["neighbours"]] == pytest.approx(expected.scores[0].tolist())


def test_concurrent_requests_are_searched_together(built):
    class Recording(SimilarBatcher):
        sizes: list[int] = []

        def answer(self, queries):
            self.sizes.append(len(queries))
            return super().answer(queries)

    batcher = Recording(LiveCatalogue(built["flat"]), lanes=1)
    tids = trackids(built["data"])[:20]

    async def ask_all() -> list[bytes | None]:
        return await asyncio.gather(*(batcher.similar(t, 4) for t in tids))

    bodies = asyncio.run(ask_all())
    assert batcher.sizes == [20]  # all arrived while the lane was starting: one search call
    assert [orjson.loads(b)["trackid"] for b in bodies] == tids
    assert bodies == batcher.answer([(t, 4) for t in tids])  # the same batch again: bit for bit


def test_the_hot_path_answers_as_the_route_does(built):
    tids = trackids(built["data"])
    with Server(built["hnsw"]) as s:
        for tid in tids[:4]:  # "&rerank=false" is not plain: that request goes through the FastAPI route
            hot = httpx.get(f"{s.url}/tracks/{tid}/similar?k=7")
            route = httpx.get(f"{s.url}/tracks/{tid}/similar?k=7&rerank=false")
            assert hot.status_code == route.status_code == 200
            assert hot.headers["content-type"] == "application/json" and same(hot.json(), route.json())
        paths = [f"/tracks/{t}/similar?k={k}" for t in tids[:10] for k in (2, 9)]
        one_by_one = [httpx.get(s.url + p).json() for p in paths]
        with httpx.Client(base_url=s.url) as c, concurrent.futures.ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda p: c.get(p).json(), paths))
        assert all(same(a, b) for a, b in zip(together, one_by_one, strict=True))
        assert httpx.get(s.url + "/stats").json()["search"] == {"method": "hnsw", "efSearch": 128}
        r = httpx.get(f"{s.url}/tracks/123456789/similar?k=3")  # not catalogued: the route's 404
        assert r.status_code == 404 and "123456789" in r.json()["detail"]
