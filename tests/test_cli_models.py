"""`resnets models`, `resnets info`, `resnets convert`: output, JSON, round trips and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import timm
import torch

from resnets import create_model, list_models, load_model
from resnets.cli import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _error(capsys, *argv: str) -> str:
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# --- models ---------------------------------------------------------------------------------------------
def test_models_table(capsys):
    code, out, _ = _run(capsys, "models")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[:6] == ["name", "params", "(M)", "GMACs", "size", "test"]
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert len(rows) == len(list_models()) >= 45
    assert rows["resnet50"][1:5] == ["25.56", "4.09", "224", "224"]
    assert rows["resnetrs50"][1:5] == ["35.69", "2.28", "160", "224"]  # the preset's own sizes
    assert rows["resnet200_vd"][1] == "74.74"
    assert "FLOPs = 2 x MACs" in lines[-1] and lines[-1].startswith(f"{len(rows)} model(s)")


def test_models_pattern_filter(capsys):
    _, out, _ = _run(capsys, "models", "resnetrs*")
    names = [line.split()[0] for line in out.strip().splitlines()[1:-1]]
    assert names == [f"resnetrs{d}" for d in (50, 101, 152, 200, 270, 350, 420)]
    _, out, _ = _run(capsys, "models", "vd")  # a plain word matches anywhere
    assert {line.split()[0] for line in out.strip().splitlines()[1:-1]} == set(list_models("*vd*")) > set(list_models("*_vd"))


def test_models_json(capsys):
    code, out, _ = _run(capsys, "models", "--json")
    records = json.loads(out)
    assert code == 0 and len(records) == len(list_models()) >= 45
    by_name = {r["name"]: r for r in records}
    assert set(by_name["resnet50"]) == {"name", "description", "params", "params_m", "macs", "gmacs", "img_size",
                                        "test_img_size"}
    assert (by_name["resnet50"]["params"], by_name["resnet50"]["gmacs"]) == (25_557_032, 4.089)
    assert by_name["resnetrs101"]["img_size"] == 192 and by_name["resnetrs101"]["test_img_size"] == 288
    _, out, _ = _run(capsys, "models", "wide*", "--json")
    assert [r["name"] for r in json.loads(out)] == ["wide_resnet50_2", "wide_resnet101_2"]


def test_models_markdown_lists_every_preset(capsys):
    # docs/models.md is this output; tests/test_docs.py checks the committed page against it
    code, out, _ = _run(capsys, "models", "--markdown")
    assert code == 0 and out.startswith("# Model zoo")
    assert "| `resnet50` | ResNet-50-B | 25.56 | 4.09 | 224 | 224 |" in out
    assert out.count("\n| `") == len(list_models())


def test_models_no_match(capsys):
    assert "no model matches" in _error(capsys, "models", "densenet*")
    assert "did you mean 'resnet50'" in _error(capsys, "models", "resnet5O")


# --- info -----------------------------------------------------------------------------------------------
def test_info_resnet50_totals(capsys):
    code, out, _ = _run(capsys, "info", "resnet50")
    assert code == 0
    assert out.startswith("resnet50: ResNet-50")
    total = next(line for line in out.splitlines() if line.strip().startswith("total"))
    assert "25,557,032" in total and "4,089,184,256" in total
    assert "25.557 M params, 4.089 GMACs (8.178 GFLOPs = 2 x MACs)" in out
    assert "layer1       3  256 x 56 x 56" in out and "layer4       3  2048 x 7 x 7" in out
    assert "crop_pct 0.875, bilinear, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)" in out


def test_info_json_and_img_size(capsys):
    code, out, _ = _run(capsys, "info", "resnetrs50", "--img-size", "224", "--json")
    record = json.loads(out)
    assert code == 0 and record["img_size"] == 224 and record["params"] == 35_691_912
    assert round(record["gmacs"], 3) == 4.454
    assert [s["name"] for s in record["stages"]] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert record["stages"][4]["output_shape"] == [2048, 7, 7] and record["stages"][4]["blocks"] == 3
    assert sum(s["params"] for s in record["stages"]) == record["params"]
    assert record["preprocessing"] == {"input_size": 160, "test_input_size": 224, "crop_pct": 0.91,
                                       "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406],
                                       "std": [0.229, 0.224, 0.225]}
    assert record["description"] == "ResNet-RS-50" and record["config"]["se_ratio"] == 0.25
    _, out, _ = _run(capsys, "info", "resnetrs50")  # default: the preset's training size
    assert "cost at 160x160" in out and "SE ratio 0.25" in out


def test_info_errors(capsys):
    assert "did you mean 'resnet50'" in _error(capsys, "info", "resnet5O")
    assert "too small" in _error(capsys, "info", "resnet50", "--img-size", "16")


# --- convert --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def timm_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=10).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("timm") / "resnet10t_timm.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_convert_round_trip(capsys, tmp_path, timm_checkpoint):
    src, theirs = timm_checkpoint
    dst = tmp_path / "out" / "resnet10t.safetensors"
    code, out, err = _run(capsys, "convert", "--from", "timm", str(src), "--model", "resnet10t", "--out", str(dst))
    assert code == 0 and err == ""
    assert out.count("\n") == 1 and str(dst) in out and "10 classes" in out
    assert f"{len(theirs.state_dict())} tensors" in out
    assert f"{sum(p.numel() for p in theirs.parameters()):,} params" in out
    x = torch.randn(2, 3, 64, 64)
    ours = create_model("resnet10t", weights=dst).eval()
    rebuilt = load_model(dst).eval()  # the config travels in the file
    assert rebuilt.config.num_classes == 10 and rebuilt.config.name == "resnet10t"
    with torch.no_grad():
        expected = theirs(x)
        torch.testing.assert_close(ours(x), expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(rebuilt(x), expected, rtol=0, atol=1e-5)


def test_convert_reset_head(capsys, tmp_path, timm_checkpoint):
    src, theirs = timm_checkpoint
    dst = tmp_path / "three.safetensors"
    code, out, _ = _run(capsys, "convert", "--from", "timm", str(src), "--model", "resnet10t", "--out", str(dst),
                        "--reset-head", "--num-classes", "3")
    assert code == 0 and "3 classes (new head)" in out
    model = load_model(dst).eval()
    assert model.fc.out_features == 3
    assert torch.equal(model.layer4[0].conv2.weight, theirs.layer4[0].conv2.weight)


def test_convert_errors(capsys, tmp_path, timm_checkpoint):
    src, _ = timm_checkpoint
    out = str(tmp_path / "x.safetensors")
    message = _error(capsys, "convert", "--from", "timm", str(src), "--model", "resnet10", "--out", out)
    assert "unknown model 'resnet10'; did you mean" in message and "'resnet10t'" in message
    assert "not found" in _error(capsys, "convert", "--from", "timm", str(tmp_path / "missing.pth"), "--model",
                                 "resnet10t", "--out", out)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00" * 100)
    assert "cannot read weight file" in _error(capsys, "convert", "--from", "torchvision", str(junk), "--model",
                                               "resnet18", "--out", out)
    message = _error(capsys, "convert", "--from", "timm", str(src), "--model", "resnet18", "--out", out)
    assert "missing key(s)" in message and "unexpected key(s)" in message and "conv1.0.weight" in message
    message = _error(capsys, "convert", "--from", "timm", str(src), "--model", "resnet10t", "--out", out,
                     "--num-classes", "5")
    assert "shape mismatch" in message and "--reset-head" in message
    assert ".safetensors" in _error(capsys, "convert", "--from", "timm", str(src), "--model", "resnet10t", "--out",
                                    str(tmp_path / "x.pth"))
    assert not (tmp_path / "x.safetensors").exists()  # nothing written on failure


def test_convert_argument_errors(capsys, timm_checkpoint):
    src, _ = timm_checkpoint
    with pytest.raises(SystemExit) as info:
        main(["convert", "--from", "caffe", str(src), "--model", "resnet10t", "--out", "x.safetensors"])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err
    # A PyTorch file said to be Keras', and a PyTorch file without --model (only Keras files name their net).
    assert main(["convert", "--from", "keras", str(src), "--model", "resnet10t", "--out", "x.safetensors"]) == 2
    assert "not a Keras file" in capsys.readouterr().err
    assert main(["convert", "--from", "timm", str(src), "--out", "x.safetensors"]) == 2
    assert "--model" in capsys.readouterr().err


# --- the real entry point (one subprocess each) -----------------------------------------------------------
def test_models_subprocess():
    result = subprocess.run([sys.executable, "-m", "resnets", "models", "resnet50"], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0 and result.stdout.splitlines()[1].split()[:3] == ["resnet50", "25.56", "4.09"]


def test_convert_subprocess_error_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "resnets", "convert", "--from", "timm", str(tmp_path / "no.pth"),
                             "--model", "resnet50", "--out", str(tmp_path / "o.safetensors")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: weight file not found")
