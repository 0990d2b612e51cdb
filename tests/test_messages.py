"""Every option checked at start, and one-line messages for bad input (issue 25, items 5 and 6).

Each test builds its bad input, runs the library or ``clpips`` in-process and checks the one
line that names the file or option (and, where something is written, that nothing half-written
is left). A message never advises loading a file with ``weights_only=False``.
"""
from __future__ import annotations

import argparse
import io
import json
import pickle
import re
import shutil
import unicodedata
import warnings
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from clpips import atomic
from clpips.apps.cli import build_parser
from clpips.conventions import MIN_SIZE
from clpips.datasets import RankingDataError, from_csv
from clpips.datasets import mur92
from helpers import run_cli


def error_line(err: str) -> str:
    """The one error line of a run: argparse prints its usage before it, nothing else may come."""
    assert "Traceback" not in err and "weights_only" not in err, err
    lines = [line for line in err.strip().splitlines() if not line.startswith(("usage:", " "))]
    assert len(lines) == 1 and " error: " in lines[0], err
    return lines[0]


def noise_png(path: Path, size: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def study(folder: Path, n_targets: int = 6, size: int = 40, k: int = 3, name: str = "im{}.png") -> Path:
    """``n_targets`` noise images, each the target of one set of the next ``k``, ranked by two raters."""
    rng = np.random.default_rng(1)
    refs = [f"images/{name.format(i)}" for i in range(max(n_targets, k + 1))]
    for i, ref in enumerate(refs):
        noise_png(folder / ref, size, seed=i)
    rows = [dict(set_id=f"s{i}", target=refs[i], candidate=refs[(i + j) % len(refs)], rater=rater, rank=int(r))
            for i in range(n_targets) for rater in ("r1", "r2")
            for j, r in zip(range(1, k + 1), rng.permutation(k) + 1)]
    pd.DataFrame(rows).to_csv(folder / "rankings.csv", index=False)
    return folder / "rankings.csv"


def options_of(command: str) -> set[str]:
    """The long options ``clpips COMMAND`` has."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {opt for action in sub.choices[command]._actions for opt in action.option_strings}


# ------------------------------------------------------------------ 5. every option checked at start
CHECKED = [
    ("fit", "--margin", "0", "must be > 0"),
    ("fit", "--patience", "0", "must be >= 1"),
    ("fit", "--seed", "-1", "must be >= 0"),
    ("fit", "--seed", "99999999999999999999", "must be <= 4294967295"),
    ("fit", "--layers", "7", "must be within 0..4"),
    ("fit", "--layers", "0,x", "must be 'all' or comma-separated integers"),
    ("fit", "--k", "1", "must be >= 2"),
    ("crossval", "--folds", "1", "must be >= 2"),
    ("crossval", "--inner-folds", "1", "must be >= 2"),
    ("crossval", "--margins", "0.01,0", "'0': must be > 0"),
    ("crossval", "--epochs-grid", "5,7.5", "'7.5' is not a whole number"),
    ("crossval", "--transform-steps", "25,abc", "'abc' is not a whole number"),
    ("crossval", "--transform-lambdas", "0,-1", "'-1': must be >= 0"),
    ("crossval", "--transform-margins", "nan", "must be a finite number"),
    ("crossval", "--seed", "4294967296", "must be <= 4294967295"),
    ("evaluate", "--baselines", "ssim,foo", "'foo': choose among l2, psnr, ssim"),
    ("evaluate", "--seed", "-3", "must be >= 0"),
]


@pytest.mark.parametrize("command, option, value, said", CHECKED)
def test_option_out_of_range_refused_at_start(tmp_path, capsys, command, option, value, said):
    out = tmp_path / "out"
    args = [command, "--dataset", str(tmp_path / "absent.csv"), option, value]
    code, _, err = run_cli(args + (["--out", str(out)] if command != "evaluate" else []), capsys)
    line = error_line(err)
    assert code == 2 and f"argument {option}: " in line and said in line, line
    assert not out.exists()  # refused before anything was made


@pytest.mark.parametrize("command", ["score", "fit", "crossval", "evaluate"])
def test_cuda_refused_at_start_without_a_gpu(tmp_path, capsys, monkeypatch, command):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    args = {"score": ["score", "t.png", "c.png"], "fit": ["fit", "--out", str(tmp_path / "o")],
            "crossval": ["crossval", "--out", str(tmp_path / "o")], "evaluate": ["evaluate"]}[command]
    code, _, err = run_cli(args + ["--device", "cuda"], capsys)
    assert code == 2 and "argument --device: 'cuda': no CUDA GPU is available here" in error_line(err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["score", "fit", "crossval", "evaluate"])
def test_every_option_is_checked_while_parsing(command):
    """Each option has a type, choices, or is a flag, except the paths named here (checked by their commands
    before any work: --out and --json are written to at once, --dataset and --weights are read first)."""
    paths = {"--dataset", "--out", "--weights", "--json", "-h", "--help"}
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    unchecked = [a.option_strings[-1] for a in sub.choices[command]._actions
                 if a.option_strings and a.type is None and a.choices is None and a.nargs != 0
                 and not set(a.option_strings) & paths]
    assert unchecked == []


def test_out_of_range_value_is_named_as_written(capsys, tmp_path):
    code, _, err = run_cli(["evaluate", "--seed", "123456789012345678901234567890"], capsys)
    assert code == 2 and "'123456789012345678901234567890': must be <= 4294967295" in error_line(err)


def test_json_that_cannot_be_written_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(["evaluate", "--dataset", str(tmp_path / "absent.csv"),
                            "--json", str(tmp_path / "file" / "table.json")], capsys)
    line = error_line(err)
    assert code == 2 and f"--json {tmp_path / 'file' / 'table.json'}: its folder" in line and "not a folder" in line


# ------------------------------------------------------------------ 6. weights files
def torch_file(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


WEIGHTS = {
    "empty": (lambda: b"", "is empty (0 bytes)"),
    "random bytes": (lambda: np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
                     "not a readable torch weights file (4,096 bytes"),
    "a pickle": (lambda: pickle.dumps({"lin0.model.1.weight": [1.0, 2.0]}, protocol=4),
                 "holds Python objects other than tensors"),
    "a pickle of a class": (lambda: pickle.dumps(PurePosixPath("x"), protocol=2),
                            "holds Python objects other than tensors (pathlib.PurePosixPath)"),
    "numpy in a torch file": (lambda: torch_file({"lin0.model.1.weight": np.ones(3)}),
                              "holds Python objects other than tensors (numpy"),
    "a truncated torch file": (lambda: torch_file({"w": torch.ones(1000)})[:600], "a damaged torch weights file"),
}


@pytest.mark.parametrize("case", list(WEIGHTS))
def test_bad_weights_file_one_line(tmp_path, capsys, case, private_cache):
    make, said = WEIGHTS[case]
    (tmp_path / "w.pth").write_bytes(make())
    target, cand = noise_png(tmp_path / "t.png", 40), noise_png(tmp_path / "c.png", 40, seed=1)
    code, out, err = run_cli(["score", str(target), str(cand), "--weights", str(tmp_path / "w.pth")], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1, err  # no warning from torch either: one line in all
    line = error_line(err)
    assert f"cannot load weights: {tmp_path / 'w.pth'}: {said}" in line, line


def test_weights_folder_and_bad_sidecar_are_named(tmp_path, capsys, private_cache):
    import clpips
    (tmp_path / "dir.pth").mkdir()
    code, _, err = run_cli(["evaluate", "--weights", str(tmp_path / "dir.pth")], capsys)
    assert code == 2 and f"{tmp_path / 'dir.pth'}: is a folder, not a weights file" in error_line(err)
    path = clpips.CLPIPS().save_weights(tmp_path / "w.pth")
    for text, said in (("{", "is not JSON"), ("[1, 2]", "is not a JSON object (a list)")):
        (tmp_path / "w.json").write_text(text)
        code, _, err = run_cli(["evaluate", "--weights", str(path)], capsys)
        line = error_line(err)
        assert code == 2 and f"{tmp_path / 'w.json'}: the provenance beside w.pth {said}" in line, line


def test_weights_and_sidecar_are_written_together_or_not_at_all(tmp_path, monkeypatch, private_cache):
    import clpips
    model = clpips.CLPIPS()

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "json_text", full)
    with pytest.raises(OSError, match="No space left"):
        model.save_weights(tmp_path / "w.pth")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no weights file without its sidecar, no temp


# ------------------------------------------------------------------ 6. study CSVs
@pytest.mark.parametrize("rank, ties", [("99999999999999999999", "reject"), ("-99999999999999999999", "reject"),
                                        ("99999999999999999999", "average"), ("1e300", "average")])
def test_huge_rank_reported_as_written(tmp_path, rank, ties):
    csv = study(tmp_path)
    table = pd.read_csv(csv, dtype=str)
    table.loc[3, "rank"] = rank
    table.to_csv(csv, index=False)
    with pytest.raises(RankingDataError) as caught:
        from_csv(csv, ties=ties)
    message = str(caught.value)
    assert "\n" not in message and f"{csv}, line 5: " in message
    assert f"rank {rank} is outside 1..3" in message, message


def test_huge_iteration_refused_as_written(tmp_path):
    csv = study(tmp_path)
    table = pd.read_csv(csv, dtype=str).assign(iteration="1")
    table.loc[2, "iteration"] = "99999999999999999999"
    table.to_csv(csv, index=False)
    with pytest.raises(RankingDataError, match=r"line 4: iteration 99999999999999999999 is out of range"):
        from_csv(csv)


@pytest.mark.parametrize("command", ["fit", "crossval", "evaluate"])
def test_header_only_csv_named(tmp_path, capsys, command):
    csv = tmp_path / "header.csv"
    csv.write_text("set_id,target,candidate,rater,rank\n")
    out = ["--out", str(tmp_path / "o")] if command != "evaluate" else []
    code, _, err = run_cli([command, "--dataset", str(csv), *out, "--quiet"], capsys)
    line = error_line(err)
    assert code == 2 and f"{csv}, line 1: the header is followed by no rankings" in line, line


def test_crossval_folds_beyond_the_targets_named(tmp_path, capsys):
    csv = study(tmp_path, n_targets=4)
    code, _, err = run_cli(["crossval", "--dataset", str(csv), "--out", str(tmp_path / "o"), "--folds", "5"], capsys)
    assert code == 2 and f"{csv}: 4 target image(s), fewer than --folds 5" in error_line(err)
    code, _, err = run_cli(["crossval", "--dataset", str(csv), "--out", str(tmp_path / "o"), "--folds", "2",
                            "--inner-folds", "3"], capsys)
    line = error_line(err)
    assert code == 2 and "has 2 target(s), fewer than --inner-folds 3" in line, line


def test_evaluate_on_one_target_is_one_line(tmp_path, capsys, private_cache):
    csv = study(tmp_path, n_targets=1)
    code, _, err = run_cli(["evaluate", "--dataset", str(csv), "--quiet"], capsys)
    line = error_line(err)
    assert code == 2 and f"{csv}: need at least two target images to split, got 1" in line, line


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_small_target_advice_names_options_the_command_has(tmp_path, capsys, net):
    small = MIN_SIZE[net] - 1
    csv = study(tmp_path, size=small)
    code, _, err = run_cli(["fit", "--dataset", str(csv), "--out", str(tmp_path / "o"), "--net", net], capsys)
    line = error_line(err)
    assert code == 2 and f"{csv}: target image {tmp_path / 'images' / 'im0.png'}: {small} x {small} pixels" in line
    assert f"is smaller than the {MIN_SIZE[net]} x {MIN_SIZE[net]} that --net {net} takes" in line, line
    advised = set(re.findall(r"--[a-z][a-z-]*", line))
    assert advised and advised <= options_of("fit"), advised
    assert ("or --net vgg (at least 16 x 16)" in line) == (net == "alex")  # vgg takes 30 px; nothing takes 15


# ------------------------------------------------------------------ 6. Unicode paths (NFC and NFD)
NFC, NFD = (unicodedata.normalize(form, "café") for form in ("NFC", "NFD"))


def test_csv_and_its_images_found_in_either_unicode_form(tmp_path):
    assert NFC != NFD
    folder = tmp_path / NFC                                 # saved in composed form
    csv = study(folder, name=unicodedata.normalize("NFC", "é{}.png"))
    table = pd.read_csv(csv, dtype=str)
    for col in ("target", "candidate"):                     # the CSV names them decomposed
        table[col] = table[col].map(lambda ref: unicodedata.normalize("NFD", ref))
    table.to_csv(csv, index=False)
    typed = tmp_path / NFD / "rankings.csv"                 # and so does the user
    assert not typed.exists()
    data = from_csv(typed)
    assert len(data.table) == len(table)
    on_disk = {p.relative_to(folder).as_posix() for p in (folder / "images").iterdir()}
    assert set(data.images()) == on_disk                    # references name the files as they are on disk
    assert all(data.image_path(ref).is_file() for ref in data.images())


def test_image_and_weights_paths_found_in_either_unicode_form(tmp_path, capsys, private_cache):
    import clpips
    folder = tmp_path / NFC
    noise_png(folder / "t.png", 40)
    noise_png(folder / "c.png", 40, seed=1)
    clpips.CLPIPS(linear="uniform").save_weights(folder / "w.pth")
    typed = tmp_path / NFD
    code, out, err = run_cli(["score", str(typed / "t.png"), str(typed / "c.png"), "--weights", str(typed / "w.pth")],
                             capsys)
    assert code == 0 and err == ""
    assert out.startswith(f"{typed / 'c.png'}\t") and float(out.split("\t")[1]) > 0


def test_missing_in_every_unicode_form_still_one_line(tmp_path):
    csv = study(tmp_path)
    table = pd.read_csv(csv, dtype=str)
    table.loc[table.candidate == "images/im1.png", "candidate"] = unicodedata.normalize("NFD", "images/é.png")
    table.to_csv(csv, index=False)
    with pytest.raises(RankingDataError, match=r"image 'images/e\u0301.png' not found"):
        from_csv(csv)


# ------------------------------------------------------------------ 6. a corrupted cached mur92 image
def pixels(n: int = 3) -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (n, 12, 10, 3), dtype=np.uint8)


@pytest.mark.parametrize("damage", ["a flipped byte", "truncated", "other pixels, no recorded sum"])
def test_corrupted_cached_mur92_png_rebuilt_and_named(tmp_path, damage):
    images = pixels()
    mur92.export_images(images, tmp_path)
    path = tmp_path / mur92.image_ref(1)
    good = path.read_bytes()
    assert atomic.checksum_path(path).is_file()
    if damage == "a flipped byte":
        path.write_bytes(good[:60] + bytes([good[60] ^ 1]) + good[61:])
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    else:
        Image.fromarray(255 - images[1]).save(path)
        atomic.checksum_path(path).unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mur92.export_images(images, tmp_path)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and messages[0].startswith(f"{path}: ") and "\n" not in messages[0], messages
    assert "exporting it again" in messages[0]
    assert path.read_bytes() == good
    np.testing.assert_array_equal(np.asarray(Image.open(path)), images[1])


def test_undecodable_cached_mur92_png_without_a_sum_is_named_and_rebuilt(tmp_path):
    """An export from before the recorded sums (no .sha256) that no longer decodes: named as unreadable."""
    images = pixels()
    mur92.export_images(images, tmp_path)
    path = tmp_path / mur92.image_ref(0)
    good = path.read_bytes()
    path.write_bytes(b"not a png at all")
    atomic.checksum_path(path).unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mur92.export_images(images, tmp_path)
    assert [str(w.message) for w in caught] == [
        f"{path}: unreadable (UnidentifiedImageError); exporting it again from {mur92.STIMULI_FILE}"]
    assert path.read_bytes() == good and atomic.checksum_path(path).is_file()


def test_intact_cached_mur92_pngs_left_alone(tmp_path):
    images = pixels()
    mur92.export_images(images, tmp_path)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()}
    atomic.checksum_path(tmp_path / mur92.image_ref(2)).unlink()    # as an older clpips left it: sum recorded now
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mur92.export_images(images, tmp_path)
    assert (tmp_path / mur92.image_ref(2)).stat().st_mtime_ns == stamps["002.png"]
    assert atomic.checksum_path(tmp_path / mur92.image_ref(2)).is_file()
    assert all((tmp_path / "images" / name).stat().st_mtime_ns == stamp for name, stamp in stamps.items()
               if name != "002.png.sha256")


def test_corrupted_mur92_png_rebuilt_through_the_cli_warning(private_cache, mur92_mirror, monkeypatch, capsys, tmp_path):
    """End to end: loading mur92 for a command names the rebuilt file in one warning (the CLI prints each
    warning as one line)."""
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    mur92.load()
    path = private_cache / "data" / "mur92" / mur92.image_ref(12)
    good = path.read_bytes()
    path.write_bytes(good[:-20])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = run_cli(["crossval", "--dataset", "mur92", "--out", str(tmp_path / "o"), "--folds", "93"],
                               capsys)
    assert code == 2 and "mur92: 92 target image(s), fewer than --folds 93; give --folds between 2 and 92" \
        in error_line(err)
    assert [str(w.message).split(";")[0] for w in caught] == \
        [f"{path}: its bytes no longer match the sha256 recorded in 012.png.sha256"]
    assert path.read_bytes() == good


# ------------------------------------------------------------------ 6. a late write failure
def test_fit_whose_out_goes_away_names_the_path_and_the_cached_fit(tmp_path, capsys, monkeypatch, private_cache):
    import clpips.experiment as experiment
    csv = study(tmp_path / "study")
    out = tmp_path / "run"
    real_run = experiment.run

    def run_then_lose_out(*args, **kwargs):
        result = real_run(*args, **kwargs)
        shutil.rmtree(out)
        out.write_text("a file where the folder was")       # --out is no folder any more
        return result

    monkeypatch.setattr(experiment, "run", run_then_lose_out)
    args = ["fit", "--dataset", str(csv), "--epochs", "2", "--n-boot", "20", "--quiet"]
    code, _, err = run_cli(args + ["--out", str(out)], capsys)
    line = error_line(err)
    assert code == 1 and f"cannot write {out / 'weights.pth'}" in line, line
    cached = re.search(r"the fit is cached \((.+?)\)", line)
    assert cached and Path(cached.group(1)).is_file() and Path(cached.group(1)).parent == private_cache / "fits", line
    assert out.read_text() == "a file where the folder was"
    monkeypatch.setattr(experiment, "run", real_run)
    monkeypatch.setattr(experiment, "fit", lambda *a, **k: pytest.fail("fitted again"))
    code, printed, err = run_cli(args + ["--out", str(tmp_path / "again")], capsys)
    assert code == 0 and err == "" and json.loads((tmp_path / "again" / "weights.json").read_text())["seed"] == 0


def test_crossval_whose_out_goes_away_names_the_path_and_the_cached_run(tmp_path, capsys, monkeypatch, private_cache):
    import clpips.protocol as protocol
    csv = study(tmp_path / "study", n_targets=4)
    out = tmp_path / "cv"
    real = protocol.crossval

    def crossval_then_lose_out(*args, **kwargs):
        result = real(*args, **kwargs)
        shutil.rmtree(out)
        out.write_text("a file where the folder was")
        return result

    monkeypatch.setattr(protocol, "crossval", crossval_then_lose_out)
    code, _, err = run_cli(["crossval", "--dataset", str(csv), "--out", str(out), "--folds", "2", "--inner-folds",
                            "2", "--repeats", "1", "--margins", "0.05", "--lrs", "0.01", "--epochs-grid", "2",
                            "--n-boot", "20", "--workers", "1", "--quiet"], capsys)
    line = error_line(err)
    assert code == 1 and f"cannot write {out}" in line, line
    cached = re.search(r"the cross-validation is cached \((.+?)\)", line)
    assert cached and Path(cached.group(1)).is_dir() and Path(cached.group(1)).is_relative_to(private_cache), line


def test_evaluate_json_whose_folder_goes_away_is_one_line(tmp_path, capsys, monkeypatch, private_cache):
    import clpips.evaluate
    csv = study(tmp_path / "study")
    folder = tmp_path / "tables"
    real = clpips.evaluate.alignment_table

    def table_then_lose_folder(*args, **kwargs):
        shutil.rmtree(folder)
        folder.write_text("a file where the folder was")
        return real(*args, **kwargs)

    monkeypatch.setattr(clpips.evaluate, "alignment_table", table_then_lose_folder)
    code, out, err = run_cli(["evaluate", "--dataset", str(csv), "--split", "all", "--n-boot", "20", "--quiet",
                              "--json", str(folder / "t.json")], capsys)
    line = error_line(err)
    assert code == 1 and line.startswith(f"clpips evaluate: error: cannot write {folder / 't.json'} ("), line
    assert folder.read_text() == "a file where the folder was"


@pytest.mark.parametrize("content", [b"", b"\x80\x04K\x01.", b"junk bytes, not a zip"])
def test_classroom_weights_read_through_the_one_safe_reader(tmp_path, content):
    """classroom --weights reads only the linear layers (widget.read_weight_vector): a bad file is one line
    naming it, with no advice to load arbitrary pickles (an empty file was an EOFError traceback)."""
    from clpips.apps.widget import read_weight_vector
    path = tmp_path / "w.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        read_weight_vector(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "weights_only" not in message
