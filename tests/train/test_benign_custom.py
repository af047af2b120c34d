"""Benign files that reference user code: real libraries load them back; rules call them FS103."""

from __future__ import annotations

import io
import pickle
import random
import sys
import warnings
from typing import Any

import pytest

from fastscan.scan import Scanner
from fastscan.train import benign, benign_custom
from fastscan.verdict import SUSPICIOUS

needs_torch = pytest.mark.skipif(not benign.torch_available(), reason="torch not installed")
SEEDS = range(3)


def _load(source: str, data: bytes, ext: str) -> Any:
    """Load one of OUR OWN benign files with the library that wrote it."""
    if source in benign_custom.CUSTOM_TORCH_SOURCES and ext != ".pkl":
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(data), weights_only=False)
    if ext == ".joblib":
        import joblib

        return joblib.load(io.BytesIO(data))
    return pickle.loads(data)


@pytest.mark.parametrize("source", sorted(benign_custom.CUSTOM_SOURCES))
def test_custom_files_load_back_with_the_real_library(source: str) -> None:
    if source in benign_custom.CUSTOM_TORCH_SOURCES and not benign.torch_available():
        pytest.skip("torch not installed")
    for seed in SEEDS:
        data, ext = benign.SOURCES[source](random.Random(seed), "small")
        assert data == benign.SOURCES[source](random.Random(seed), "small")[0]  # deterministic
        # the same seed recreates the same user package (names are drawn first)
        with benign_custom.user_package(random.Random(seed)) as mods:
            obj = _load(source, data, ext)
            user_modules = {m.__name__ for m in mods.values()}
            if source == "custom_torch_model":
                assert type(obj).__module__ in user_modules
                assert sum(p.numel() for p in obj.parameters()) > 0
            elif source == "custom_sklearn":
                steps = [type(s).__module__ for _n, s in obj.steps]
                assert set(steps) & user_modules
                n_features = next(s.low_.shape[0] for _n, s in obj.steps if hasattr(s, "low_"))
                assert obj.predict([[0.0] * n_features]).shape == (1,)
            elif source == "custom_checkpoint":
                assert type(obj["scheduler"]).__module__ in user_modules
            elif source == "custom_reducers":
                cache = obj.get("cache", obj) if isinstance(obj, dict) else obj
                parts = list(cache.values()) if type(cache) is dict else [cache]
                assert {type(p).__module__ for p in parts} <= user_modules, parts
                assert any(type(p).__name__ in ("Table", "Vocab") or isinstance(p, dict)
                           for p in parts)  # fmt: skip
            else:
                config = obj["config"] if isinstance(obj, dict) else obj
                assert type(config).__module__ in user_modules
        assert not any(m.startswith(tuple(user_modules)) for m in sys.modules)  # unloaded


@pytest.mark.parametrize("source", sorted(benign_custom.CUSTOM_SOURCES))
def test_custom_files_are_unknown_not_dangerous_to_rules(source: str) -> None:
    if source in benign_custom.CUSTOM_TORCH_SOURCES and not benign.torch_available():
        pytest.skip("torch not installed")
    scanner = Scanner(model=None)
    for seed in SEEDS:
        data, ext = benign.SOURCES[source](random.Random(seed), "small")
        result = scanner.scan_bytes(data, f"file{ext}")
        rule_ids = {f.rule_id for f in result.findings}
        assert result.status == "complete"
        assert not rule_ids & {"FS101", "FS102"}, rule_ids
        assert "FS103" in rule_ids and result.verdict == SUSPICIOUS


def test_user_package_names_vary_with_the_seed() -> None:
    names = set()
    for seed in range(8):
        with benign_custom.user_package(random.Random(seed)) as mods:
            names.add(mods["torch"].__name__)
    assert len(names) >= 4


@needs_torch
def test_custom_sources_are_a_reasonable_share_of_benign() -> None:
    from fastscan.train import corpus

    plan = corpus.PLANS["medium"]
    custom = len(benign_custom.CUSTOM_SOURCES) * plan.benign_per_source
    pickles = len(benign.SOURCES) * plan.benign_per_source + plan.benign_wrapped
    assert 0.10 <= custom / pickles <= 0.15
