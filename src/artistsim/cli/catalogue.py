"""The catalogue's verbs: index build / add, query, identify, audit, serve.

A catalogue (artistsim.catalogue) lives on disk, grows by `index add`, and answers one
question at a time: the tracks nearest to one (`query`), the artist who made one
(`identify`), the labels that look wrong (`audit`), or all of these over HTTP (`serve`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from artistsim.cli.common import (finite_float, fraction, port_number, positive_int, progress, track_id,
                                  window_frames)

if TYPE_CHECKING:
    from artistsim.catalogue.names import Names

LOOPING = frozenset({"index"})  # embedding batches: keep freed memory for reuse
# Outputs checked before any work (cli.check_outputs); `index`'s catalogue folder is
# checked by the store itself, whose writers take its lock.
OUTPUTS = {"audit": (("out", "file"),)}


def _split_list(text: str) -> list[str]:
    splits = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in splits if s not in ("train", "test")]
    if bad or not splits:
        raise ValueError(f"--split takes train, test or train,test; got {text!r}")
    return splits


def _print_calibration(cal: dict | None) -> None:
    if cal is None:
        print("identification: not calibrated (fewer than 4 labelled artists)")
        return
    print(f"identification ({cal.get('method', 'asnorm')}): threshold {cal['threshold']:.3f} for FAR {cal['target_far']:g} on "
          f"{cal['heldout_artists']} held-out artists; EER {cal['eer']:.4f}, accuracy {cal['accuracy']:.4f} "
          f"(known {cal['known_accuracy']:.4f}, unknown rejected {cal['unknown_rejected']:.4f}, "
          f"closed-set top-1 {cal['closed_set_top1']:.4f})")


def cmd_index_build(args: argparse.Namespace) -> int:
    from artistsim.catalogue.build import build_catalogue

    names = _names(args)
    manifest = build_catalogue(args.catalogue, args.data, args.run, _split_list(args.split), args.index,
                               args.window, args.hop, args.device, args.overwrite, progress(args), args.far,
                               warn=lambda m: print(f"artistsim: warning: {m}", file=sys.stderr))
    if manifest is None:  # a torchrun rank other than 0: its share went to rank 0
        return 0
    from artistsim.catalogue.snapshot import open_snapshot

    snap = open_snapshot(args.catalogue, manifest)
    print(f"wrote {args.catalogue}: {snap.size} tracks, dim {snap.dim}, index {manifest.index['kind']} "
          f"(asked {manifest.index['requested']}), generation {manifest.generation}")
    _print_calibration(manifest.calibration)
    _keep_names(args, names)
    return 0


def _names(args: argparse.Namespace) -> Names:
    """The names of --data's featurize tables / --names, read (and checked) before any embedding."""
    from artistsim.catalogue.names import gather

    return gather(args.data, args.names, args.audio_root)


def _keep_names(args: argparse.Namespace, names: Names) -> None:
    """Keep the artist names and source files in the catalogue (a new generation)."""
    from artistsim.catalogue.names import describe, keep

    if keep(args.catalogue, names) is not None:
        d = describe(names)
        print(f"names: {d['artists']} artist names, {d['tracks']} tracks ({d['with_path']} with a source file)")


def cmd_index_relabel(args: argparse.Namespace) -> int:
    from artistsim.catalogue.corrections import apply
    from artistsim.catalogue.snapshot import open_snapshot

    if not Path(args.corrections).is_file():
        raise ValueError(f"{args.corrections}: file not found")
    new, n = apply(args.catalogue, args.corrections, open_snapshot(args.catalogue))
    print(f"relabelled {n} tracks: generation {new.generation}" if new else "no label changes: catalogue unchanged")
    return 0


def _inputs(args: argparse.Namespace, manifest) -> tuple[list[np.ndarray], list[str]]:
    """Features of --features / --audio files, with their names (checked against the runs' front end)."""
    from artistsim.catalogue.build import catalogue_frontend
    from artistsim.catalogue.live import featurize_audio, load_features_file

    front = catalogue_frontend(manifest)
    if args.features:
        return [load_features_file(p, front.dim) for p in args.features], list(args.features)
    if args.audio:
        return [featurize_audio(p, front) for p in args.audio], list(args.audio)
    return [], []


