"""The featurize job (artistsim.audio.featurize): bad audio, resume, re-run, shards, labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import artistsim.audio.featurize as fz
from artistsim.cli import main
from artistsim.audio.featurize import FeaturizeOptions, featurize_dataset
from artistsim.data.layout import DataError
from artistsim.data.validate import validate_dataset
from audio_cases import tone, write_bad_folder


def _tracks(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "tracks.tsv", sep="\t", dtype=str, keep_default_na=False).set_index("path")


def _snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under out (state folder included) with its content and mtime."""
    return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad") / "music"
    return folder, write_bad_folder(folder)


def test_bad_audio_never_stops_the_batch(bad_folder, tmp_path, capsys):
    folder, expected = bad_folder
    out = tmp_path / "out"
    assert main(["-q", "featurize", str(folder), str(out), "--test-fraction", "0", "--workers", "1"]) == 1
    printed = capsys.readouterr().out
    tracks = _tracks(out)
    assert sorted(tracks.index) == sorted(expected)  # notes.txt ignored, the others listed
    for name, status in expected.items():
        row = tracks.loc[name]
        if status == "ok":
            assert row["status"] == "ok" and int(row["frames"]) >= 1, (name, row.to_dict())
        else:
            assert row["status"] == "skipped" and row["reason"].startswith(status + ":"), (name, row.to_dict())
            assert f"x {status} " in printed
    ok = tracks[tracks["status"] == "ok"]
    meta = pd.read_csv(out / "test_meta.tsv", sep="\t")  # unlabelled: everything is test
    assert sorted(meta["trackid"]) == sorted(ok["trackid"].astype(int))
    assert len(list((out / "test_features").rglob("*.npy"))) == len(ok)
    assert not (out / "test_gt.tsv").exists()


def test_labelled_output_validates(bad_folder, tmp_path):
    folder, expected = bad_folder
    labels = tmp_path / "labels.tsv"
    names = [n for n, s in expected.items() if s == "ok" and "\\x" not in n]  # a non-UTF-8 name stays unlabelled
    labels.write_text("path\tartist\n" + "".join(f"{n}\tartist {i % 3}\n" for i, n in enumerate(names)))
    out = tmp_path / "out"
    summary = featurize_dataset(folder, out, FeaturizeOptions(workers=1, labels=labels, test_fraction=0.34, seed=3))
    assert summary.finalized and summary.skipped == sum(s != "ok" for s in expected.values())
    assert validate_dataset(out, progress=False).ok
    tracks = _tracks(out)
    ok = tracks[tracks["status"] == "ok"]
    train_artists = set(ok.loc[ok["split"] == "train", "artist"])
    test_artists = set(ok.loc[ok["split"] == "test", "artist"])
    assert train_artists and test_artists - {""} and not train_artists & test_artists  # artist-disjoint
    assert ok.loc["caf\\xe9.wav", "split"] == "test"  # unlabelled -> test ...
    assert not (out / "test_gt.tsv").exists() and summary.unlabelled_test == 1  # ... and no partial truth
    train = pd.read_csv(out / "train_meta.tsv", sep="\t")
    arr = np.load(out / "train_features" / train["archive_features_path"].iloc[0])
    assert arr.dtype == np.float32 and arr.shape[0] == 753  # the default front end, musicnn-msd


def _folder(root: Path, n: int = 6) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        sf.write(root / f"t{i}.wav", tone(200 + 60 * i, 3 + i, 16_000) + 0.01 * np.float32(i), 16_000)
    sf.write(root / "silent.wav", np.zeros(40_000, np.float32), 16_000)
    manifest = root / "manifest.tsv"
    manifest.write_text("path\tartist\n" + "".join(f"t{i}.wav\ta{i % 3}\n" for i in range(n)) + "silent.wav\ta0\n")
    return manifest


def test_resume_after_a_kill_finishes_the_rest_and_matches_a_clean_run(tmp_path, monkeypatch):
    manifest = _folder(tmp_path / "music")
    clean = tmp_path / "clean"
    featurize_dataset(manifest, clean, FeaturizeOptions(workers=1, test_fraction=0.34))

    killed = tmp_path / "killed"
    real, calls = fz.process_track, []

    def dies_on_the_third(job):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies mid-batch, as a kill would
        calls.append(job)
        return real(job)

    monkeypatch.setattr(fz, "process_track", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        featurize_dataset(manifest, killed, FeaturizeOptions(workers=1, test_fraction=0.34))
    monkeypatch.setattr(fz, "process_track", real)
    assert not (killed / "train_meta.tsv").exists()
    journal = killed / fz.STATE_DIR / "journal-1-of-1.tsv"
    with journal.open("a") as fh:
        fh.write("5\tok\t\t3.0")  # a torn line: the kill came mid-write
    stray = killed / "train_features" / "0" / ".x.npy.abc.tmp.npy"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"half")

    summary = featurize_dataset(manifest, killed, FeaturizeOptions(workers=1, test_fraction=0.34))
    assert summary.processed == 7 - 2  # the two finished tracks are not redone
    assert not stray.exists()
    a, b = _snapshot(clean), _snapshot(killed)
    public = sorted(k for k in a if not k.startswith(fz.STATE_DIR))
    assert public == sorted(k for k in b if not k.startswith(fz.STATE_DIR))
    assert all(a[k][0] == b[k][0] for k in public)


