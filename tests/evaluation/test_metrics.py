"""nDCG@k: the vectorised metric against a plain per-query loop, plus hand-computed cases."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from artistsim.evaluation.metrics import ndcg_at_k, ndcg_per_query, read_ground_truth, score_submission

# ----------------------------------------------------------------------------- reference


def reference_query(ranked: list[int], query, artist_of: dict, sizes: Counter, k: int) -> float:
    """Competition nDCG of one list, written as plainly as possible (-1 = empty slot)."""
    n = sizes[artist_of[query]]
    if n < 2:
        return math.nan
    kept = [x for x in ranked if x != query][:k]
    seen: set = set()
    dcg = 0.0
    for position, x in enumerate(kept, start=1):
        if x == -1 or x in seen:
            continue
        seen.add(x)
        if artist_of[x] == artist_of[query]:
            dcg += 1.0 / math.log2(position + 1)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(k, n - 1) + 1))
    return dcg / ideal


def reference_score(submission: dict, gt: pd.DataFrame, k: int) -> float:
    artist_of = dict(zip(gt.trackid.tolist(), gt.artistid.tolist()))
    sizes = Counter(gt.artistid.tolist())
    per_query = [reference_query(submission.get(t, []), t, artist_of, sizes, k) for t in gt.trackid.tolist()]
    scored = [s for s in per_query if not math.isnan(s)]
    return sum(scored) / len(scored)


def random_ground_truth(rng: np.random.Generator, n_artists: int = 60) -> pd.DataFrame:
    """Artists of 1..14 tracks (several single-track ones), with shuffled, sparse ids."""
    sizes = rng.integers(1, 15, size=n_artists)
    sizes[:5] = 1
    artists = np.repeat(rng.choice(10**6, size=n_artists, replace=False), sizes)
    tracks = rng.choice(10**7, size=artists.size, replace=False)
    order = rng.permutation(artists.size)
    return pd.DataFrame({"trackid": tracks[order], "artistid": artists[order]})


def random_submission(rng: np.random.Generator, gt: pd.DataFrame, k: int) -> dict[int, list[int]]:
    """Lists biased to the right artist, with duplicates, self at random places, short lists."""
    tracks = gt.trackid.to_numpy()
    by_artist = gt.groupby("artistid").trackid.apply(list).to_dict()
    artist_of = dict(zip(gt.trackid, gt.artistid))
    submission = {}
    for t in tracks:
        if rng.random() < 0.1:
            continue  # missing query
        length = int(rng.integers(0, k + 6))
        same = [x for x in by_artist[artist_of[t]] if x != t]
        pool = np.concatenate([rng.choice(tracks, size=length), np.array(same * 3, dtype=np.int64)])
        lst = rng.choice(pool, size=length).tolist() if length else []
        if lst and rng.random() < 0.5:
            lst.insert(int(rng.integers(0, len(lst) + 1)), int(t))  # self anywhere, also last
        if lst and rng.random() < 0.3:
            lst.insert(0, int(t))
        submission[int(t)] = [int(x) for x in lst]
    return submission


# ----------------------------------------------------------------------------- tests


def test_hand_computed_example():
    gt = pd.DataFrame({"trackid": [1, 2, 3, 4, 5, 6], "artistid": [7, 7, 7, 8, 8, 9]})
    submission = {
        1: [2, 4, 3],  # relevant at 1 and 3, ideal over 2 positions
        2: [2, 4, 1, 1],  # self dropped -> [4, 1, 1]; the repeated 1 scores nothing
        # 3 missing -> 0
        4: [5],  # perfect
        5: [1, 2, 3, 6, 4],  # relevant at 5
        6: [1],  # single-track artist: skipped
    }
    ideal_2 = 1 + 1 / math.log2(3)
    expected = (1.5 / ideal_2 + (1 / math.log2(3)) / ideal_2 + 0 + 1 + 1 / math.log2(6)) / 5
    assert score_submission(submission, gt) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.5386852, abs=1e-7)


def test_query_dropped_before_cut():
    gt = pd.DataFrame({"trackid": [1, 2, 3, 4], "artistid": [5, 5, 6, 6]})
    # k=2: [3, self, 2, 4] -> [3, 2, 4] -> cut [3, 2]: relevant at position 2
    per_query = ndcg_per_query(np.array([[2, 0, 1, 3]]), gt.artistid.to_numpy(), np.array([0]), k=2)
    assert per_query[0] == pytest.approx(1 / math.log2(3))


def test_repeating_one_right_answer_cannot_beat_ideal():
    labels = np.array([0] * 11 + [1] * 5)
    gamed = np.full((1, 100), 1)  # row 1 shares the artist of query 0, repeated 100 times
    ideal = sum(1 / math.log2(i + 1) for i in range(1, 11))
    assert ndcg_per_query(gamed, labels, np.array([0]))[0] == pytest.approx(1 / ideal)


@pytest.mark.parametrize("k", [1, 5, 100])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_submission_matches_reference(seed, k):
    rng = np.random.default_rng(seed)
    gt = random_ground_truth(rng)
    submission = random_submission(rng, gt, k)
    want = reference_score(submission, gt, k)
    assert score_submission(submission, gt, k=k) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("seed", [3, 4])
def test_ndcg_per_query_matches_reference_with_empty_slots(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 30, size=200)
    labels[:4] = [1000, 1001, 1002, 1003]  # single-track artists
    query_rows = rng.permutation(200)[:150]
    rankings = np.where(rng.random((150, 25)) < 0.2, -1, rng.integers(0, 200, size=(150, 25)))
    same = rng.random((150, 25)) < 0.3
    rankings[same] = rng.integers(0, 200, size=same.sum())  # duplicates
    self_at = rng.integers(0, 25, size=150)
    put = rng.random(150) < 0.5
    rankings[np.flatnonzero(put), self_at[put]] = query_rows[put]
    artist_of = dict(enumerate(labels.tolist()))
    artist_of[-1] = None
    sizes = Counter(labels.tolist())
    for k in (3, 10, 25, 100):
        got = ndcg_per_query(rankings, labels, query_rows, k=k)
        pairs = zip(rankings.tolist(), query_rows.tolist())
        want = np.array([reference_query(r, q, artist_of, sizes, k) for r, q in pairs])
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-12)
        assert np.isnan(got[np.isin(query_rows, [0, 1, 2, 3])]).all()
        scored = want[~np.isnan(want)]
        assert ndcg_at_k(rankings, labels, query_rows, k=k) == pytest.approx(scored.mean(), rel=1e-12)


def test_default_query_rows_and_perfect_ranking():
    labels = np.array([0, 0, 0, 1, 1])
    rankings = np.array([[1, 2, 3], [0, 2, 4], [0, 1, 3], [4, 0, 1], [3, 0, 1]])
    np.testing.assert_allclose(ndcg_per_query(rankings, labels), 1.0)
    assert ndcg_at_k(rankings, labels) == 1.0


def test_all_single_track_artists_is_an_error():
    with pytest.raises(ValueError, match="undefined"):
        ndcg_at_k(np.array([[1], [0]]), np.array([0, 1]))
    with pytest.raises(ValueError, match="undefined"):
        score_submission({1: [2]}, pd.DataFrame({"trackid": [1, 2], "artistid": [3, 4]}))


def test_core_rejects_bad_input():
    labels = np.array([0, 0, 1])
    with pytest.raises(ValueError, match="outside"):
        ndcg_per_query(np.array([[3]]), labels)
    with pytest.raises(ValueError, match="integer"):
        ndcg_per_query(np.array([[1.0]]), labels)
    with pytest.raises(ValueError, match="query_rows"):
        ndcg_per_query(np.array([[1]]), labels, np.array([0, 1]))


def test_unknown_ids_are_errors_naming_them():
    gt = pd.DataFrame({"trackid": [1, 2, 3], "artistid": [5, 5, 6]})
    with pytest.raises(ValueError, match="42"):
        score_submission({1: [2], 42: [1]}, gt)
    with pytest.raises(ValueError, match=r"query 2 holds trackid 77"):
        score_submission({1: [2, 3], 2: [1, 77]}, gt)


def test_ground_truth_duplicates_in_frame():
    gt = pd.DataFrame({"trackid": [1, 2, 1], "artistid": [5, 5, 6]})
    with pytest.raises(ValueError, match="duplicate trackids at row 0"):
        score_submission({1: [2]}, gt)


def test_read_ground_truth(tmp_path):
    path = tmp_path / "train_meta.tsv"
    path.write_text("trackid\tartistid\tarchive_features_path\n1\t5\t0/1.npy\n2\t5\t0/2.npy\n")
    gt = read_ground_truth(path)
    assert list(gt.columns) == ["trackid", "artistid"]
    assert gt.trackid.tolist() == [1, 2] and gt.dtypes.tolist() == [np.int64, np.int64]


def test_read_ground_truth_errors(tmp_path):
    path = tmp_path / "gt.tsv"
    with pytest.raises(FileNotFoundError):
        read_ground_truth(path)
    path.write_text("trackid\tartist\n1\t5\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['artistid'\]"):
        read_ground_truth(path)
    path.write_text("trackid\tartistid\n1\t5\n2\t5\n1\t6\n")
    with pytest.raises(ValueError, match=r"line 4: duplicate trackid 1 \(first on line 2\)"):
        read_ground_truth(path)
    path.write_text("trackid\tartistid\n1\t5\n2\tabc\n")
    with pytest.raises(ValueError, match="line 3"):
        read_ground_truth(path)
