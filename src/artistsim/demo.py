"""`make demo`: the whole pipeline on the embedded synthetic data, on a laptop CPU.

synth (demo preset) -> validate -> pack -> train the transformer and the conformer and fit
the random-feature LDA with the recommended configs (configs/recommended/) -> evaluate
(the seed's table, with the baselines, and the ensemble weights and inference add-ons
chosen on validation) -> predict a submission for the test split with those settings ->
score it against the synthetic ground truth -> build a catalogue from the runs.
Every step is skipped when its output is already there, and an interrupted training run
resumes, so running the demo twice costs little the second time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from artistsim.atomic import atomic_write_text
from artistsim.config import load_train_config, packaged_config
from artistsim.data.layout import DataError, read_ground_truth_tsv
from artistsim.data.store import pack_split
from artistsim.synth import generate
from artistsim.data.validate import validate_dataset
from artistsim.embed import resolve_device
from artistsim.evaluation.metrics import score_submission
from artistsim.evaluation.report import evaluate, predict
from artistsim.evaluation.submission import read_submission
from artistsim.training.dispatch import train

MODELS = ("transformer", "conformer", "rflda")


def _step(name: str, fn: Callable[[], object], log: Callable[[str], None]) -> object:
    t0 = time.time()
    log(f"== {name}")
    result = fn()
    log(f"   {name}: {time.time() - t0:.1f} s")
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
    started = time.time()
    data, runs = out_dir / "data", [out_dir / "runs" / m for m in MODELS]
    if not (data / "train_meta.tsv").exists():
        _step("synth --preset demo", lambda: generate(data, preset="demo", seed=0, progress=progress), log)
    report = _step("validate", lambda: validate_dataset(data, progress=progress), log)
    if not report.ok:
        raise DataError(f"{data}: {len(report.errors)} validation error(s), the first: {report.errors[0]} "
                        f"(`artistsim validate {data}` lists them all)")
    log(report.render())
    _step("pack", lambda: [pack_split(data, s, progress=progress) for s in ("train", "test")], log)
    for model, run in zip(MODELS, runs):
        _step(f"train {model}", lambda m=model, r=run: train_if_needed(data, r, m, device, progress, log), log)
    dev = resolve_device(device)
    table = _step("evaluate", lambda: evaluate(data, runs, dev, out_dir=out_dir / "report", progress=progress,
                                               save_settings=True), log)
    submission = out_dir / "submission.tsv"
    _step("predict", lambda: predict(data, runs, dev, submission, progress=progress), log)
    score = score_submission(read_submission(submission), read_ground_truth_tsv(data / "test_gt.tsv"))
    log("")
    log(table.markdown())
    log(f"\nsubmission {submission}: test nDCG@100 {score:.4f} (ensemble with the settings chosen on validation)")
    log(f"report: {out_dir / 'report' / 'report.md'}; total {time.time() - started:.0f} s")
    from artistsim.catalogue.build import build_catalogue

    catalogue = out_dir / "catalogue"
    _step("index build", lambda: build_catalogue(catalogue, data, runs, ["train", "test"], device=device,
                                                 overwrite=True, progress=progress), log)
    log(f"catalogue {catalogue}: `artistsim query|identify|audit|serve {catalogue}` (docs/catalogue.md)")
    log(f"curate it: `artistsim serve {catalogue} --allow-writes`, then open http://127.0.0.1:8000/ui "
        f"(docs/curate.md)")
    answers = _step("catalogue answers", lambda: catalogue_answers(out_dir / "catalogue-test", data, runs, device,
                                                                   progress), log)
    answered = score_submission(answers, read_ground_truth_tsv(data / "test_gt.tsv"))
    log(f"catalogue of the test split, every test track queried: test nDCG@100 {answered:.4f} "
        f"(predict: {score:.4f}; one pipeline, the same lists)")
    return {"table": table.rows, "submission_ndcg": score, "catalogue_ndcg": answered}


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
