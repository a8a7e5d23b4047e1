"""A plain, non-editable install works: the wheel carries the configs, the CLI finds them.

Issue 12, item 11: configs were found through the source tree, so `pip install .` (not
editable) broke `artistsim train` and `demo`. The wheel is built and installed into a
scratch folder without dependencies (this environment's torch, numpy ... are reused),
and run from outside the source tree so nothing can leak in from it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import artistsim, sys
from artistsim.config import load_train_config, packaged_config
assert artistsim.__file__.startswith(sys.argv[1]), artistsim.__file__
for name in ("transformer_seed.toml", "conformer_seed.toml", "transformer_demo.toml", "conformer_demo.toml"):
    assert load_train_config(packaged_config(name)).stages, name
print("configs ok")
"""


@pytest.mark.slow
def test_non_editable_install_finds_packaged_configs(tmp_path):
    source = tmp_path / "source"  # a copy: building in place would leave build/ in the worktree
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("artistsim-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {"artistsim/configs/transformer_seed.toml", "artistsim/configs/conformer_demo.toml"} <= set(names)
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-compile", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(target)}  # ahead of the editable install of the worktree
    probe = subprocess.run([sys.executable, "-c", PROBE, str(target)], capture_output=True, text=True, env=env,
                           cwd=tmp_path)
    assert probe.returncode == 0 and "configs ok" in probe.stdout, probe.stderr
    for verb in ("train", "demo", "predict"):
        help_run = subprocess.run([sys.executable, "-m", "artistsim", verb, "--help"], capture_output=True,
                                  text=True, env=env, cwd=tmp_path)
        assert help_run.returncode == 0 and "usage: artistsim" in help_run.stdout, help_run.stderr
    # train without --config reads the packaged seed config: its error is about the data, not the config
    run = subprocess.run([sys.executable, "-m", "artistsim", "train", str(tmp_path / "nodata"), "--model",
                          "transformer", "--out", str(tmp_path / "run")], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert run.returncode == 2 and "train_meta.tsv: file not found" in run.stderr, run.stderr
