"""The device input pipeline: DeviceBatches from the cache or from workers, decode selection, the CLI flags,
and (skipped without CUDA) the same functions on a GPU: batched ops, GPU JPEG decoding, erasing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from resnets.cli import main
from resnets.data.batch_augment import BatchAugment
from resnets.data.build import build_dataset
from resnets.data.cache import CacheConfig, cache_dataset
from resnets.data.decode import resolve_decode, torchvision_gpu_decoder
from resnets.data.device_loader import DeviceBatches
from resnets.data.loader import BatchPreprocessor
from resnets.data.samplers import ShuffleSampler
from resnets.data.transforms import TrainAugConfig
from resnets.errors import ResnetsError

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
AUG = TrainAugConfig(img_size=16, interpolation="random", auto_augment="rand-m9-mstd0.5-inc1")


def _folder(root, jpeg: bool = False, bad: bool = True):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(6):
                pixels = rng.integers(0, 256, (20 + i, 24 - i, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.{'jpg' if jpeg else 'png'}")
    if bad:
        (root / "train" / "a" / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff broken")
    return root


def _epoch(batches: DeviceBatches) -> tuple[list[torch.Tensor], list[str]]:
    images, skipped = [], []
    for batch in batches:
        images.append(batch.images)
        skipped += batch.skipped
    return images, skipped


def test_cache_and_workers_give_the_same_batches_and_skips(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETS_CACHE_DIR", str(tmp_path / "cache"))
    base = build_dataset(str(_folder(tmp_path / "data")), "train", None)
    cached, _ = cache_dataset(base, CacheConfig("ram"))
    runs = []
    for dataset, workers in ((cached, 0), (base, 0), (base, 2)):
        sampler = ShuffleSampler(len(dataset), seed=3, drop_last=True)
        runs.append(_epoch(DeviceBatches(dataset, sampler, 4, BatchAugment(AUG), device=torch.device("cpu"),
                                         workers=workers)))
    for images, skipped in runs[1:]:
        assert [s.rsplit("/", 1)[-1] for s in skipped] == ["zz_broken.jpg"] == [
            s.rsplit("/", 1)[-1] for s in runs[0][1]]
        assert all(torch.equal(a, b) for a, b in zip(images, runs[0][0], strict=True))


def test_mid_epoch_start_gives_the_same_remaining_batches(tmp_path):
    base = build_dataset(str(_folder(tmp_path / "data", bad=False)), "train", None)
    cached, _ = cache_dataset(base, CacheConfig("ram"))
    sampler = ShuffleSampler(len(cached), seed=1, drop_last=True)
    batches = DeviceBatches(cached, sampler, 4, BatchAugment(AUG), device=torch.device("cpu"))
    sampler.set_epoch(2)
    full, _ = _epoch(batches)
    sampler.set_epoch(2)
    sampler.set_start(4)
    rest, _ = _epoch(batches)
    assert len(rest) == len(full) - 1 and all(torch.equal(a, b) for a, b in zip(rest, full[1:], strict=True))


def test_decode_selection_says_one_line_and_continues_on_the_cpu():
    lines: list[str] = []
    cpu = torch.device("cpu")
    common = dict(has_files=True, cached=False, augment_on_device=True, say=lines.append)
    assert resolve_decode("gpu", cpu, **common) == "cpu"
    assert len(lines) == 1 and "needs a CUDA device" in lines[0]
    assert resolve_decode("dali", cpu, **common) == "cpu" and resolve_decode("auto", cpu, **common) == "cpu"
    cuda = torch.device("cuda")
    assert resolve_decode("auto", cuda, **common) == "gpu"
    assert resolve_decode("gpu", cuda, **{**common, "augment_on_device": False}) == "cpu"
    assert "--augment-on device" in lines[-1]
    assert resolve_decode("gpu", cuda, **{**common, "cached": True}) == "cpu"
    with pytest.raises(ResnetsError, match="unknown --decode"):
        resolve_decode("nvjpeg", cpu, **common)


@pytest.mark.parametrize("augment_on", ["device", "workers"])
def test_train_records_the_input_pipeline(tmp_path, capsys, augment_on):
    data = _folder(tmp_path / "data")
    out = tmp_path / "run"
    code = main(["train", "--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "4",
                 "--img-size", "32", "--workers", "0", "--augment-on", augment_on, "--decode", "gpu",
                 "--set", "model.width_multiplier=0.25", "--no-progress", "--no-tensorboard"])
    assert code == 0
    text = capsys.readouterr().out
    assert "--decode gpu needs a CUDA device" in text and "cache (train): ram" in text
    record = json.loads((out / "run.json").read_text())
    pipeline = record["input_pipeline"]
    assert pipeline["augment_on"] == augment_on and pipeline["decode"] == "cpu"
    assert pipeline["cache"]["train"]["mode"] == "ram" and record["options"]["augment_on"] == augment_on
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_images"] == 1


def test_bad_pipeline_flags_are_one_line(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "x"), "--cache-budget", "-1", "--no-progress"]) == 2
    assert "--cache-budget must be a positive" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- CUDA only
@needs_cuda
@pytest.mark.parametrize("policy", [None, "rand-m9-mstd0.5-inc1", "randtf-m15-n2", "ta_wide"])
def test_batch_augment_on_cuda_matches_the_cpu(policy):
    aug = BatchAugment(TrainAugConfig(img_size=24, interpolation="random", auto_augment=policy))
    canvas = torch.randint(0, 256, (16, 40, 36, 3), dtype=torch.uint8)
    sizes = torch.tensor([[40, 36]] * 16)
    seeds = list(range(100, 116))
    crop_cpu, crop_gpu = aug.crop(canvas, sizes, seeds), aug.crop(canvas.cuda(), sizes, seeds)
    assert crop_gpu.device.type == "cuda"  # the taps on CUDA, torch's kernel on the CPU: within rounding
    assert int((crop_gpu.cpu().int() - crop_cpu.int()).abs().max()) <= 2
    cpu = aug.apply_policy(crop_cpu, seeds)
    gpu = aug.apply_policy(crop_cpu.cuda(), seeds)  # the ops from the same pixels
    diff = (gpu.cpu().int() - cpu.int()).abs()
    # grid_sample rounds differently on the two devices at a few pixels; a later threshold op can turn
    # such a one-level difference into a large one at that pixel, so count pixels rather than take the max
    assert float((diff > 1).float().mean()) < 0.005 and float((diff > 0).float().mean()) < 0.02


@needs_cuda
def test_gpu_jpeg_decoding_matches_the_cpu_and_skips_bad_files(tmp_path):
    from resnets.data.preprocess import decode_bytes

    data = _folder(tmp_path / "data", jpeg=True)
    base = build_dataset(str(data), "train", None)
    decode = torchvision_gpu_decoder(torch.device("cuda"))
    encoded = [base.load_bytes(i) for i in range(len(base))]
    names = [base.sample_name(i) for i in range(len(base))]
    images = decode(encoded, names)
    for image, data_bytes, name in zip(images, encoded, names, strict=True):
        if name.endswith("zz_broken.jpg"):
            assert image is None
            continue
        reference = decode_bytes(data_bytes.numpy().tobytes(), name)
        assert image.device.type == "cuda" and image.shape == reference.shape
        assert float((image.cpu().float() - reference.float()).abs().mean()) < 1.5  # IDCTs differ slightly


@needs_cuda
def test_device_batches_decode_on_the_gpu(tmp_path):
    data = _folder(tmp_path / "data", jpeg=True)
    base = build_dataset(str(data), "train", None)
    sampler = ShuffleSampler(len(base), seed=0, drop_last=True)
    batches = DeviceBatches(base, sampler, 4, BatchAugment(AUG), device=torch.device("cuda"), workers=2,
                            pin_memory=True, decode=torchvision_gpu_decoder(torch.device("cuda")))
    images, skipped = _epoch(batches)
    assert all(x.device.type == "cuda" and x.dtype == torch.uint8 for x in images)
    assert [s.rsplit("/", 1)[-1] for s in skipped] == ["zz_broken.jpg"]


@needs_cuda
def test_random_erasing_on_cuda_erases_boxes():
    prep = BatchPreprocessor((0.5,) * 3, (0.25,) * 3, device="cuda", re_prob=1.0,
                             generator=torch.Generator().manual_seed(0))
    images = torch.full((8, 3, 32, 32), 128, dtype=torch.uint8)
    out = prep(images)
    plain = BatchPreprocessor((0.5,) * 3, (0.25,) * 3, device="cuda")(images)
    changed = (out != plain).any(1).flatten(1).float().mean(1)
    assert out.device.type == "cuda" and bool(((changed > 0.01) & (changed < 0.4)).all())


def test_runs_recorded_before_batched_augmentation_resume_on_the_per_sample_path():
    from resnets.train.options import TrainOptions

    assert TrainOptions.from_dict({"data": "digits"}).augment_on == "workers"
    assert TrainOptions().augment_on == "device"
    assert TrainOptions.from_dict(TrainOptions().to_dict()).augment_on == "device"