def _trackids_for(names: list[str], given: list[int] | None) -> np.ndarray:
    if given:
        if len(given) != len(names):
            raise ValueError(f"{len(given)} --trackid value(s) for {len(names)} file(s)")
        return np.asarray(given, dtype=np.int64)
    from artistsim.data.errors import DataError
    from artistsim.data.ids import parse_ids

    ids, reasons = parse_ids(np.asarray([Path(n).stem for n in names], dtype=object))
    bad = [n for n, r in zip(names, reasons) if r is not None]
    if bad:
        raise DataError(f"{bad[0]}: the file name is not a trackid (a plain non-negative integer below 2^63, "
                        f"e.g. 1234.npy): give --trackid for each file")
    return ids


def cmd_index_add(args: argparse.Namespace) -> int:
    from artistsim.catalogue.build import catalogue_embedder, dataset_part, pipeline_state, with_stats
    from artistsim.catalogue.live import part_from
    from artistsim.catalogue.store import Manifest, append

    manifest = Manifest.read(Path(args.catalogue))
    known = _names(args)
    state = pipeline_state(args.catalogue, manifest)
    embedder = catalogue_embedder(manifest, state, args.device)
    if args.data:
        part = dataset_part(embedder, args.data, _split_list(args.split), progress(args))
        if part is None:
            return 0
    else:
        tracks, names = _inputs(args, manifest)
        if not tracks:
            raise ValueError("index add needs --data DIR, --features FILE.npy... or --audio FILE...")
        ids = _trackids_for(names, args.trackid)
        artists = None if args.artist is None else np.full(len(ids), args.artist)
        part = part_from(embedder.embed_arrays(tracks), ids, artists)
    new = append(args.catalogue, with_stats(part, state), compact=True if args.compact else None, checksums=True,
                 backend=state.backend)
    print(f"added {len(part)} tracks to {args.catalogue}: generation {new.generation}")
    _keep_names(args, known)
    return 0


