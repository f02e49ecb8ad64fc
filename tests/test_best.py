"""`--mode best`: measured on this machine, fastest candidate that agrees with fp32 eager, int8 only when allowed
and checked on a labelled folder; every choice explained."""

from __future__ import annotations

import importlib.util
import json
import time

import pytest
import torch

import resnets
from resnets.cli import main
from resnets.errors import ResnetsError
from resnets.inference import best, modes
from resnets.inference.best import BestOptions, choose
from resnets.inference.modes import prepare
from tests.helpers import randomize_bn, relative_error

HAS_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime"))


def tiny() -> resnets.ResNet:
    return randomize_bn(resnets.create_model("resnet18", num_classes=10, width_multiplier=0.25))


def _fake_choice(model, pairs, forwards, options, **kwargs):
    return choose(pairs, lambda mode, precision: forwards[(mode, precision)], model.eval(), model, img_size=64,
                  batch_size=4, options=options, left_out=kwargs.get("left_out", []), device=torch.device("cpu"))


def _slow(forward, seconds):
    def run(images):
        time.sleep(seconds)
        return forward(images)
    return run


def test_fastest_candidate_that_disagrees_is_rejected_and_the_next_one_chosen():
    model = tiny()
    garbage = lambda images: torch.randn(len(images), 10)  # noqa: E731 - fast, and wrong
    forwards = {("fast", "bf16"): garbage, ("exact", "fp32"): _slow(model.eval(), 0.1)}
    selection = _fake_choice(model, list(forwards), forwards, BestOptions(check_images=40, rounds=1))
    assert selection.chosen.name == "exact fp32" and selection.chosen.agreement == 100.0
    rejected = next(c for c in selection.candidates if c.name == "fast bf16")
    assert rejected.img_s > selection.chosen.img_s and rejected.agreement < 99.5
    assert "rejected: top-1 agrees with fp32 eager on" in rejected.verdict
    text = "\n".join(selection.lines())
    assert "best -> exact fp32: fastest whose top-1 agrees" in text and "40 random images" in text


def test_int8_must_keep_top1_on_the_labelled_folder(monkeypatch, shared_data):
    model = tiny()
    model.class_names = sorted(p.name for p in (shared_data / "imagenette-mini" / "val").iterdir())
    int8 = lambda images: model.eval()(images)  # noqa: E731 - agrees perfectly on the check set...
    scores = {id(int8): 40.0}

    def fake_labelled(model, folder, img_size, batch_size):  # ...but loses a point of top-1 on the labels
        return (lambda forward: scores.get(id(forward), 41.0)), 300

    monkeypatch.setattr(best, "_labelled_top1", fake_labelled)
    forwards = {("openvino", "int8"): int8, ("onnx", "fp32"): _slow(model.eval(), 0.1)}
    options = BestOptions(allow_int8=True, calib=str(shared_data / "imagenette-mini" / "train"), check_images=8,
                          rounds=1)
    selection = _fake_choice(model, list(forwards), forwards, options)
    rejected = next(c for c in selection.candidates if c.precision == "int8")
    assert "drop 1.00 > 0.5 points" in rejected.verdict and selection.chosen.name == "onnx fp32"
    scores[id(int8)] = 40.8  # within 0.5 points: int8 wins
    selection = _fake_choice(model, list(forwards), forwards, options)
    assert selection.chosen.precision == "int8" and "top-1 41.00% -> 40.80%" in selection.chosen.verdict


def test_int8_is_left_out_unless_allowed_and_labelled(shared_data, tmp_path):
    device = torch.device("cpu")
    pairs, left_out = modes.best_pairs(device, BestOptions())
    assert all(p != "int8" for _, p in pairs) and any("--allow-int8" in line for line in left_out)
    pairs, left_out = modes.best_pairs(device, BestOptions(allow_int8=True))
    assert any("--calib" in line for line in left_out)
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.jpg").write_bytes((next((shared_data / "imagenette-mini" / "val").rglob("*.JPEG"))).read_bytes())
    model = tiny()
    with pytest.raises(ResnetsError):
        best._labelled_top1(model, str(flat), 64, 4)  # no class folders, no labels


