"""The curator pages in process (FastAPI's TestClient): every route, keys, ranges, containment, relabel."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from catalogue_cases import features
from fastapi.testclient import TestClient
from ui_cases import KEY, WRITERS, curated_catalogue

from artistsim.catalogue.auth import ApiKeys
from artistsim.catalogue.corrections import CORRECTIONS, read
from artistsim.catalogue.live import LiveCatalogue
from artistsim.catalogue.service import create_app
from artistsim.catalogue.store import Manifest

ORIGIN = {"Origin": "http://testserver"}
BEARER = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    return curated_catalogue(tmp_path_factory.mktemp("ui"))


def client_for(catalogue: Path, keys: dict[str, str] | None = None) -> TestClient:
    app = create_app(LiveCatalogue(catalogue), auth=ApiKeys(WRITERS if keys is None else keys))
    return TestClient(app, follow_redirects=False)


@pytest.fixture(scope="module")
def client(built) -> TestClient:
    return client_for(built["catalogue"])


@pytest.fixture
def fresh(built, tmp_path) -> tuple[TestClient, Path]:
    """A copy of the catalogue that a test may change."""
    cat = tmp_path / "cat"
    shutil.copytree(built["catalogue"], cat)
    return client_for(cat), cat


def test_track_page_names_the_artist_file_neighbours_and_plays_audio(client, built):
    tid = built["first"]
    html = client.get(f"/ui/tracks/{tid}").text
    assert f"Singer {built['first_artist']} (#{built['first_artist']})" in html
    assert f"{tid}.wav" in html and "0:01" in html
    assert f'src="/ui/audio/{tid}"' in html
    listed = [int(t) for t in re.findall(r'class="neighbour" href="/ui/tracks/(\d+)"', html)]
    assert len(listed) == 20 and tid not in listed
    same = html.count('class="same"')
    truly_same = sum(built["artists"][built["trackids"].index(t)] == built["first_artist"]
                     for t in listed if t in built["trackids"])
    assert same == truly_same and same >= 3  # the artist's other tracks, each marked


def test_artist_page_lists_tracks_nearest_artists_and_others(client, built):
    artist = built["first_artist"]
    html = client.get(f"/ui/artists/{artist}").text
    mine = [t for t, a in zip(built["trackids"], built["artists"]) if a == artist]
    section = html.split('id="tracks"')[1].split("</table>")[0]
    assert sorted(int(t) for t in re.findall(r"/ui/tracks/(\d+)", section)) == sorted(mine)
    nearest = html.split('id="nearest-artists"')[1].split("</table>")[0]
    assert f"/ui/artists/{artist}\"" not in nearest and len(re.findall(r"/ui/artists/\d+", nearest)) == 5
    others = html.split('id="others"')[1].split("</table>")[0]
    assert not set(int(t) for t in re.findall(r"/ui/tracks/(\d+)", others)) & set(mine)


@pytest.mark.parametrize("path, status", [("/ui/tracks/5", 404), ("/ui/tracks/abc", 422), ("/ui/artists/999", 404),
                                          ("/ui/tracks/1003?k=0", 422), ("/ui/audit?page=x", 422),
                                          ("/ui/audio/5", 404), ("/tracks/5", 404), ("/tracks/x", 422),
                                          ("/ui/tracks/100000000000000000000", 422),
                                          ("/tracks/100000000000000000000", 422), ("/ui/artists/-1", 404)])
def test_bad_requests_are_4xx_naming_the_problem(client, path, status):
    r = client.get(path)
    assert r.status_code == status
    assert ("trackid" in r.text or "artist" in r.text or "page" in r.text or "k must" in r.text)


def test_audio_is_served_with_ranges_from_the_source_folder_only(client, built):
    tid = built["first"]
    whole = client.get(f"/ui/audio/{tid}")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert whole.content == (built["audio"] / f"{tid}.wav").read_bytes()
    part = client.get(f"/ui/audio/{tid}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    # a symlink leading out of the audio root is refused, and the page offers no player
    assert client.get(f"/ui/audio/{built['escaped']}").status_code == 404
    assert "<audio" not in client.get(f"/ui/tracks/{built['escaped']}").text


def test_track_json_names_the_label(client, built):
    tid = built["first"]
    body = client.get(f"/tracks/{tid}").json()
    assert body["artist"] == built["first_artist"] and body["artist_name"] == f"Singer {built['first_artist']}"
    assert body["path"].endswith(f"{tid}.wav") and body["duration"] == 1.0


def test_pages_are_read_only_without_a_key(client):
    html = client.get("/ui/audit").text
    assert 'class="suspect"' in html and "/ui/audit/decide" not in html and "Log in" in html
    r = client.post("/ui/audit/decide", data={"trackid": "1003", "decision": "skip"}, headers=ORIGIN)
    assert r.status_code == 401 and "log in" in r.text.lower()
    assert client.post("/ui/audit/apply", headers=ORIGIN).status_code == 401
    r = client.post("/ui/audit/decide", data={"trackid": "1003", "decision": "skip"},
                    headers={"Authorization": "Bearer wrong-key-000"})
    assert r.status_code == 403


def test_login_cookie_and_origin_check(fresh):
    client, cat = fresh
    assert client.post("/ui/login", data={"key": "nope", "next": "/ui/audit"}, headers=ORIGIN).status_code == 403
    assert client.post("/ui/login", data={"key": KEY}).status_code == 403  # no Origin: refused
    r = client.post("/ui/login", data={"key": KEY, "next": "https://elsewhere.example/"}, headers=ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == "/ui"  # never sent to another site
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    assert "signed in as alice" in client.get("/ui/audit").text
    tid = int(re.search(r'name="trackid" value="(\d+)"', client.get("/ui/audit").text).group(1))
    forged = client.post("/ui/audit/decide", data={"trackid": str(tid), "decision": "skip"},
                         headers={"Origin": "http://evil.example"})
    assert forged.status_code == 403 and not (cat / CORRECTIONS).exists()
    ok = client.post("/ui/audit/decide", data={"trackid": str(tid), "decision": "skip", "page": "1"}, headers=ORIGIN)
    assert ok.status_code == 303 and ok.headers["location"] == "/ui/audit?page=1"
    log = read(cat / CORRECTIONS)
    assert log["who"].tolist() == ["alice"] and log["decision"].tolist() == ["skip"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", log["when"].iloc[0])
    assert f'id="suspect-{tid}"' not in client.get("/ui/audit").text  # decided rows leave the list


def test_decisions_then_apply_relabel_a_new_generation(fresh, built):
    client, cat = fresh
    html = client.get("/ui/audit", headers=BEARER).text
    tids = [int(t) for t in re.findall(r'id="suspect-(\d+)"', html)][:3]
    suspected = [int(a) for a in re.findall(r'name="artist" value="(\d+)"', html)][:3]
    before = Manifest.read(cat)
    old_files = {p.name: p.read_bytes() for p in (cat / before.main).iterdir()}
    confirmed = client.get(f"/tracks/{tids[0]}").json()["artist"]
    for tid, decision in zip(tids, ("confirm", "move", "skip")):
        r = client.post("/ui/audit/decide", headers=BEARER,
                        data={"trackid": str(tid), "decision": decision, "artist": str(suspected[1])})
        assert r.status_code == 303
    other = built["trackids"][1]
    r = client.post("/ui/audit/decide", headers=BEARER, data={"trackid": str(other), "decision": "move",
                                                              "other": "Singer 77"})
    assert r.status_code == 303
    assert client.post("/ui/audit/decide", headers=BEARER, data={"trackid": str(other), "decision": "move",
                                                                 "other": "Nobody"}).status_code == 422
    assert 'id="pending">2<' in client.get("/ui/audit").text
    r = client.post("/ui/audit/apply", headers=BEARER)
    assert r.status_code == 303 and r.headers["location"] == "/ui/audit?applied=2"
    after = Manifest.read(cat)
    assert after.generation == before.generation + 1 and after.main != before.main
    assert after.index == before.index  # same vectors, same order: the index is kept
    assert client.get(f"/tracks/{tids[1]}").json()["artist"] == suspected[1]
    assert client.get(f"/tracks/{other}").json()["artist"] == 77
    assert client.get(f"/tracks/{tids[0]}").json()["artist"] == confirmed
    assert f"Singer {suspected[1]}" in client.get(f"/ui/tracks/{tids[1]}").text
    assert 'id="pending">0<' in client.get("/ui/audit").text  # applying again would change nothing
    for name in ("embeddings.npy", "trackids.npy"):  # the new segment holds the same vectors
        assert (cat / after.main / name).read_bytes() == old_files[name]
    assert (cat / after.main / "artists.npy").read_bytes() != old_files["artists.npy"]


def test_identify_an_uploaded_features_file(client):
    buf = _npy(features(3))
    html = client.post("/ui/identify", files={"upload": ("query.npy", buf)}).text
    assert 'id="verdict"' in html and "query.npy" in html
    assert len(re.findall(r"/ui/artists/\d+", html.split('id="candidates"')[1].split("</table>")[0])) == 5
    assert len(re.findall(r"/ui/tracks/\d+", html.split('id="neighbours"')[1])) == 10
    bad = client.post("/ui/identify", files={"upload": ("bad.npy", b"not numpy")})
    assert bad.status_code == 422 and "bad.npy" in bad.text
    wrong = client.post("/ui/identify", files={"upload": ("x.npy", _npy(np.zeros((3, 4), np.float32)))})
    assert wrong.status_code == 422
    assert client.post("/ui/identify", data={"x": "1"}).status_code == 422


def test_identify_an_uploaded_audio_file(client, built):
    import io

    import soundfile as sf

    buf = io.BytesIO()
    t = np.arange(3 * 22050) / 22050
    sf.write(buf, (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 22050, format="WAV")
    html = client.post("/ui/identify", files={"upload": ("song.wav", buf.getvalue())}).text
    assert 'id="verdict"' in html and "song.wav" in html
    short = (built["audio"] / f"{built['first']}.wav").read_bytes()  # 1 s: shorter than one window
    r = client.post("/ui/identify", files={"upload": ("short.wav", short)})
    assert r.status_code == 422 and "shorter than one window" in r.text
    assert client.post("/ui/identify", files={"upload": ("song.wav", b"RIFF....garbage")}).status_code == 422


def test_map_draws_every_artist_and_marks_suspects(client, built):
    html = client.get("/ui/map").text
    assert html.count("<circle") == len(set(built["artists"]))
    assert "PCA" in html
    assert f'href="/ui/tracks/{built["planted"]}" class="suspect-mark"' in html


def test_the_planted_swap_leads_the_audit(client, built):
    assert re.findall(r'id="suspect-(\d+)"', client.get("/ui/audit").text)[0] == str(built["planted"])


def test_audit_pages_through_the_suspects(client):
    first = re.findall(r'id="suspect-(\d+)"', client.get("/ui/audit?size=5").text)
    second = re.findall(r'id="suspect-(\d+)"', client.get("/ui/audit?size=5&page=2").text)
    assert len(first) == 5 and second and not set(first) & set(second)
    assert client.get("/ui/audit?size=500").status_code == 422


def test_static_assets_ship_with_the_package(client):
    assert "keydown" in client.get("/ui/static/app.js").text
    assert client.get("/ui/static/style.css").status_code == 200
    assert client.get("/ui").status_code == 200


def _npy(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_a_slow_audit_is_computed_in_the_background(built, monkeypatch):
    import threading

    from artistsim.catalogue.ui import state as state_module

    release = threading.Event()
    real = state_module._review

    def slow(snap, method):
        release.wait(30)
        return real(snap, method)

    monkeypatch.setattr(state_module, "_review", slow)
    monkeypatch.setattr(state_module, "AUDIT_WAIT", 0.05)
    client = client_for(built["catalogue"])
    waiting = client.get("/ui/audit")
    assert waiting.status_code == 200 and 'id="computing"' in waiting.text and 'http-equiv="refresh"' in waiting.text
    assert "suspect-mark" not in client.get("/ui/map").text  # the map is drawn meanwhile, without suspects
    release.set()
    for _ in range(600):  # the background thread finishes; the next page shows the ranking
        html = client.get("/ui/audit").text
        if 'id="computing"' not in html:
            break
    assert f'id="suspect-{built["planted"]}"' in html
    assert "suspect-mark" in client.get("/ui/map").text