def _query_vectors(cat, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    if args.trackid is not None:
        vec, rows = cat.vectors_of(np.asarray(args.trackid, dtype=np.int64))
        return vec, rows, [str(t) for t in args.trackid]
    tracks, names = _inputs(args, cat.manifest)
    if not tracks:
        raise ValueError("give --trackid ID, --features F.npy or --audio F")
    return cat.embed(tracks), None, names


def cmd_index_check(args: argparse.Namespace) -> int:
    from artistsim.catalogue.integrity import check_catalogue

    report = check_catalogue(args.catalogue)
    print(report.render())
    return 0 if report.ok else 1


def cmd_query(args: argparse.Namespace) -> int:
    from artistsim.catalogue.live import LiveCatalogue

    cat = LiveCatalogue(args.catalogue, args.device)
    vec, rows, names = _query_vectors(cat, args)
    n = cat.similar(vec, args.k, rows)
    if args.json:
        print(json.dumps([{"query": q, "neighbours": [{"trackid": int(t), "score": round(float(s), 6),
                                                         "artist": int(a) if a >= 0 else None}
                                                        for t, s, a in zip(ts, ss, aa) if t >= 0]}
                          for q, ts, ss, aa in zip(names, n.trackids, n.scores, n.artists)]))
        return 0
    for q, ts, ss, aa in zip(names, n.trackids, n.scores, n.artists):
        print(f"# {q}")
        for t, s, a in zip(ts, ss, aa):
            if t >= 0:
                print(f"{t}\t{s:.4f}\t{a if a >= 0 else '-'}")
    return 0


def cmd_identify(args: argparse.Namespace) -> int:
    from artistsim.catalogue.live import LiveCatalogue

    if args.calibrate:
        from artistsim.catalogue.build import calibrate_catalogue

        manifest = calibrate_catalogue(args.catalogue, args.far, args.method)
        if manifest is None:
            raise ValueError(f"{args.catalogue}: calibration needs at least 4 labelled artists")
        print(json.dumps(manifest.calibration) if args.json else "", end="\n" if args.json else "")
        if not args.json:
            _print_calibration(manifest.calibration)
        return 0
    cat = LiveCatalogue(args.catalogue, args.device)
    vec, _, names = _query_vectors(cat, args)
    out = cat.identify(vec, args.k, args.threshold)
    res = out["result"]
    if args.json:
        print(json.dumps([{"query": q, "known": bool(kn), "artist": int(a[0]) if kn else None,
                           "candidates": [{"artist": int(x), "score": float(s)} for x, s in zip(a, sc)]}
                          for q, a, sc, kn in zip(names, res.artists, res.scores, res.known)]))
        return 0
    thr = out["threshold"]
    print(f"threshold {thr:.3f}" if thr is not None else "no threshold (uncalibrated): best artist always given")
    for q, a, sc, kn in zip(names, res.artists, res.scores, res.known):
        verdict = f"artist {a[0]}" if kn else "unknown artist"
        print(f"{q}: {verdict}; candidates " + ", ".join(f"{x} ({s:.2f})" for x, s in zip(a, sc)))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from artistsim.catalogue.audit import audit, report, write_audit
    from artistsim.catalogue.snapshot import labelled, open_snapshot

    snap = open_snapshot(args.catalogue)
    rows = labelled(snap)
    if len(np.unique(snap.artists()[rows])) < 2:
        raise ValueError(f"{args.catalogue}: an audit needs at least two labelled artists")
    result = audit(snap.vectors(rows), snap.artists()[rows], method=args.method)
    trackids = snap.trackids()[rows]
    print(report(result, trackids, top=min(args.top, 10)))
    out = args.out or Path(args.catalogue) / "audit.tsv"
    write_audit(out, result, trackids, args.top)
    print(f"wrote {out} (top {min(args.top, len(rows))}, most suspect first)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from artistsim.catalogue.auth import keys_from_options
    from artistsim.catalogue.server import WorkerError, check_options, serve

    check_options(args.port, args.threads, args.workers, args.search_threads, args.max_body_mb,
                  args.header_timeout, args.idle_timeout)
    auth = keys_from_options(args.api_key_file, args.allow_writes, args.host)
    try:
        serve(args.catalogue, args.host, args.port, args.device, args.threads, args.max_body_mb * 2**20,
              args.search_threads, args.workers, auth, args.header_timeout, args.idle_timeout, args.access_log)
    except WorkerError as exc:
        print(f"artistsim serve: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", nargs="+", metavar="F.npy", help="(512, T) feature files")
    p.add_argument("--audio", nargs="+", metavar="F", help="audio files (needs artistsim.audio.featurize)")
    p.add_argument("--device", default=None)


def _add_names(p: argparse.ArgumentParser) -> None:
    p.add_argument("--names", metavar="TSV", help="artist names and source files: columns trackid and any of "
                   "path, duration, artistid, artist (default: --data's tracks.tsv / artists.tsv when present)")
    p.add_argument("--audio-root", metavar="DIR", help="the folder relative source paths start from (the folder "
                   "featurize read); the server plays audio only from inside it")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's verbs to the `artistsim` parser."""
    from artistsim.catalogue.store import INDEX_KINDS

    index = sub.add_parser("index", help="build a catalogue or add tracks to one")
    isub = index.add_subparsers(dest="index_command", required=True)
    p = isub.add_parser("build", help="embed tracks with run(s) and write a catalogue")
    p.add_argument("catalogue")
    p.add_argument("--data", required=True, help="dataset folder (competition layout)")
    # --from-run: the same option under torchrun, whose own parser takes `--run` for its --run-path
    p.add_argument("--run", "--from-run", dest="run", action="append", required=True,
                   help="run folder; repeat for an ensemble (under torchrun write --from-run)")
    p.add_argument("--split", default="train,test", help="train, test or train,test")
    p.add_argument("--index", default="auto", choices=INDEX_KINDS)
    p.add_argument("--window", type=window_frames, default=None, help="rolling-window embedding (default full length)")
    p.add_argument("--hop", type=positive_int, default=5)
    p.add_argument("--far", type=fraction, default=0.01, help="identification's target false-accept rate")
    p.add_argument("--device", default=None)
    p.add_argument("--overwrite", action="store_true")
    _add_names(p)
    p.set_defaults(func=cmd_index_build)

    p = isub.add_parser("add", help="add tracks without rebuilding")
    p.add_argument("catalogue")
    p.add_argument("--data", help="dataset folder whose tracks to add")
    p.add_argument("--split", default="train,test")
    p.add_argument("--trackid", type=track_id, nargs="+", help="trackids of the files (default: their names)")
    p.add_argument("--artist", type=track_id, default=None, help="artist of the added files, when known")
    p.add_argument("--compact", action="store_true", help="merge every added track into the main index now")
    _add_inputs(p)
    _add_names(p)
    p.set_defaults(func=cmd_index_add)

    p = isub.add_parser("relabel", help="apply curators' decisions (corrections.tsv) as a new generation")
    p.add_argument("catalogue")
    p.add_argument("corrections", help="TSV: trackid, old_artist, new_artist, decision (confirm/move/skip), who, when")
    p.set_defaults(func=cmd_index_relabel)

    p = isub.add_parser("check", help="verify every file of a catalogue; list what is damaged",
                        description="Verify manifest.json, every segment and the index (sizes, SHA-256, dtypes, "
                                    "values, trackids) and the runs. Exit 0 when intact, 1 when damaged (one line "
                                    "per problem), 2 on a usage error.")
    p.add_argument("catalogue")
    p.set_defaults(func=cmd_index_check)

    for name, fn, helptext in (("query", cmd_query, "tracks by the same artist as a given one"),
                               ("identify", cmd_identify, "which catalogued artist made a track")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("catalogue")
        p.add_argument("--trackid", type=track_id, nargs="+", help="catalogued track(s)")
        p.add_argument("--json", action="store_true")
        _add_inputs(p)
        p.set_defaults(func=fn)
    query, ident = sub.choices["query"], sub.choices["identify"]
    query.add_argument("--k", type=positive_int, default=100)
    ident.add_argument("--k", type=positive_int, default=5, help="candidate artists shown")
    ident.add_argument("--threshold", type=finite_float, default=None, help="override the calibrated threshold")
    ident.add_argument("--calibrate", action="store_true", help="(re)calibrate on held-out artists; print EER")
    ident.add_argument("--far", type=fraction, default=0.01)
    # catalogue.enrol.METHODS, spelled out so that --help imports nothing heavy
    ident.add_argument("--method", default="plda", choices=("plda", "asnorm"),
                       help="with --calibrate: plda (default), the two-covariance model's log-likelihood ratio; "
                            "asnorm: AS-normalised cosine to artist centroids (catalogues calibrated before plda)")

    p = sub.add_parser("audit", help="rank labelled tracks by how likely their artist label is wrong")
    p.add_argument("catalogue")
    p.add_argument("--top", type=positive_int, default=100)
    p.add_argument("--out", help="TSV (default CATALOGUE/audit.tsv)")
    # the names of catalogue.audit.METHODS, spelled out so that --help imports nothing heavy
    p.add_argument("--method", default="plda", choices=("plda", "predictive", "loo", "asnorm", "margin"),
                   help="plda (default): two-covariance artist model, its shrinkage calibrated on the catalogue; "
                        "predictive: isotropic Gaussian artist model; loo, asnorm: centroid cosine; "
                        "margin: the plain baseline")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("serve", help="HTTP JSON API over a catalogue (docs at /docs)")
    p.add_argument("catalogue")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port_number, default=8000)
    p.add_argument("--threads", type=positive_int, default=1, help="torch / FAISS threads per request")
    p.add_argument("--search-threads", type=positive_int, default=None,
                   help="threads searching similar-track queries, batched, per worker "
                        "(default: the usable cores shared out among the workers)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes on one socket, sharing the memory-mapped index "
                        "(throughput: one per core; each takes in the others' adds within a second)")
    p.add_argument("--max-body-mb", type=positive_int, default=32)
    p.add_argument("--api-key-file", metavar="FILE",
                   help="keys allowed to write (POST /tracks ...): lines 'NAME KEY'; also ARTISTSIM_API_KEY")
    p.add_argument("--allow-writes", action="store_true",
                   help="without any key, let anyone write (loopback --host only)")
    # catalogue.connections.HEADER_TIMEOUT / IDLE_TIMEOUT, spelled out so that --help imports nothing heavy
    p.add_argument("--header-timeout", type=float, default=5.0,
                   help="seconds a request's headers may take to arrive (slow clients are dropped)")
    p.add_argument("--idle-timeout", type=float, default=5.0,
                   help="seconds an idle kept-alive connection, or a stalled request body, is held")
    p.add_argument("--access-log", action="store_true", help="a line per request on stderr, with its request id")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_serve)
