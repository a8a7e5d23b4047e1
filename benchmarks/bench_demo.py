"""`make demo`'s figures as a results file: its evaluate table, its scores and its wall time.

The demo is the first thing a newcomer runs and README quotes what it prints; copying those
numbers from a terminal is how they drifted before. `artistsim demo OUT` leaves its record
in `OUT/demo.json` (the evaluate table, the submission's and the catalogue's test
nDCG@100, wall and CPU seconds per step); this script turns the record into
`benchmarks/results/demo.json`, which `benchmarks.report` renders into docs/benchmarks.md.

    make demo && python -m benchmarks.run_all --full --only demo -- --from demo   # record a clean clone's demo
    python -m benchmarks.run_all --full --only demo                               # run the demo afresh (scratch)

Targets: the demo finishes in at most 15 minutes of wall time from a fresh clone
(set-up excluded: it depends on the package mirror), and the catalogue answers every
test track exactly as `predict` does (the same test nDCG@100). The demo has one size, so
`--quick` and `--full` measure the same thing; `run_all` runs it only when named
(`--only demo`): it takes the demo's whole quarter of an hour.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks import common as C

WALL_TARGET_MIN = 15.0


def run_demo_afresh(folder: Path) -> None:
    """`python -m artistsim demo FOLDER` in a child, as `make demo` calls it; its output goes to FOLDER.log."""
    if folder.exists():
        shutil.rmtree(folder)
    log = folder.with_suffix(".log")
    C.log(f"running the demo in {folder} (about a quarter of an hour; output in {log})")
    with log.open("w") as out:
        proc = subprocess.run([sys.executable, "-m", "artistsim", "demo", str(folder)], stdout=out,
                              stderr=subprocess.STDOUT, timeout=3 * 3600)
    if proc.returncode != 0:
        raise SystemExit(f"bench_demo: the demo failed with exit code {proc.returncode}; see {log}")


def read_record(folder: Path) -> dict:
    path = folder / "demo.json"
    if not path.is_file():
        raise SystemExit(f"bench_demo: {path}: no demo record (run `make demo` or `artistsim demo {folder}` first)")
    record = json.loads(path.read_text())
    if not record.get("fresh", False):
        raise SystemExit(f"bench_demo: {path}: that demo reused an earlier run's data, so its times are partial; "
                         "record a run made in an empty folder")
    return record


def sections(record: dict) -> list[C.Section]:
    wall_min, cpu_min = record["wall_s"] / 60, record["cpu_s"] / 60
    lda = record["table"]["baseline: lda"]["test plain"]
    steps = [[name, C.fmt(record["step_wall_s"][name]), C.fmt(record["step_cpu_s"][name])]
             for name in record["step_wall_s"]]
    same = abs(record["catalogue_ndcg"] - record["submission_ndcg"]) < 5e-5
    scores = C.markdown_table(
        ["what", "test nDCG@100"],
        [["submission (`predict`, the settings chosen on validation)", f"{record['submission_ndcg']:.4f}"],
         ["the catalogue of the test split, every test track queried", f"{record['catalogue_ndcg']:.4f}"],
         ["baseline: lda", f"{lda:.4f}"],
         ["margin of the submission over LDA", f"{record['submission_ndcg'] - lda:+.4f}"]], "lr")
    return [
        C.Section(heading="The demo's evaluate table (synthetic `demo` preset, recommended configs)",
                  table=record["table_markdown"], date=record["date"],
                  notes="Each model plain and with the seed's rerank, on the validation artists and the test "
                        "artists; below it the ensemble weights and inference add-ons, each kept only when it "
                        "raised validation nDCG@100 (`evaluate --save-settings`)."),
        C.Section(heading="The demo's scores: predict and the catalogue", table=scores, date=record["date"],
                  target="the catalogue's answers score exactly as `predict`'s", met=same),
        C.Section(heading="The demo's time per step",
                  table=C.markdown_table(["step", "wall s", "CPU s"], steps + [
                      ["**total**", C.fmt(record["wall_s"]), C.fmt(record["cpu_s"])]], "lrr"),
                  date=record["date"], target=f"at most {WALL_TARGET_MIN:.0f} min wall (set-up excluded)",
                  met=wall_min <= WALL_TARGET_MIN,
                  notes=f"{wall_min:.1f} min wall, {cpu_min:.1f} CPU-min. Wall time depends on what else the "
                        "2 cores run: see the load average of the run."),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__)
    parser.add_argument("--from", dest="source", type=Path,
                        help="record this finished demo folder instead of running the demo afresh")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    facts = C.machine_facts()
    folder = args.source
    if folder is None:
        folder = C.SCRATCH / "demo"
        run_demo_afresh(folder)
    record = read_record(folder)
    result = C.make_result("demo", "make demo: its table, its scores and its time", C.mode_of(args),
                           "bench_demo.py", argv, sections(record), facts,
                           extra={"submission_ndcg": record["submission_ndcg"],
                                  "catalogue_ndcg": record["catalogue_ndcg"], "wall_s": record["wall_s"]})
    C.emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
