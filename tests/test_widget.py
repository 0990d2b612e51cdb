"""The ranking widget: session logic (no browser) and the ipywidgets view driven by clicks.

A tiny study of real PNG files in a temporary folder; pair features are random (no backbone).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from clpips import datasets
from clpips.datasets import RankingDataset, validate
from clpips.features import PairFeatures
from clpips.model import CHANNELS, initial_weight_vector
from clpips.apps.widget import RankingSession, RankingWidget, SessionError, read_weight_vector, scores_html

DIM = sum(CHANNELS["alex"])
K = 4


@pytest.fixture()
def study(tmp_path: Path):
    """Three sets of one target and four candidates, ranked by one 'reference' rater."""
    root = tmp_path / "study"
    (root / "img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    refs = [f"img/{i}.png" for i in range(8)]
    for ref in refs:
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(root / ref)
    rows, keys = [], []
    for s in range(3):
        target = refs[s]
        cands = [r for r in refs if r != target][s:s + K]
        keys += [(target, c) for c in cands]
        rows += [{"set_id": f"s{s}", "target": target, "candidate": c, "rater": "ref", "rank": i + 1}
                 for i, c in enumerate(cands)]
    data = RankingDataset(table=pd.DataFrame(rows), root=root, name="tiny")
    features = PairFeatures(keys=keys, matrix=torch.rand(len(keys), DIM, generator=torch.Generator().manual_seed(1)),
                            net="alex", extracted=0)
    return data, features, tmp_path / "out" / "rankings.csv"


def session_of(study, rater="me", **kw) -> RankingSession:
    data, features, csv = study
    return RankingSession(data, csv, rater=rater, sets=["s0", "s1", "s2"], features=features, epochs=3, **kw)


def rank_all(session: RankingSession, order=None) -> list[str]:
    cands = session.candidates()
    order = order or cands
    for c in order[:-1]:
        session.click(c)
    return order


# --------------------------------------------------------------------------- session logic
def test_record_writes_a_valid_csv_in_click_order(study):
    data, _, csv = study
    s = session_of(study, group="class A")
    assert s.current == "s0" and sorted(s.candidates()) == sorted(data.table.query("set_id == 's0'")["candidate"])
    order = list(reversed(s.candidates()))
    rank_all(s, order)
    assert s.complete                                    # the last candidate was ranked automatically
    s.save()
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    checked = validate(table, data.root, source=str(csv))  # images exist and decode too
    assert list(checked["candidate"]) == order and list(checked["rank"]) == [1, 2, 3, 4]
    assert set(checked["rater"]) == {"me"} and set(checked["group"]) == {"class A"}
    assert datasets.from_csv(csv, root=data.root).table.shape[0] == K
    assert s.current == "s1" and s.clicks == []


def test_click_undo_reset_and_errors(study):
    s = session_of(study, auto_last=False)
    c = s.candidates()
    assert s.click(c[2]) == 1 and s.click(1) == 2
    assert s.ranks() == {c[2]: 1, c[1]: 2}
    with pytest.raises(SessionError):
        s.click(c[2])                                    # already ranked
    with pytest.raises(SessionError):
        s.click("img/nope.png")
    with pytest.raises(SessionError):
        s.click(99)
    s.undo()
    assert s.clicks == [c[2]]
    with pytest.raises(SessionError):
        s.save()                                         # unfinished
    s.reset()
    assert s.clicks == [] and not s.complete


def test_undo_after_the_automatic_last_rank_takes_back_both(study):
    s = session_of(study)
    c = s.candidates()
    for x in c[:-1]:
        s.click(x)
    assert s.complete and s.clicks[-1] == c[-1]
    s.undo()
    assert s.clicks == c[:-2] and not s.complete


def test_candidate_order_is_shuffled_reproducibly(study):
    a, b = session_of(study, seed=3), session_of(study, seed=3)
    assert a.candidates() == b.candidates()
    orders = {tuple(session_of(study, seed=seed).candidates()) for seed in range(8)}
    assert len(orders) > 1


def test_resume_skips_sets_already_ranked_by_this_rater(study):
    s = session_of(study)
    rank_all(s)
    s.save()
    rank_all(s)
    s.save()
    again = session_of(study)
    assert again.pending == ["s2"] and again.current == "s2" and again.n_done == 2
    other = session_of(study, rater="you")
    assert other.pending == ["s0", "s1", "s2"]
    rank_all(other)
    other.save()                                         # another rater's rows are kept
    table = session_of(study).collected()
    assert len(table) == 2 * K and len(pd.read_csv(study[2])) == 3 * K


def test_a_set_saved_by_another_session_is_not_saved_twice(study):
    a, b, c = session_of(study), session_of(study), session_of(study)
    rank_all(a)
    a.save()
    assert a.last_save_written
    rank_all(b)                                          # the same ranking (a second tab, a double click)
    b.save()
    assert not b.last_save_written and b.current == "s1"  # nothing written, moved on
    assert len(pd.read_csv(study[2])) == K
    rank_all(c, list(reversed(c.candidates())))          # a different ranking of the same set
    with pytest.raises(SessionError, match="different ranking"):
        c.save()
    c.resume()
    assert c.current == "s1" and len(pd.read_csv(study[2])) == K


def test_rater_names_are_normalised_or_refused(study):
    from clpips.apps.widget import RaterNameError, normalise_rater
    assert normalise_rater("  Ana \t Mar\u0131a ") == "Ana Mar\u0131a"
    assert normalise_rater("Jose\u0301") == "Jos\u00e9" == normalise_rater("Jos\u00e9")   # NFD -> NFC
    for bad in ("", "   ", "a\x00b", "x" * 65, "zero\u200bwidth"):
        with pytest.raises(RaterNameError) as err:
            normalise_rater(bad)
        assert "\n" not in str(err.value)
    s = session_of(study, rater=" me ")
    assert s.rater == "me"
    rank_all(s)
    s.save()
    again = session_of(study, rater="me")                # resume sees it under the normalised name
    assert again.n_done == 1 and len(again.collected()) == K
    with pytest.raises(RaterNameError):
        session_of(study, rater="\t")


def test_an_older_csv_with_unnormalised_names_is_resumed(study):
    data, _, csv = study
    csv.parent.mkdir(parents=True)
    rows = data.table[data.table["set_id"] == "s0"].assign(rater=" me  ")
    rows.to_csv(csv, index=False)
    s = session_of(study, rater="me")
    assert s.pending == ["s1", "s2"] and len(s.collected()) == K


def test_skip_moves_the_set_to_the_end(study):
    s = session_of(study)
    s.click(0)
    s.skip()
    assert s.pending == ["s1", "s2", "s0"] and s.clicks == []


def test_finishing_every_set(study):
    s = session_of(study)
    for _ in range(3):
        rank_all(s)
        s.save()
    assert s.current is None and s.n_done == 3
    with pytest.raises(SessionError):
        s.candidates()


def test_an_error_while_saving_leaves_the_previous_csv_intact(study, monkeypatch):
    data, _, csv = study
    s = session_of(study)
    rank_all(s)
    s.save()
    before = csv.read_bytes()
    order = rank_all(s)
    original = pd.DataFrame.to_csv

    def broken(self, path, *args, **kwargs):
        original(self.iloc[:2], path, *args, **kwargs)   # a partly written temporary file...
        raise OSError("disk full")                       # ...then the write fails

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        s.save()
    monkeypatch.undo()
    assert csv.read_bytes() == before
    left = sorted(p.name for p in csv.parent.iterdir())
    assert left == [csv.name, csv.name + ".lock"]        # no temporary file left behind (the lock file stays)
    assert s.current == "s1" and s.clicks == order       # the ranking in progress is kept
    s.save()                                             # and can be saved once the disk is back
    assert len(validate(pd.read_csv(csv, dtype=str), data.root, check_images=False)) == 2 * K


def test_earlier_rows_are_written_back_unchanged(study):
    data, _, csv = study
    csv.parent.mkdir(parents=True)
    earlier = data.table.assign(note="kept", group="").astype(str)   # another rater, an extra column
    earlier.to_csv(csv, index=False)
    s = session_of(study)
    rank_all(s)
    s.save()
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(table.iloc[:len(earlier)], earlier, check_dtype=False)
    assert (table["note"].iloc[len(earlier):] == "").all() and len(table) == len(earlier) + K


def test_an_invalid_csv_on_disk_is_reported_not_overwritten(study):
    _, _, csv = study
    s = session_of(study)
    rank_all(s)
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_text("set_id,target,candidate,rater,rank\ns9,img/0.png,img/1.png,x,1\n", encoding="utf-8")
    before = csv.read_bytes()
    with pytest.raises(datasets.RankingDataError):
        s.save()                                         # a one-candidate set breaks the schema
    assert csv.read_bytes() == before


def test_fit_from_lpips_and_scores(study):
    s = session_of(study)
    with pytest.raises(SessionError):
        s.fit()
    for _ in range(2):
        rank_all(s)
        s.save()
    before = s.scores()
    assert list(before.index) == ["LPIPS"] and before.at["LPIPS", "n_rankings"] == 2
    result = s.fit()
    assert s.weights is not None and s.fitted_sets == {"s0", "s1"}
    assert result.config["n_train_pairs"] == 2 * K * (K - 1) // 2
    scores = s.scores()
    assert list(scores.index) == ["LPIPS", "personal CLPIPS"]
    assert scores.at["personal CLPIPS", "n_new"] == 0 and np.isnan(scores.at["personal CLPIPS", "icc_new"])
    rank_all(s)
    s.save()
    scores = s.scores()
    assert scores.at["LPIPS", "n_rankings"] == 3 and scores.at["LPIPS", "n_new"] == 1


def test_fit_from_a_pooled_weights_file_is_pulled_towards_it(study, tmp_path):
    pooled = initial_weight_vector("alex", "lpips") * 1.5
    state, start = {}, 0
    for i, c in enumerate(CHANNELS["alex"]):
        state[f"lin{i}.model.1.weight"] = pooled[start:start + c].reshape(1, c, 1, 1)
        start += c
    path = tmp_path / "pooled.pth"
    torch.save(state, path)
    assert torch.equal(read_weight_vector(path), pooled)
    s = session_of(study, base=path, l2=100.0)
    rank_all(s)
    s.save()
    s.fit()
    assert s.base_name == "CLPIPS (pooled.pth)"
    assert float((s.weights - pooled).norm()) < float((s.weights - initial_weight_vector("alex", "lpips")).norm())
    assert list(s.scores().index) == ["LPIPS", "CLPIPS (pooled.pth)", "personal CLPIPS"]
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(ValueError):
        read_weight_vector(bad)


def test_scores_html():
    assert "Save a ranking" in scores_html(None)
    table = pd.DataFrame({"icc_A_k": [0.5], "spearman": [0.3], "n_rankings": [2], "spearman_new": [np.nan],
                          "icc_new": [np.nan], "n_new": [0]}, index=["LPIPS"])
    html = scores_html(table, 2)
    assert "0.50" in html and "0.30" in html and "–" in html and "fitted on 2" in html


# --------------------------------------------------------------------------- the ipywidgets view
def test_widget_buttons_drive_the_session(study):
    pytest.importorskip("ipywidgets")
    s = session_of(study)
    w = RankingWidget(s, thumb=32)
    assert len(w.images) == K and all(img.value for img in w.images) and bytes(w.target_image.value).startswith(b"\x89PNG")
    assert w.save_button.disabled and w.undo_button.disabled
    w.buttons[2].click()
    assert w.buttons[2].description == "rank 1" and w.buttons[2].disabled and not w.undo_button.disabled
    w.undo_button.click()
    assert w.buttons[2].description == "click to rank" and s.clicks == []
    ranks = {c: i + 1 for i, c in enumerate(reversed(s.candidates()))}
    w.play(ranks)
    assert s.complete and not w.save_button.disabled
    w.save_button.click()
    assert "Saved ranking 1" in w.status.value and "LPIPS" in w.scores.value and s.current == "s1"
    w.play({c: i for i, c in enumerate(s.candidates())}, n_clicks=2)
    assert [b.description for b in w.buttons].count("click to rank") == K - 2
    w.reset_button.click()
    assert s.clicks == []


def test_widget_fit_button_and_errors_are_shown(study):
    pytest.importorskip("ipywidgets")
    s = session_of(study)
    w = RankingWidget(s, thumb=32)
    w.fit_button.click()                                 # nothing saved yet: an error message, no crash
    assert "SessionError" in w.status.value and s.weights is None
    w.play({c: i for i, c in enumerate(s.candidates())})
    w.save_button.click()
    w.fit_button.click()
    assert "Fitted your CLPIPS on 1 ranking" in w.status.value
    assert "personal CLPIPS" in w.scores.value and s.weights is not None


def test_widget_when_every_set_is_done(study):
    pytest.importorskip("ipywidgets")
    s = session_of(study)
    w = RankingWidget(s, thumb=32)
    for _ in range(3):
        w.play({c: i for i, c in enumerate(s.candidates())})
        w.save_button.click()
    assert "All 3 sets ranked" in w.title.value and w.save_button.disabled
    resumed = RankingWidget(session_of(study), thumb=32)
    assert "All 3 sets ranked" in resumed.title.value
