"""`resnets predict`: top-k with class names from our checkpoints or ImageNet, bad files named and skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import resnets
from resnets.cli import main
from resnets.data.imagenet_classes import class_names_for, imagenet_class_names


@pytest.fixture(scope="module")
def val_images(shared_data) -> list[Path]:
    folder = shared_data / "imagenette-mini" / "val"
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    return [sorted(c.iterdir())[0] for c in classes[:3]]


@pytest.fixture(scope="module")
def class_names(shared_data) -> list[str]:
    return sorted(p.name for p in (shared_data / "imagenette-mini" / "train").iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def named_checkpoint(tmp_path_factory, class_names) -> Path:
    """A 10-class run of ours: config and the training folder's class names in the metadata."""
    torch.manual_seed(0)
    model = resnets.create_model("resnet18", num_classes=len(class_names), width_multiplier=0.25, input_size=64,
                                 crop_pct=1.0)
    path = tmp_path_factory.mktemp("ckpt") / "run.safetensors"
    resnets.save_model(model, path, class_names=[f"label-{name}" for name in class_names])
    return path


def test_imagenet_names():
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[1] == "goldfish"
    assert class_names_for(1000)[207] == names[207]
    assert class_names_for(3, ["a", "b", "c"]) == ["a", "b", "c"]
    assert class_names_for(3, ["a"]) == ["class_0", "class_1", "class_2"]


def test_predict_uses_stored_class_names(capsys, named_checkpoint, val_images, class_names):
    code = main(["predict", "--weights", str(named_checkpoint), *map(str, val_images), "--topk", "3"])
    out = capsys.readouterr().out
    assert code == 0
    for image in val_images:
        assert str(image) in out
    ranks = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(ranks) == 3 * len(val_images)
    assert all("label-n" in line for line in ranks)


def test_predict_json_with_a_bad_file(capsys, named_checkpoint, val_images, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not a picture")
    missing = tmp_path / "gone.png"
    code = main(["predict", "--weights", str(named_checkpoint), str(val_images[0]), str(bad), str(missing),
                 "--topk", "2", "--json"])
    captured = capsys.readouterr()
    assert code == 1
    items = json.loads(captured.out)
    good = [i for i in items if "top" in i]
    failed = {i["image"]: i["error"] for i in items if "error" in i}
    assert [i["image"] for i in good] == [str(val_images[0])]
    assert len(good[0]["top"]) == 2 and sum(t["prob"] for t in good[0]["top"]) <= 1.0 + 1e-6
    assert set(failed) == {str(bad), str(missing)}
    assert f"cannot decode image {bad}" in captured.err and f"image not found: {missing}" in captured.err


def test_foreign_1000_class_weights_get_imagenet_names(capsys, tmp_path, val_images):
    weights = tmp_path / "resnet18_tv.pth"  # a torchvision-style file: a bare state dict, no metadata
    torch.save(resnets.create_model("resnet18").state_dict(), weights)
    assert main(["predict", "--weights", str(weights), str(val_images[0])]) == 2
    assert "--model" in capsys.readouterr().err
    code = main(["predict", "--weights", str(weights), "--model", "resnet18", str(val_images[0].parent), "--json"])
    assert code == 0
    items = json.loads(capsys.readouterr().out)
    assert len(items) == len(list(val_images[0].parent.iterdir()))
    names = set(imagenet_class_names())
    assert all(t["name"] in names for item in items for t in item["top"])


def test_1000_class_checkpoint_without_names(capsys, tmp_path, val_images):
    path = tmp_path / "in1k.safetensors"
    resnets.save_model(resnets.create_model("resnet18", width_multiplier=0.25), path)
    assert main(["predict", "--weights", str(path), str(val_images[1]), "--topk", "1", "--mode", "eager"]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert line.rsplit("(", 1)[0].split("%", 1)[1].strip() in set(imagenet_class_names())


def test_usage_errors(capsys, named_checkpoint, val_images, tmp_path):
    assert main(["predict", "--weights", str(tmp_path / "none.safetensors"), str(val_images[0])]) == 2
    assert "weight file not found" in capsys.readouterr().err
    assert main(["predict", "--weights", str(named_checkpoint), str(val_images[0]), "--mode", "fast"]) == 2
    assert "unknown inference mode 'fast'" in capsys.readouterr().err
    assert main(["predict", "--weights", str(named_checkpoint), str(tmp_path)]) == 1  # empty directory
    assert "no image files in directory" in capsys.readouterr().err


def test_subprocess_smoke(named_checkpoint, val_images):
    result = subprocess.run([sys.executable, "-m", "resnets", "predict", "--weights", str(named_checkpoint),
                             str(val_images[0]), "--topk", "1"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "label-n" in result.stdout
