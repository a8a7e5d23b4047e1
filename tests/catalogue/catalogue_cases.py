"""Shared pieces of the catalogue tests: a tiny untrained run, a catalogue, a live server.

The model is not the point of these tests (the store, the service, the CLI are), so the
run is a seeded untrained encoder saved in a run folder's format: it embeds in
milliseconds and deterministically.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import torch

from artistsim.catalogue.build import build_catalogue
from artistsim.config import StageConfig, TrainConfig, TransformerConfig, to_dict
from artistsim.models import build_model
from artistsim.runs import write_checkpoint


def write_run(run: Path, seed: int = 0, dim: int = 512) -> Path:
    cfg = TrainConfig(model=TransformerConfig(input_dim=dim, d_model=32, num_heads=2, num_layers=1, ffn_dim=64,
                                              projector_hidden=32, embedding_dim=16), stages=[StageConfig(8, 10, 1e-3)])
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    run.mkdir(parents=True, exist_ok=True)
    write_checkpoint(run / "best.pt", {"config": to_dict(cfg), "model": model.state_dict()})
    return run


def make_catalogue(root: Path, data: Path, run: Path, index: str = "flat") -> Path:
    build_catalogue(root, data, [run], ["train"], index=index, progress=False)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The key test servers accept for writes (through ARTISTSIM_API_KEY, name "env"), and its header.
WRITER_KEY = "test-writer-key-0123456789"
WRITER = {"Authorization": f"Bearer {WRITER_KEY}"}


def cli(*args: str, env: dict[str, str] | None = None, launcher: list[str] | None = None,
        **kw) -> subprocess.Popen:
    """`artistsim ARGS` in a subprocess; `launcher` replaces `python -m artistsim` (a patched entry point)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([*(launcher or [sys.executable, "-m", "artistsim"]), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


class Server:
    """`artistsim serve` in a subprocess on a free loopback port, stopped on exit.

    Writes need `WRITER` headers (the key comes by ARTISTSIM_API_KEY) unless `env` says otherwise.
    """

    def __init__(self, catalogue: Path, *extra: str, env: dict[str, str] | None = None,
                 launcher: list[str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {"ARTISTSIM_API_KEY": WRITER_KEY} if env is None else env
        self.proc = cli("serve", str(catalogue), "--host", "127.0.0.1", "--port", str(self.port), *extra, env=env,
                        launcher=launcher)

    def __enter__(self) -> Server:
        for _ in range(300):  # up to ~60 s on a loaded machine; returns as soon as it answers
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not answer /health")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def features(seed: int, frames: int = 30) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(512, frames)).astype(np.float32)


def workers_of(pid: int) -> list[int]:
    """The supervisor's worker processes (multiprocessing's resource tracker left out)."""
    kids = [int(k) for t in Path(f"/proc/{pid}/task").iterdir() for k in (t / "children").read_text().split()]
    return [k for k in kids if "spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes().decode(errors="replace")]


def gone(pid: int) -> bool:
    """True once pid has exited (a zombie counts: it no longer runs)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_until(check, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()
