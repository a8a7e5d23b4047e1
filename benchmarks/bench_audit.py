"""The catalogue audit on planted label swaps, and identification's EER, on the demo data.

The demo transformer (configs/transformer_demo.toml, ~5 minutes on 2 cores) is trained
once on `artistsim synth --preset demo` data; a catalogue is built from the *test*
split, whose artists the model never saw, with their true labels (test_gt.tsv). Then,
for each of several seeds, 3% of the labels are moved to another artist and the audit
ranks the tracks; precision of the top N (N = the number planted) is averaged over
seeds, for the plain centroid margin (the baseline), the leave-one-out margin (the
default) and leave-one-out with AS-norm. With `--ensemble` the demo conformer is
trained too and the catalogue is built from both runs.

Identification: the catalogue's calibration (threshold for a 1% false-accept rate on
20% of the artists held out of enrolment), its verification EER, open-set accuracy at
the threshold and closed-set top-1.

    python benchmarks/bench_audit.py --quick   # 5 seeds
    python benchmarks/bench_audit.py --full    # 20 seeds
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

METHODS = ("margin", "loo", "asnorm")


def trained_run(data: Path, model: str) -> Path:
    run = C.SCRATCH / "audit_runs" / model
    if not (run / "best.pt").exists() or not (run / "metrics.jsonl").exists():
        from artistsim.config import packaged_config

        C.log(f"training the demo {model} into {run} (once)")
        subprocess.run([sys.executable, "-m", "artistsim", "-q", "train", str(data), "--config",
                        str(packaged_config(f"{model}_demo.toml")), "--out", str(run),
                        *(["--resume"] if (run / "last.pt").exists() else [])], check=True)
    return run


def main() -> int:
    p = C.base_parser(__doc__)
    p.add_argument("--ensemble", action="store_true", help="also train the demo conformer and ensemble both")
    args = p.parse_args()
    mode = C.mode_of(args)
    C.set_threads(args.threads or 0)
    facts = C.machine_facts()
    from artistsim.catalogue.audit import audit, plant_swaps, precision_at
    from artistsim.catalogue.build import build_catalogue
    from artistsim.catalogue.snapshot import labelled, open_snapshot

    data = C.synth_dataset("demo")
    facts["dataset"] = f"synth demo preset ({data})"
    models = ("transformer", "conformer") if args.ensemble else ("transformer",)
    runs = [trained_run(data, m) for m in models]
    name = "+".join(models)
    cat = C.SCRATCH / f"audit_catalogue_{name}"
    load0 = C.load_average()
    manifest = build_catalogue(cat, data, runs, ["test"], overwrite=True, progress=False)
    snap = open_snapshot(cat)
    rows = labelled(snap)
    e, y = snap.vectors(rows), snap.artists()[rows]
    seeds = range(20 if mode == "full" else 5)
    prec: dict[str, list[float]] = {m: [] for m in METHODS}
    planted_n = 0
    for seed in seeds:
        noisy, planted = plant_swaps(y, 0.03, seed)
        planted_n = len(planted)
        for m in METHODS:
            prec[m].append(precision_at(audit(e, noisy, method=m).rows, planted))
    mean = {m: float(np.mean(v)) for m, v in prec.items()}
    table = C.markdown_table(["method", "precision@N (mean)", "min", "max"],
                             [[m, C.fmt(mean[m], 3), C.fmt(min(prec[m]), 3), C.fmt(max(prec[m]), 3)]
                              for m in METHODS])
    best = max(("loo", "asnorm"), key=lambda m: mean[m])
    sections = [C.Section(
        heading=f"Audit precision on planted swaps ({name})",
        table=table, target="precision@N >= 0.9 and above the plain centroid margin",
        met=(mean["loo"] >= 0.9 and mean["loo"] > mean["margin"]) if mode == "full" else None,
        load=(load0, C.load_average()),
        notes=f"{len(y):,} test tracks of {len(np.unique(y))} artists the model never saw; 3% of the labels "
              f"({planted_n}) moved to another artist, {len(seeds)} seeds; N = {planted_n}. Best non-baseline "
              f"method here: {best}.")]
    cal = manifest.calibration
    sections.append(C.Section(
        heading=f"Identification on the demo test artists ({name})",
        table=C.markdown_table(["EER", "threshold (AS-norm)", "FAR measured", "known accepted & right",
                                "unknown rejected", "open-set accuracy", "closed-set top-1"],
                               [[C.fmt(cal["eer"], 4), C.fmt(cal["threshold"], 3), C.fmt(cal["far"], 4),
                                 C.fmt(cal["known_accuracy"], 4), C.fmt(cal["unknown_rejected"], 4),
                                 C.fmt(cal["accuracy"], 4), C.fmt(cal["closed_set_top1"], 4)]]),
        notes=f"Calibrated for a {cal['target_far']:g} false-accept rate on {cal['heldout_artists']} held-out "
              f"artists ({cal['unknown_queries']} tracks); {cal['enrolled_artists']} enrolled artists, their "
              f"{cal['known_queries']} tracks scored leave-one-out. EER over all verification trials."))
    C.emit(C.make_result("audit", "Catalogue audit and identification", mode, "bench_audit.py", sys.argv[1:],
                         sections, facts), args.json, merge=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