def test_rerun_changes_nothing(tmp_path):
    manifest = _folder(tmp_path / "music")
    out = tmp_path / "out"
    featurize_dataset(manifest, out, FeaturizeOptions(workers=1))
    before = _snapshot(out)
    summary = featurize_dataset(manifest, out, FeaturizeOptions(workers=1))
    assert summary.processed == 0 and _snapshot(out) == before


def test_a_different_input_is_refused(tmp_path):
    manifest = _folder(tmp_path / "music")
    out = tmp_path / "out"
    featurize_dataset(manifest, out, FeaturizeOptions(workers=1, seed=0))
    with pytest.raises(DataError, match="different input"):
        featurize_dataset(manifest, out, FeaturizeOptions(workers=1, seed=1, test_fraction=0.5))


def test_shards_together_equal_one_run(tmp_path):
    manifest = _folder(tmp_path / "music")
    one = tmp_path / "one"
    featurize_dataset(manifest, one, FeaturizeOptions(workers=1, test_fraction=0.34))
    parts = [tmp_path / f"machine{k}" for k in (1, 2, 3)]
    done = []
    for k, part in enumerate(parts, 1):
        s = featurize_dataset(manifest, part, FeaturizeOptions(workers=1, test_fraction=0.34, shard=(k, 3)))
        assert not s.finalized and not (part / "train_meta.tsv").exists()
        done.append(s.processed)
    assert sum(done) == 7 and max(done) - min(done) <= 1
    merged = tmp_path / "merged"
    with pytest.raises(DataError, match="not featurized yet"):  # merging too early names the gap
        shutil.copytree(parts[0], merged)
        featurize_dataset(manifest, merged, FeaturizeOptions(workers=1, test_fraction=0.34, merge=True))
    for part in parts[1:]:  # shards written on other machines, copied together
        shutil.copytree(part, merged, dirs_exist_ok=True)
    assert featurize_dataset(manifest, merged, FeaturizeOptions(workers=1, test_fraction=0.34, merge=True)).finalized
    a, b = _snapshot(one), _snapshot(merged)
    public = sorted(k for k in a if not k.startswith(fz.STATE_DIR))
    assert public == sorted(k for k in b if not k.startswith(fz.STATE_DIR))
    assert all(a[k][0] == b[k][0] for k in public)


def test_worker_processes_give_the_same_files(tmp_path):
    manifest = _folder(tmp_path / "music", n=4)
    featurize_dataset(manifest, tmp_path / "one", FeaturizeOptions(workers=1))
    featurize_dataset(manifest, tmp_path / "two", FeaturizeOptions(workers=2))
    a, b = _snapshot(tmp_path / "one"), _snapshot(tmp_path / "two")
    public = [k for k in a if not k.startswith(fz.STATE_DIR)]
    assert sorted(public) == sorted(k for k in b if not k.startswith(fz.STATE_DIR))
    for k in public:  # workers run torch on one thread, this process maybe on more: rounding may differ
        if k.endswith(".npy"):
            np.testing.assert_allclose(np.load(tmp_path / "one" / k), np.load(tmp_path / "two" / k), atol=1e-4)
        else:
            assert a[k][0] == b[k][0], k


def test_artists_from_manifest_labels_and_tags(tmp_path):
    import mutagen.flac

    music = tmp_path / "music"
    music.mkdir()
    for name, f in (("a.flac", 300), ("b.flac", 400), ("c.flac", 500)):
        sf.write(music / name, tone(f, 3), 16_000)
    tagged = mutagen.flac.FLAC(music / "c.flac")
    tagged["artist"] = "Tagged Band"
    tagged.save()
    manifest = music / "list.tsv"
    manifest.write_text("path\tartist\ttrackid\na.flac\tFrom Manifest\t70\nb.flac\t\t71\nc.flac\t\t72\n")
    labels = tmp_path / "labels.tsv"
    labels.write_text("path\tartist\na.flac\tIgnored\nb.flac\tFrom Labels\n")
    out = tmp_path / "out"
    featurize_dataset(manifest, out, FeaturizeOptions(workers=1, labels=labels, tags=True, test_fraction=0.0))
    tracks = _tracks(out)
    assert tracks.loc[["a.flac", "b.flac", "c.flac"], "artist"].tolist() == ["From Manifest", "From Labels",
                                                                              "Tagged Band"]
    assert tracks["trackid"].tolist() == ["70", "71", "72"]
    assert (out / "train_features" / "0" / "70.npy").exists()


