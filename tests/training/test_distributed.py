"""Two CPU processes under DistributedDataParallel (gloo) keep identical weights."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import write_tiny_dataset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: str, out: str, result_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from test_loop import tiny_config

    from artistsim.training.loop import fit

    cfg = tiny_config(stages=((2, 10, 1e-2, 2, True),))
    model, _ = fit(data, cfg, out, device="cpu", progress=False, log=lambda *_: None, max_steps=3)
    torch.save(model.state_dict(), os.path.join(result_dir, f"rank{rank}.pt"))
    # Both ranks leave together: a rank tearing gloo down while the other still talks to it
    # aborted the other now and then ("terminate called without an active exception").
    dist.barrier()
    dist.destroy_process_group()


def test_two_ranks_stay_identical(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n_train_artists=12, tracks=4)
    mp.spawn(_worker, args=(2, _free_port(), str(data), str(tmp_path / "run"), str(tmp_path)), nprocs=2)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # rank 0 alone wrote the run; training changed the weights
    assert (tmp_path / "run" / "best.pt").exists()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_torchrun_entry_point(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n_train_artists=12, tracks=4)
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        '[model]\nkind = "transformer"\nd_model = 32\nnum_heads = 2\nffn_dim = 32\nnum_layers = 1\n'
        'embedding_dim = 16\nprojector_hidden = 32\n\n'
        '[[stages]]\nartists_per_batch = 2\ncrop = 10\nlr = 1e-3\nmax_epochs = 1\n'
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
         "-m", "artistsim", "-q", "train", str(data), "--config", str(cfg), "--out", str(tmp_path / "run"),
         "--max-steps", "2"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "best.pt").exists()
    assert "2 processes" in proc.stdout