def test_fp32_restricts_best_to_exact_modes_and_explains_the_choice(capsys):
    model = tiny()
    runner = prepare(model, "best", img_size=64, batch_size=2, precision="fp32",
                     best=BestOptions(check_images=8, rounds=1), verbose=True)
    assert runner.requested == "best" and runner.precision == "fp32" and runner.agreement == 100.0
    assert {c.precision for c in runner.selection.candidates} == {"fp32"}
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert relative_error(runner(x), model.eval()(x)) < 1e-4
    err = capsys.readouterr().err
    assert err.count("img/s") >= 2 and f"best -> {runner.mode} fp32" in err


def test_best_leaves_out_what_the_hardware_only_emulates(monkeypatch):
    from resnets.hardware import cpu_capabilities

    monkeypatch.setattr(modes, "capabilities", lambda device: cpu_capabilities(("AMD EPYC 7B13", {"avx2"})))
    pairs, left_out = modes.best_pairs(torch.device("cpu"), BestOptions())
    assert {p for _, p in pairs} == {"fp32"}
    assert any(line.startswith("bf16: bf16 is not native on this CPU (AMD EPYC 7B13") for line in left_out)


def test_a_missing_backend_is_named_and_best_goes_on(monkeypatch):
    monkeypatch.setattr(modes, "openvino_missing", lambda int8=False: "openvino not installed "
                        "(pip install 'resnets[openvino]')")
    runner = prepare(tiny(), "best", img_size=64, batch_size=2, precision="fp32",
                     best=BestOptions(check_images=4, rounds=1), verbose=False)
    assert runner.mode != "openvino"
    assert any("resnets[openvino]" in line for line in runner.selection.left_out)


def test_calib_folder_without_images_falls_back_to_random_check_images(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing")
    batches, description = best.check_set(tiny(), BestOptions(calib=str(tmp_path), check_images=6), 64, 4)
    assert sum(len(b) for b in batches) == 6 and "random images" in description and "no image files" in description


@pytest.mark.skipif(not HAS_ONNX, reason="onnx missing")
def test_bench_json_records_mode_backend_precision_agreement(capsys):
    code = main(["bench", "resnet18", "--img-size", "64", "--batch-size", "2", "--mode", "best", "--precision",
                 "fp32", "--reps", "1", "--warmup", "0", "--json"])
    assert code == 0
    [record] = json.loads(capsys.readouterr().out)
    assert record["requested_mode"] == "best" and record["precision"] == "fp32" and record["agreement"] == 100.0
    assert record["backend"] in ("onnxruntime", "openvino", "torch") and record["choice"].startswith(record["mode"])


def test_eval_in_the_deployed_mode_reports_it(capsys, tmp_path, shared_data):
    model = resnets.create_model("resnet18", num_classes=10, width_multiplier=0.25, input_size=64, crop_pct=1.0)
    path = tmp_path / "m.safetensors"
    names = sorted(p.name for p in (shared_data / "imagenette-mini" / "val").iterdir())
    resnets.save_model(model, path, class_names=names)
    base = ["eval", "--weights", str(path), "--data", str(shared_data / "imagenette-mini"), "--batch-size", "50",
            "--workers", "0", "--json"]
    assert main(base) == 0
    fp32 = json.loads(capsys.readouterr().out)
    assert main([*base, "--mode", "channels_last", "--precision", "bf16"]) == 0
    bf16 = json.loads(capsys.readouterr().out)
    assert (bf16["mode"], bf16["precision"], bf16["backend"]) == ("channels_last", "bf16", "torch")
    assert bf16["n"] == fp32["n"] == 300 and abs(bf16["top1"] - fp32["top1"]) <= 2.0
