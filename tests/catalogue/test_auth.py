"""API keys (catalogue/auth.py): the key file, the environment key, and who may write."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from artistsim.catalogue.auth import (ANONYMOUS, ApiKeys, is_loopback, keys_from_options, optional_writer,
                                      read_key_file, require_writer)

SECRET = "s3cret-Key-that-must-never-be-printed"


def test_a_key_file_maps_keys_to_names(tmp_path: Path):
    f = tmp_path / "keys"
    f.write_text(f"# curators\n\nalice {SECRET}\n  bob   other-key-2  \n")
    keys = ApiKeys(read_key_file(f))
    assert keys.name_of(SECRET) == "alice" and keys.name_of("other-key-2") == "bob"
    assert keys.name_of(SECRET + "x") is None and keys.name_of("") is None and keys.name_of("clé") is None
    assert keys.configured and keys.writes_enabled and len(keys) == 2


@pytest.mark.parametrize("text,words", [
    (f"alice {SECRET}\n{SECRET}\n", "line 2: expected 'NAME KEY'"),
    (f"alice {SECRET} extra\n", "line 1: expected 'NAME KEY'"),
    (f"al/ice {SECRET}\n", "line 1: a key's name"),
    (f"alice {SECRET}\nalice other\n", "line 2: the name 'alice' is given twice"),
    (f"alice {SECRET}\nbob {SECRET}\n", "line 2: this key is already given"),
    ("# nothing\n\n", "no keys"),
])
def test_a_bad_key_file_names_file_and_line_never_the_key(tmp_path: Path, text: str, words: str):
    f = tmp_path / "keys"
    f.write_text(text)
    with pytest.raises(ValueError) as err:
        read_key_file(f)
    message = str(err.value)
    assert str(f) in message and words in message and SECRET not in message and "\n" not in message


def test_the_environment_key_is_named_env(tmp_path: Path):
    keys = keys_from_options(None, False, "127.0.0.1", {"ARTISTSIM_API_KEY": SECRET})
    assert keys.name_of(SECRET) == "env"
    f = tmp_path / "keys"
    f.write_text("alice a-key\n")
    both = keys_from_options(f, False, "0.0.0.0", {"ARTISTSIM_API_KEY": SECRET})
    assert both.name_of("a-key") == "alice" and both.name_of(SECRET) == "env"
    with pytest.raises(ValueError, match="visible ASCII") as err:
        keys_from_options(None, False, "127.0.0.1", {"ARTISTSIM_API_KEY": "two words"})
    assert "two words" not in str(err.value)


def test_writes_are_off_without_keys_and_keyless_only_on_loopback():
    off = keys_from_options(None, False, "127.0.0.1", {})
    assert not off.writes_enabled and off.name_of("") is None
    anon = keys_from_options(None, True, "127.0.0.1", {})
    assert anon.writes_enabled and not anon.configured and ANONYMOUS == "anonymous"
    for host in ("0.0.0.0", "::", "192.168.1.4", "example.org"):
        with pytest.raises(ValueError, match="--allow-writes"):
            keys_from_options(None, True, host, {})
    # with keys, --allow-writes changes nothing: the keys are still required
    keyed = keys_from_options(None, True, "127.0.0.1", {"ARTISTSIM_API_KEY": SECRET})
    assert keyed.configured and not keyed.allow_anonymous


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "my-host", ""))


def _whoami_client(auth: ApiKeys) -> TestClient:
    app = FastAPI()
    app.state.auth = auth

    @app.get("/page")
    def page(who: str | None = Depends(optional_writer)) -> dict:
        return {"who": who}

    @app.post("/edit")
    def edit(who: str = Depends(require_writer)) -> dict:
        return {"who": who}

    return TestClient(app)


def test_optional_writer_names_a_writer_and_never_refuses():
    c = _whoami_client(ApiKeys({"alice": SECRET}))
    assert c.get("/page").json() == {"who": None}
    assert c.get("/page", headers={"X-API-Key": "wrong"}).json() == {"who": None}
    assert c.get("/page", headers={"Authorization": f"Bearer {SECRET}"}).json() == {"who": "alice"}
    assert c.post("/edit", headers={"X-API-Key": SECRET}).json() == {"who": "alice"}
    assert c.post("/edit").status_code == 401 and c.post("/edit", headers={"X-API-Key": "wrong"}).status_code == 403
    anonymous = _whoami_client(ApiKeys(allow_anonymous=True))
    assert anonymous.get("/page").json() == {"who": "anonymous"}
    off = _whoami_client(ApiKeys())
    assert off.get("/page", headers={"X-API-Key": SECRET}).json() == {"who": None}
    assert off.post("/edit", headers={"X-API-Key": SECRET}).status_code == 403
