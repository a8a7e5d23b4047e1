"""The curator pages driven by a real headless Chromium against the real server (a subprocess).

The walk a curator makes: open a track, follow a neighbour, play its audio, log in, review
three audit rows (confirm, move, skip), apply, see the corrected label on the track page
and in `GET /tracks/{id}`, identify an upload, open the map. A screenshot of each page
goes to screenshots/ at the repository's root (ignored by git).

Chromium is Debian's (`chromium` + `chromium-driver`, installed by .ci/run); nothing is
downloaded. Without it the test is skipped, saying so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from catalogue_cases import WRITER_KEY, Server, features
from ui_cases import curated_catalogue

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium "
                                       "chromium-driver; .ci/run installs them)")
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SHOTS = Path(__file__).resolve().parents[2] / "screenshots"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--window-size=1200,1000")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    built = curated_catalogue(root)
    with Server(built["catalogue"]) as server:
        yield built, server, root


@pytest.fixture(scope="module")
def browser(site):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={site[2] / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_page_load_timeout(60)
    SHOTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()


def wait(driver, condition, timeout: float = 30.0):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def test_a_curators_walk(site, browser):
    built, server, root = site
    d = browser
    first = built["first"]

    # a track, then one of its neighbours
    d.get(f"{server.url}/ui/tracks/{first}")
    assert d.find_element(By.ID, "trackid").text == str(first)
    assert d.find_element(By.ID, "artist").text == f"Singer {built['first_artist']} (#{built['first_artist']})"
    shot(d, "track")
    link = d.find_elements(By.CSS_SELECTOR, "a.neighbour")[0]
    target = link.text
    link.click()
    wait(d, lambda drv: drv.find_element(By.ID, "trackid").text == target)

    # its audio, served by the server with range requests, loads and reports its duration
    duration = wait(d, lambda drv: drv.execute_script(
        "const a = document.getElementById('player'); return a && a.readyState >= 1 ? a.duration : null;"))
    assert abs(duration - 1.0) < 0.05
    assert d.execute_script("return document.getElementById('player').error") is None

    # read-only until logged in
    d.get(f"{server.url}/ui/audit")
    assert not d.find_elements(By.CSS_SELECTOR, "button.confirm")
    d.find_element(By.ID, "login-link").click()
    d.find_element(By.ID, "key").send_keys(WRITER_KEY)
    d.find_element(By.ID, "login-button").click()
    wait(d, lambda drv: drv.find_elements(By.ID, "writer"))
    assert "signed in as env" in d.find_element(By.ID, "writer").text
    shot(d, "audit")

    # three rows: confirm, move to the suspected artist, skip
    reviewed = []
    for decision in ("confirm", "move", "skip"):
        article = d.find_element(By.CSS_SELECTOR, "article.suspect")
        tid = article.get_attribute("data-trackid")
        suspected = article.find_element(By.CSS_SELECTOR, "input[name=artist]").get_attribute("value")
        article.find_element(By.CSS_SELECTOR, f"button.{decision}").click()
        wait(d, lambda drv, t=tid: not drv.find_elements(By.ID, f"suspect-{t}"))
        reviewed.append((tid, decision, int(suspected)))
    assert reviewed[0][0] == str(built["planted"])  # the planted swap was the first suspect
    moved, _, new_artist = reviewed[1]
    assert d.find_element(By.ID, "pending").text == "1"
    d.find_element(By.ID, "apply").click()
    wait(d, lambda drv: drv.find_elements(By.ID, "applied"))
    shot(d, "audit-applied")

    # the corrected label, on the track page and in the JSON API
    d.get(f"{server.url}/ui/tracks/{moved}")
    assert d.find_element(By.ID, "artist").text == f"Singer {new_artist} (#{new_artist})"
    body = httpx.get(f"{server.url}/tracks/{moved}", timeout=10).json()
    assert body["artist"] == new_artist and body["artist_name"] == f"Singer {new_artist}"
    log = (built["catalogue"] / "corrections.tsv").read_text().splitlines()
    assert [line.split("\t")[3] for line in log[1:]] == ["confirm", "move", "skip"]
    assert all(line.split("\t")[4] == "env" for line in log[1:])

    # identify an upload
    upload = root / "query.npy"
    np.save(upload, features(11))
    d.get(f"{server.url}/ui/identify")
    d.find_element(By.ID, "upload").send_keys(str(upload))
    d.find_element(By.ID, "identify-button").click()
    verdict = wait(d, lambda drv: drv.find_elements(By.ID, "verdict"))[0].text
    assert verdict.startswith("query.npy:")
    assert len(d.find_elements(By.CSS_SELECTOR, "#candidates tbody tr")) == 5
    shot(d, "identify")

    # the map: one circle per artist, the remaining suspects marked
    d.get(f"{server.url}/ui/map")
    assert len(d.find_elements(By.CSS_SELECTOR, "svg#map circle")) == len(set(built["artists"]) | {new_artist})
    shot(d, "map")
    d.get(f"{server.url}/ui/artists/{new_artist}")
    assert moved in [a.text for a in d.find_elements(By.CSS_SELECTOR, "#tracks a")]
    shot(d, "artist")
