"""Chapter 09's metrics as families of the nested protocol (clpips.book.families): global CLPIPS is
fit_many on pooled features in LPIPS's units, tuned by its own inner folds; the transform and the teacher's
student are nested and deterministic, the teacher stays on its side, refits train the chosen setting alone;
the families' options are checked and reach the run's settings (its cache key: a family configured otherwise
reads no other's cached run); a run cut to its first repeats has the folds of a run of that many; the
budgets are counted."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from clpips import protocol
from clpips.book import families
from helpers import record_calls
from tolerance import assert_same_fit, assert_within, dot_bound, typical_dot_bound


BEYOND = protocol.Settings(folds=3, repeats=1, inner_folds=2, grid=protocol.Grid.parse("0.02,0.05", "0.01", "2,4"))
TRANSFORM = families.Transform(lambdas="0.001,0.1", lrs="0.01", steps="20,50", rank=4)


@pytest.mark.parametrize("mode", ["target", "image"])
def test_global_clpips_is_fit_many_on_pooled_features_in_lpips_units(mode, mur92_mirror, monkeypatch, tmp_path):
    """The global metric's out-of-fold distances are its refitted weights times the pooled features
    (a direct computation from the image embeddings), scaled by one constant: mean LPIPS distance
    over mean global LPIPS distance of the run's rows. Same folds as CLPIPS's run; its setting chosen by
    its own inner folds over the same grid (the fair race of chapter 09: it no longer follows CLPIPS's)."""
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    monkeypatch.setattr(protocol, "cache_folder", lambda key: tmp_path / "crossval" / key)
    from clpips import datasets
    from clpips.book import aligned
    data = datasets.load("mur92")
    glob = protocol.crossval(data, BEYOND.replace(mode=mode), families.GlobalCLPIPS())
    plain = protocol.crossval(data, BEYOND.replace(mode=mode))
    assert glob.settings["metric"] == "global" and "metric" not in plain.settings
    pd.testing.assert_frame_equal(glob.oof[["set_id", "target", "candidate", "rater", "rank", "repeat", "fold"]],
                                  plain.oof[["set_id", "target", "candidate", "rater", "rank", "repeat", "fold"]])
    assert np.allclose(glob.oof["lpips"], plain.oof["lpips"])
    # tuned as CLPIPS is: every setting of the same grid scored by its own inner folds, the best one chosen
    assert glob.setting_columns() == ["margin", "lr", "epochs"] and np.isfinite(glob.folds["inner_score"]).all()
    grid = BEYOND.grid.settings()
    for (r, f), inner in glob.inner.groupby(["repeat", "fold"]):
        pd.testing.assert_frame_equal(inner[["margin", "lr", "epochs"]].reset_index(drop=True), grid)
        row = glob.folds[(glob.folds["repeat"] == r) & (glob.folds["fold"] == f)].iloc[0]
        best = inner.iloc[int(np.nanargmax(inner["inner_icc_A_k"].to_numpy(float)))]
        assert row["inner_score"] == best["inner_icc_A_k"]
        assert (row["epochs"], row["margin"], row["lr"]) == (best["epochs"], best["margin"], best["lr"]) or (
            row["epochs"] == best["epochs"] == 0)
    emb = aligned.image_embeddings(data, sorted(set(data.table["target"]) | set(data.table["candidate"])))
    for fold, part in glob.oof.groupby("fold"):
        psi = (emb.of(list(part["target"])) - emb.of(list(part["candidate"]))) ** 2
        w = torch.as_tensor(glob.weights[fold], dtype=torch.float32)
        raw = (psi @ w).numpy()
        ratio = part["clpips"].to_numpy() / raw
        # one scale for the whole run. Each float32 dot product of D terms (the library's and this one) errs by
        # at most gamma_D sum|psi w| (tolerance.py), so ratio / ratio[0] - 1 by at most four of those, relative
        cond = ((psi @ w.abs()).numpy() / np.abs(raw))
        rel = cond + cond[0]
        D = psi.shape[1]
        assert ratio[0] > 0
        assert_within(ratio / ratio[0], np.ones_like(ratio), dot_bound(rel, D, torch.float32),
                      typical_dot_bound(rel, D, torch.float32), "one scale per run")


def test_transform_and_teacher_runs_are_nested_deterministic_and_the_teacher_stays_on_its_side(
        mur92_mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    monkeypatch.setattr(protocol, "cache_folder", lambda key: tmp_path / "crossval" / key)
    from clpips import datasets
    from clpips.book import aligned
    data = datasets.load("mur92")
    seen = []
    real = aligned.teacher_rankings

    def recording(distance, targets, images, **kw):
        made = real(distance, targets, images, **kw)
        seen.append((set(targets), set(images), made))
        return made
    monkeypatch.setattr(aligned, "teacher_rankings", recording)
    taught = families.Taught(TRANSFORM, weight=0.5, sets=1, clpips_repeats=BEYOND.repeats)
    teacher = protocol.crossval(data, BEYOND.replace(mode="image"), taught)
    transform = protocol.crossval(data, BEYOND.replace(mode="image"), TRANSFORM)   # cached by the teacher run
    plain = protocol.crossval(data, BEYOND.replace(mode="image"))
    assert set(transform.setting_columns()) == {"margin", "lam", "lr", "steps"}
    assert len(seen) == len(teacher.folds)          # one teacher per outer fold (the student is not re-tuned)
    for (targets, images, made), (_, fold) in zip(seen, teacher.oof.groupby(["repeat", "fold"])):
        held = set(fold["target"]) | set(fold["candidate"])
        assert not (targets | images) & held         # split by image: no held-out image reaches the teacher
        assert set(made["target"]) <= targets and set(made["candidate"]) <= images
        assert (made["rater"] == aligned.TEACHER).all()
    # the student takes the setting CLPIPS's inner folds chose in the same fold
    pd.testing.assert_frame_equal(teacher.folds[["margin", "lr", "epochs"]], plain.folds[["margin", "lr", "epochs"]])
    assert teacher.folds["inner_score"].isna().all()
    again = protocol.crossval(data, BEYOND.replace(mode="image"), taught, cache=False)
    assert np.array_equal(again.weights, teacher.weights)
    pd.testing.assert_frame_equal(again.folds, teacher.folds)
    with pytest.raises(ValueError, match="metric must be one of"):
        families.family("dreamsim")


def test_transform_refits_train_the_chosen_setting_alone(mur92_mirror, monkeypatch, tmp_path):
    """The transform's refit of each outer fold is its chosen (margin, lam, lr, steps) alone, and equals
    that setting's column of the whole grid fitted on the same pairs (to float rounding)."""
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    monkeypatch.setattr(protocol, "cache_folder", lambda key: tmp_path / "crossval" / key)
    from clpips import datasets
    from clpips.book import aligned
    calls, real = record_calls(monkeypatch, aligned, "fit_transform_many")
    res = protocol.crossval(datasets.load("mur92"), BEYOND.replace(mode="target"), TRANSFORM)
    full = aligned.TransformGrid((0.001, 0.1), (0.01,), (20, 50), 4)
    refits = [c for c in calls if len(c[2].lambdas) == 1]
    assert sum(len(c[1]) for c in refits) == len(res.folds)
    checked = 0
    for n, row in res.folds.iterrows():          # find the refit that gave this fold's weights, exactly
        (delta, job, grid, kw), = [(d, job, g, kw) for d, jobs, g, kw, out in refits for job, got in zip(jobs, out)
                                   for k in range(len(g.steps)) if np.array_equal(got[k, 0].numpy(), res.weights[n])
                                   and g.steps[k] == row["steps"]]
        assert (grid.lambdas, grid.lrs, kw["margin"]) == ((row["lam"],), (row["lr"],), row["margin"])
        # the chosen column of the whole grid equals the setting alone: compared in float64 (tolerance.py)
        delta64 = delta.double()
        kw64 = dict(kw, factors=None if kw.get("factors") is None else (kw["factors"][0].double(), kw["factors"][1]))
        whole = real(delta64, [job], full, **kw64)[0]
        alone = real(delta64, [job], grid, **kw64)[0]
        column = full.columns().index((row["lam"], row["lr"]))
        assert_same_fit(whole[full.steps.index(int(row["steps"])), column], alone[grid.steps.index(int(row["steps"])), 0],
                        f"fold {n}")
        checked += 1
    assert checked == len(res.folds)


def test_families_by_name_take_a_chapters_parameters_and_check_them():
    assert families.family("clpips") is protocol.LINEAR
    assert isinstance(families.family("global"), families.GlobalCLPIPS)
    made = families.family("teacher", {"transform_lambdas": "0.1,0", "transform_steps": "50,20,20", "teacher_sets": 3,
                                       "unrelated": 1})
    assert made.sets == 3 and made.transform.lambdas == (0.1, 0.0) and made.transform.steps == (20, 50)
    # the run's settings (and so its cache key) hold the options as crossval's keywords gave them
    from clpips.book.defaults import DEFAULTS
    assert made.options() == {"lambdas": [0.1, 0.0], "transform_lrs": [float(x) for x in DEFAULTS.transform_lrs.split(",")],
                              "steps": [20, 50], "rank": DEFAULTS.transform_rank,
                              "transform_margins": [float(x) for x in DEFAULTS.transform_margins.split(",")],
                              "teacher_weight": DEFAULTS.teacher_weight, "teacher_sets": 3}
    # the CLPIPS run the student follows: the run's own repeats, or a chapter's protocol_repeats (recorded)
    assert made.clpips_repeats is None
    assert families.family("teacher", {"protocol_repeats": 2}).options()["follows_clpips_repeats"] == 2
    # one number, as papermill's -p gives it
    assert families.Transform(margins=0.05, lambdas=0, steps=50).options()["transform_margins"] == [0.05]
    record = protocol.run_settings(type("D", (), {"name": "x"})(), protocol.Settings(), made)
    assert record["metric"] == "teacher" and "metric" not in protocol.run_settings(None, protocol.Settings(),
                                                                                    protocol.LINEAR)
    for bad, named in ((dict(steps="25,2.5"), "transform_steps"), (dict(rank=0), "transform_rank"),
                       (dict(lambdas="0,-1"), "transform_lambdas"), (dict(lrs="0"), "transform_lrs: expected positive")):
        with pytest.raises(ValueError, match=named):
            families.Transform(**bad)
    for bad, named in ((dict(weight=0.0), "teacher_weight"), (dict(sets=1.5), "teacher_sets"),
                       (dict(clpips_repeats=0), "protocol_repeats")):
        with pytest.raises(ValueError, match=named):
            families.Taught(**bad)


def test_the_old_keyword_form_names_the_family_to_pass(mur92_mirror, monkeypatch):
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    from clpips import datasets
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="clpips.book.families.family"):
        protocol.crossval(datasets.load("mur92"), metric="transform", folds=3)


def test_a_family_configured_otherwise_reads_no_other_cached_run():
    """Every family and configuration has its own cache key: global CLPIPS tuned by its own inner folds is not
    the run it made when it followed CLPIPS's choice (options {}), nor is a transform with another grid, nor a
    student following another CLPIPS run."""
    from clpips.experiment import cache_key
    data = type("D", (), {"name": "x", "table": pd.DataFrame(columns=["set_id", "target", "candidate", "rater", "rank"])})()

    class Following:   # global CLPIPS as it was: no options of its own
        name = "global"

        def options(self):
            return {}
    made = [protocol.LINEAR, Following(), families.GlobalCLPIPS(), families.Transform(),
            families.Transform(margins="0.05"), families.Transform(lrs="0.03"), families.Taught(),
            families.Taught(clpips_repeats=1), families.Taught(families.Transform(lambdas="0.1"))]
    keys = [cache_key(data, protocol.run_settings(data, protocol.Settings(), f)) for f in made]
    assert len(set(keys)) == len(keys)


def test_budgets_count_each_family_s_settings():
    settings = protocol.Settings()
    metrics = {name: families.family(name) for name in protocol.METRICS}
    table = families.budget(metrics, settings, {name: 1 for name in metrics})
    offered = len(settings.grid.margins) * len(settings.grid.lrs) * len(settings.grid.epochs) + 1   # + do not train
    t = metrics["transform"]
    assert table.loc["clpips", "settings"] == table.loc["global", "settings"] == offered
    assert table.loc["transform", "settings"] == len(t.margins) * len(t.lambdas) * len(t.lrs) * len(t.steps)
    assert table.loc["teacher", "settings"] == 0 and (table["repeats"] == 1).all()
    # about the same budget (the fair race): within a fifth of CLPIPS's
    assert abs(table.loc["transform", "settings"] - offered) <= offered / 5


def test_a_run_cut_to_its_first_repeats_has_the_folds_of_a_run_of_that_many(mur92_mirror, monkeypatch, tmp_path):
    """Repeat r's split, inner folds and choices come from (seed, r) alone: CLPIPS's run of 2 repeats cut to
    its first is, fold for fold, the run of 1 repeat (so the race compares a 1-repeat family with it)."""
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    monkeypatch.setattr(protocol, "cache_folder", lambda key: tmp_path / "crossval" / key)
    from clpips import datasets
    data = datasets.load("mur92")
    two = protocol.crossval(data, BEYOND.replace(repeats=2, mode="image"))
    one = protocol.crossval(data, BEYOND.replace(repeats=1, mode="image"))
    cut = families.first_repeats(two, 1)
    keys = ["repeat", "fold", "n_train_targets", "n_test_targets", "n_test_rows", "margin", "lr", "epochs"]
    pd.testing.assert_frame_equal(cut.folds[keys], one.folds[keys])
    assert np.allclose(cut.folds["delta_icc_A_k"], one.folds["delta_icc_A_k"], atol=1e-6)
    assert cut.weights.shape == one.weights.shape and len(cut.oof) == len(one.oof)
    assert cut.versus(one)["n_folds"] == len(one.folds)
    with pytest.raises(ValueError, match="repeats must be"):
        families.first_repeats(two, 3)