@pytest.mark.parametrize("argv, message", [(["--shard", "3/2"], "--shard"), (["--test-fraction", "1.5"], "test-fraction")])
def test_bad_options_exit_2(tmp_path, capsys, argv, message):
    manifest = _folder(tmp_path / "music", n=2)
    assert main(["-q", "featurize", str(manifest), str(tmp_path / "out"), "--workers", "1", *argv]) == 2
    assert message in capsys.readouterr().err


def test_bad_manifest_names_the_line(tmp_path, capsys):
    manifest = tmp_path / "m.tsv"
    manifest.write_text("path\ttrackid\na.wav\t1\nb.wav\tx\n")
    assert main(["-q", "featurize", str(manifest), str(tmp_path / "out")]) == 2
    assert "line 3" in capsys.readouterr().err


def test_features_of_another_descriptor_version_are_refused(tmp_path):
    manifest = _folder(tmp_path / "music", n=2)
    out = tmp_path / "out"
    featurize_dataset(manifest, out, FeaturizeOptions(workers=1, frontend="dsp"))
    (out / fz.STATE_DIR / "frontend.json").unlink()  # a folder from before front ends had records
    (out / fz.STATE_DIR / "descriptor_version").write_text("1\n")
    with pytest.raises(DataError, match="front end dsp v1"):
        featurize_dataset(manifest, out, FeaturizeOptions(workers=1, frontend="dsp"))
    with pytest.raises(DataError, match="front end dsp v1"):  # nor the default front end on top
        featurize_dataset(manifest, out, FeaturizeOptions(workers=1))


def test_features_of_another_front_end_are_refused(tmp_path):
    manifest = _folder(tmp_path / "music", n=2)
    out = tmp_path / "out"
    featurize_dataset(manifest, out, FeaturizeOptions(workers=1, frontend="dsp"))
    with pytest.raises(DataError, match=r"front end dsp v\d+ \(512-d\), this run applies musicnn-msd"):
        featurize_dataset(manifest, out, FeaturizeOptions(workers=1))  # the default


def test_an_unknown_front_end_is_one_line(tmp_path):
    manifest = _folder(tmp_path / "music", n=2)
    with pytest.raises(DataError, match="unknown front end 'vggish'; choose from dsp, musicnn-msd"):
        featurize_dataset(manifest, tmp_path / "out", FeaturizeOptions(workers=1, frontend="vggish"))
    assert not (tmp_path / "out").exists()


def test_outside_paths_are_featurized_only_when_allowed(tmp_path, capsys):
    """A manifest naming ../x.wav is refused (exit 2, nothing written) unless --allow-outside-paths."""
    sf.write(tmp_path / "outside.wav", tone(440, 3), 16_000)
    (tmp_path / "music").mkdir()
    sf.write(tmp_path / "music" / "a.wav", tone(330, 3), 16_000)
    manifest = tmp_path / "music" / "m.tsv"
    manifest.write_text("path\na.wav\n../outside.wav\n")
    out = tmp_path / "out"
    assert main(["-q", "featurize", str(manifest), str(out), "--workers", "1"]) == 2
    assert "m.tsv: line 3" in capsys.readouterr().err and not out.exists()
    assert main(["-q", "--allow-outside-paths", "featurize", str(manifest), str(out), "--workers", "1",
                 "--test-fraction", "0"]) == 0
    assert (_tracks(out)["status"] == "ok").all()


def test_missing_musicnn_weights_stop_the_default_before_any_track(tmp_path, capsys, monkeypatch):
    """The default front end needs the musicnn wheel's weights: without them, exit 2 and one
    line that names the cure and the weight-free alternative; nothing written."""
    import artistsim.audio.musicnn as m

    monkeypatch.setattr(m, "checkpoint_prefix", lambda model: f"{tmp_path / 'absent'}/")
    manifest = _folder(tmp_path / "music", n=2)
    out = tmp_path / "out"
    assert main(["featurize", str(manifest), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "front end musicnn-msd" in err and "--frontend dsp" in err
    assert not out.exists()
