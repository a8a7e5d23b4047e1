"""`make demo`: the whole pipeline on the embedded synthetic data, on a laptop CPU.

synth (demo preset) -> validate -> pack -> train the default recipe (the transformer,
configs/recommended/transformer.toml) -> evaluate
(the seed's table, with the baselines, and the ensemble weights and inference add-ons
chosen on validation) -> predict a submission for the test split with those settings ->
score it against the synthetic ground truth -> build a catalogue from the runs.
Every step is skipped when its output is already there, and an interrupted training run
resumes, so running the demo twice costs little the second time.

The run leaves its record in `OUT/demo.json` (date, wall and CPU time per step, the
evaluate table, the submission's and the catalogue's scores), so the figures the docs quote
come from a file (`python -m benchmarks.bench_demo --from OUT`), never from a terminal.
"""

from __future__ import annotations

import datetime
import json
import resource
import time
from collections.abc import Callable
from pathlib import Path

from artistsim.atomic import atomic_write_text
from artistsim.config import load_train_config, packaged_config
from artistsim.data.layout import DataError, read_ground_truth_tsv
from artistsim.data.store import pack_split
from artistsim.data.validate import validate_dataset
from artistsim.embed import resolve_device
from artistsim.evaluation.metrics import score_submission
from artistsim.evaluation.report import evaluate, predict
from artistsim.evaluation.submission import read_submission
from artistsim.synth import generate
from artistsim.training.dispatch import train

MODELS = ("transformer",)  # the default recipe (docs/networks.md: conformer and rflda did not earn their cost)


def cpu_seconds() -> float:
    """User + system CPU of this process (all its threads) and of its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Steps:
    """Each step's wall and CPU seconds, logged as it ends and kept for the run's record."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log, self.seconds, self.cpu = log, {}, {}

    def __call__(self, name: str, fn: Callable[[], object]) -> object:
        t0, c0 = time.time(), cpu_seconds()
        self.log(f"== {name}")
        result = fn()
        self.seconds[name], self.cpu[name] = time.time() - t0, cpu_seconds() - c0
        self.log(f"   {name}: {self.seconds[name]:.1f} s")
        return result


def train_if_needed(data: Path, run: Path, model: str, device: str | None, progress: bool | None,
                    log: Callable[[str], None]) -> dict:
    """Train a model of the recommended recipe unless its run finished before; resume one that was interrupted."""
    done = run / "summary.json"
    if done.exists():
        log(f"   {run} already trained")
        return json.loads(done.read_text())
    cfg = load_train_config(packaged_config(f"recommended/{model}.toml"))
    summary = train(data, cfg, run, device=device, resume=(run / "last.pt").exists(), progress=progress, log=log)
    atomic_write_text(done, json.dumps(summary))
    return summary


def run_demo(out_dir: Path, device: str | None = None, progress: bool | None = None,
             log: Callable[[str], None] = print) -> dict:
    """Run every step; returns the evaluation table's rows and the submission's score."""
    started, cpu_started = time.time(), cpu_seconds()
    step = Steps(log)
    data, runs = out_dir / "data", [out_dir / "runs" / m for m in MODELS]
    fresh = not (data / "train_meta.tsv").exists()
    if fresh:
        step("synth --preset demo", lambda: generate(data, preset="demo", seed=0, progress=progress))
    report = step("validate", lambda: validate_dataset(data, progress=progress))
    if not report.ok:
        raise DataError(f"{data}: {len(report.errors)} validation error(s), the first: {report.errors[0]} "
                        f"(`artistsim validate {data}` lists them all)")
    log(report.render())
    step("pack", lambda: [pack_split(data, s, progress=progress) for s in ("train", "test")])
    for model, run in zip(MODELS, runs):
        step(f"train {model}", lambda m=model, r=run: train_if_needed(data, r, m, device, progress, log))
    dev = resolve_device(device)
    table = step("evaluate", lambda: evaluate(data, runs, dev, out_dir=out_dir / "report", progress=progress,
                                              save_settings=True))
    submission = out_dir / "submission.tsv"
    step("predict", lambda: predict(data, runs, dev, submission, progress=progress))
    score = score_submission(read_submission(submission), read_ground_truth_tsv(data / "test_gt.tsv"))
    log("")
    log(table.markdown())
    log(f"\nsubmission {submission}: test nDCG@100 {score:.4f} (ensemble with the settings chosen on validation)")
    log(f"report: {out_dir / 'report' / 'report.md'}; total {time.time() - started:.0f} s")
    from artistsim.catalogue.build import build_catalogue

    catalogue = out_dir / "catalogue"
    step("index build", lambda: build_catalogue(catalogue, data, runs, ["train", "test"], device=device,
                                                overwrite=True, progress=progress))
    log(f"catalogue {catalogue}: `artistsim query|identify|audit|serve {catalogue}` (docs/catalogue.md)")
    log(f"curate it: `artistsim serve {catalogue} --allow-writes`, then open http://127.0.0.1:8000/ui "
        f"(docs/curate.md)")
    answers = step("catalogue answers", lambda: catalogue_answers(out_dir / "catalogue-test", data, runs, device,
                                                                  progress))
    answered = score_submission(answers, read_ground_truth_tsv(data / "test_gt.tsv"))
    log(f"catalogue of the test split, every test track queried: test nDCG@100 {answered:.4f} "
        f"(predict: {score:.4f}; one pipeline, the same lists)")
    record = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "fresh": fresh,  # False: an earlier run's data (and maybe runs) were reused, so the times are partial
        "wall_s": time.time() - started,
        "cpu_s": cpu_seconds() - cpu_started,
        "step_wall_s": step.seconds,
        "step_cpu_s": step.cpu,
        "table_markdown": table.markdown(),
        "table": table.rows,
        "submission_ndcg": score,
        "catalogue_ndcg": answered,
    }
    atomic_write_text(out_dir / "demo.json", json.dumps(record, indent=1))
    log(f"record: {out_dir / 'demo.json'}")
    return record


def catalogue_answers(root: Path, data: Path, runs: list[Path], device: str | None,
                      progress: bool | None) -> dict[int, list[int]]:
    """Every test track's 100 answers from a catalogue of the test split (as `query --trackid` gives them)."""
    from artistsim.catalogue.build import build_catalogue
    from artistsim.catalogue.live import LiveCatalogue

    build_catalogue(root, data, runs, ["test"], index="flat", device=device, overwrite=True, progress=progress)
    cat = LiveCatalogue(root, device)
    ids = cat.snapshot.trackids()
    found = cat.similar_tracks(ids, 100)
    return {int(t): [int(x) for x in row if x >= 0] for t, row in zip(ids, found.trackids)}
