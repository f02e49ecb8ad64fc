"""Decoded-in-memory datasets (data/cache.py): same pixels as decoding, keyed and atomic disk caches."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnets.data.build import build_dataset
from resnets.data.cache import (
    CacheConfig,
    CachedDataset,
    cache_dataset,
    dataset_key,
    decide_cache,
    read_cache_file,
)
from resnets.data.loader import build_loader
from resnets.data.samplers import ShuffleSampler
from resnets.errors import ResnetsError


def _folder(root, sizes=((12, 14), (9, 16), (12, 14)), bad=True):
    for label in ("a", "b"):
        folder = root / "train" / label
        folder.mkdir(parents=True, exist_ok=True)
        for i, (h, w) in enumerate(sizes):
            pixels = np.random.default_rng(i + 7 * len(label)).integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    if bad:
        (root / "train" / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


@pytest.fixture()
def cache_home(tmp_path, monkeypatch):
    home = tmp_path / "cache-home"
    monkeypatch.setenv("RESNETS_CACHE_DIR", str(home))
    return home


@pytest.mark.parametrize("mode", ["ram", "disk"])
def test_cached_pixels_labels_and_skips_match_decoding(tmp_path, cache_home, mode):
    base = build_dataset(str(_folder(tmp_path / "data")), "train", None)
    lines: list[str] = []
    cached, decision = cache_dataset(base, CacheConfig(mode), say=lines.append)
    assert isinstance(cached, CachedDataset) and decision.mode == mode
    assert "1 unreadable image(s) skipped" in lines[-1]
    for i in range(len(base)):
        if base.sample_name(i).endswith("broken.png"):
            assert cached.load_sample(i).name.endswith("broken.png")  # skipped, named, as on the fly
            continue
        assert torch.equal(cached.load_image(i), base.load_image(i))
    assert cached.targets == base.targets and cached.classes == base.classes
    if mode == "disk":
        assert decision.path.startswith(str(tmp_path / "data" / ".resnets-cache"))  # beside the data


def test_strict_stops_at_the_first_unreadable_image(tmp_path, cache_home):
    base = build_dataset(str(_folder(tmp_path / "data")), "train", None, strict=True)
    for mode in ("ram", "disk"):
        with pytest.raises(ResnetsError, match="broken.png"):
            cache_dataset(base, CacheConfig(mode))


def test_disk_cache_is_reused_rebuilt_on_change_and_on_truncation(tmp_path, cache_home):
    root = _folder(tmp_path / "data", bad=False)
    base = build_dataset(str(root), "train", None)
    _, first = cache_dataset(base, CacheConfig("disk"))
    stamp = os.stat(first.path).st_mtime_ns
    lines: list[str] = []
    _, again = cache_dataset(base, CacheConfig("disk"), say=lines.append)
    assert again.path == first.path and os.stat(first.path).st_mtime_ns == stamp  # mapped, not rebuilt
    # a replaced image (other size) changes the key: a new file, the stale one removed
    Image.fromarray(np.zeros((5, 6, 3), dtype=np.uint8)).save(root / "train" / "b" / "1.png")
    changed = build_dataset(str(root), "train", None)
    cached, third = cache_dataset(changed, CacheConfig("disk"))
    assert third.path != first.path and not os.path.exists(first.path)
    index = changed.paths.index(str(root / "train" / "b" / "1.png"))
    assert cached.load_image(index).shape == (3, 5, 6) and int(cached.load_image(index).max()) == 0
    # a truncated file (a crash of a writer that did not rename atomically, a full disk) is rebuilt
    with open(third.path, "r+b") as handle:
        handle.truncate(os.path.getsize(third.path) // 2)
    assert read_cache_file(Path(third.path), dataset_key(changed)) is None
    lines.clear()
    rebuilt, _ = cache_dataset(changed, CacheConfig("disk"), say=lines.append)
    assert any("stale or incomplete: rebuilding" in line for line in lines)
    assert torch.equal(rebuilt.load_image(0), changed.load_image(0))


def test_read_only_data_goes_to_the_cache_folder(tmp_path, cache_home):
    root = _folder(tmp_path / "data", bad=False)
    os.chmod(root, 0o555)
    try:
        base = build_dataset(str(root), "train", None)
        cached, decision = cache_dataset(base, CacheConfig("disk"))
        assert decision.path.startswith(str(cache_home)) and not (root / ".resnets-cache").exists()
        assert torch.equal(cached.load_image(1), base.load_image(1))
    finally:
        os.chmod(root, 0o755)


def test_auto_chooses_by_size_and_process_count(tmp_path, cache_home):
    base = build_dataset(str(_folder(tmp_path / "data", bad=False)), "train", None)
    assert decide_cache(base, CacheConfig("auto")).mode == "ram"
    assert decide_cache(base, CacheConfig("auto"), world_size=2).mode == "disk"
    lines: list[str] = []
    same, decision = cache_dataset(base, CacheConfig("auto", budget_gb=1e-9), say=lines.append)
    assert same is base and decision.mode == "off" and "does not fit" in lines[0]
    assert decide_cache(base, CacheConfig("off")).mode == "off"
    with pytest.raises(ResnetsError, match="unknown --cache"):
        CacheConfig("fast")
    with pytest.raises(ResnetsError, match="positive number"):
        CacheConfig("ram", budget_gb=0)


def test_workers_read_the_shared_ram_cache(tmp_path, cache_home):
    from resnets.data.transforms import build_eval_transform

    base = build_dataset(str(_folder(tmp_path / "data", bad=False)), "train", build_eval_transform(8, 1.0))
    cached, _ = cache_dataset(base, CacheConfig("ram"))
    assert cached.decoded.images.is_shared()
    loader = build_loader(cached, batch_size=3, sampler=ShuffleSampler(len(cached), seed=0), num_workers=2)
    reference = build_loader(base, batch_size=3, sampler=ShuffleSampler(len(base), seed=0), num_workers=0)
    for got, expected in zip(loader, reference, strict=True):
        assert torch.equal(got.images, expected.images) and torch.equal(got.targets, expected.targets)


def test_a_canvas_larger_than_the_estimate_falls_back(tmp_path, cache_home):
    """One large image makes the padded canvas grow past the budget: the run decodes per epoch and says so."""
    root = _folder(tmp_path / "data", sizes=[(8, 8)] * 40, bad=False)
    Image.fromarray(np.zeros((300, 300, 3), dtype=np.uint8)).save(root / "train" / "a" / "0a.png")  # index 1: not among the sampled
    base = build_dataset(str(root), "train", None)
    lines: list[str] = []
    same, decision = cache_dataset(base, CacheConfig("ram", budget_gb=2e-4), say=lines.append)
    assert same is base and decision.mode == "off" and "padded to the largest (300x300)" in lines[-1]
