"""Inference modes: every mode computes the eager function; fallbacks are taken and explained."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import resnets
from resnets.errors import ResnetsError, UnknownNameError
from resnets.hardware import cpu_capabilities
from resnets.inference import modes
from resnets.inference.modes import prepare
from tests.helpers import randomize_bn, relative_error

PARITY_MODELS = ["resnet18", "resnet50d", "seresnext26d_32x4d", "resnetrs50"]
HAS_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime"))
HAS_OPENVINO = HAS_ONNX and importlib.util.find_spec("openvino") is not None
HAS_NNCF = HAS_OPENVINO and importlib.util.find_spec("nncf") is not None
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="onnx missing")
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="openvino missing (resnets[openvino])")
BF16_NATIVE = cpu_capabilities().is_native("bf16")
TOLERANCE = 1e-4
BF16_TOLERANCE = 3e-2
"""bf16 keeps 8 bits of mantissa: relative logit errors of ~1e-2 through a deep net are expected."""


def tiny(name: str) -> resnets.ResNet:
    return randomize_bn(resnets.create_model(name, num_classes=10, width_multiplier=0.25))


def images(n: int = 3, size: int = 64) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(n))


def eager(model: resnets.ResNet, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("mode", ["eager", "fused", "channels_last", pytest.param("onnx", marks=needs_onnx),
                                  pytest.param("openvino", marks=needs_openvino)])
@pytest.mark.parametrize("name", PARITY_MODELS)
def test_mode_matches_eager(name, mode):
    model = tiny(name)
    x = images()
    runner = prepare(model, mode, img_size=64, batch_size=2, verbose=False)
    assert runner.mode == mode and runner.fallback_reason is None and runner.precision == "fp32"
    assert runner.backend == modes.BACKENDS[mode]
    out = runner(x)
    assert out.dtype == torch.float32 and out.shape == (3, 10) and not out.requires_grad
    assert relative_error(out, eager(model, x)) < TOLERANCE


@pytest.mark.parametrize("mode", ["eager", "channels_last",
                                  pytest.param("openvino", marks=[needs_openvino, pytest.mark.skipif(
                                      not BF16_NATIVE, reason="OpenVINO runs bf16 only where the CPU has it")])])
def test_bf16_modes_stay_close_to_fp32(mode):
    model = tiny("resnet50d")
    x = images(4)
    runner = prepare(model, mode, img_size=64, batch_size=2, precision="bf16", verbose=False)
    assert (runner.mode, runner.precision) == (mode, "bf16")
    out = runner(x)
    assert out.dtype == torch.float32
    error = relative_error(out, eager(model, x))
    assert 0 < error < BF16_TOLERANCE  # reduced, but not garbage: and not secretly fp32 either


def test_a_precision_the_cpu_only_emulates_is_run_on_request_and_said(monkeypatch, capsys):
    avx2_only = cpu_capabilities(("AMD EPYC 7B12", {"avx2", "fma", "avx"}))
    monkeypatch.setattr(modes, "capabilities", lambda device: avx2_only)
    runner = prepare(tiny("resnet18"), "channels_last", img_size=64, precision=torch.bfloat16, verbose=True)
    assert runner.precision == "bf16" and runner.notes
    err = capsys.readouterr().err
    assert "bf16 is not native on this CPU (AMD EPYC 7B12" in err and "emulated" in err


def test_onnx_has_no_bf16_and_falls_back_to_a_mode_that_has():
    runner = prepare(tiny("resnet18"), "onnx", img_size=64, precision="bf16", verbose=False)
    assert (runner.mode, runner.precision) == ("channels_last", "bf16")
    assert "no bf16 convolutions" in runner.fallback_reason


def test_int8_needs_calibration_and_an_int8_backend(tmp_path):
    with pytest.raises(ResnetsError, match="--calib DIR"):
        prepare(tiny("resnet18"), "onnx", img_size=64, precision="int8")
    with pytest.raises(ResnetsError, match="int8 runs in the onnx or openvino mode"):
        prepare(tiny("resnet18"), "channels_last", img_size=64, precision="int8", calib=str(tmp_path))
    with pytest.raises(ResnetsError, match="unknown precision 'int4'"):
        prepare(tiny("resnet18"), "eager", img_size=64, precision="int4")


@needs_onnx
def test_int8_calibration_folder_without_images_is_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("no pictures here")
    with pytest.raises(ResnetsError, match="no inference mode could run int8") as info:
        prepare(tiny("resnet18"), "openvino", img_size=64, precision="int8", calib=str(tmp_path), verbose=False)
    assert f"no image files under {tmp_path}" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("mode", [pytest.param("onnx", marks=needs_onnx),
                                  pytest.param("openvino", marks=pytest.mark.skipif(not HAS_NNCF, reason="nncf"))])
def test_int8_modes_calibrate_on_images_and_keep_most_top1(mode, shared_data):
    model = tiny("resnet18")
    runner = prepare(model, mode, img_size=64, batch_size=4, precision="int8",
                     calib=str(shared_data / "imagenette-mini" / "train"), verbose=False)
    assert (runner.mode, runner.precision) == (mode, "int8")
    x = images(8)
    out, expected = runner(x), eager(model, x)
    assert out.shape == (8, 10) and 0 < relative_error(out, expected) < 0.5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "seresnext26d_32x4d"])
def test_compile_matches_eager_and_pads_partial_batches(name):
    model = tiny(name)
    runner = prepare(model, "compile", img_size=64, batch_size=2, verbose=False)
    if runner.mode != "compile":
        pytest.skip(f"torch.compile unavailable here: {runner.fallback_reason}")
    assert runner.fixed_batch == 2
    x = images(3)  # one full batch of 2, then 1 image padded to 2
    assert relative_error(runner(x), eager(model, x)) < TOLERANCE
    again = prepare(model, "compile", img_size=64, batch_size=2, verbose=False)
    assert again.forward is runner.forward  # compiled once per model and shape


@needs_onnx
def test_missing_openvino_falls_back_to_onnx_and_names_the_extra(monkeypatch):
    monkeypatch.setattr(modes, "openvino_missing", lambda int8=False: "openvino not installed "
                        "(pip install 'resnets[openvino]')")
    runner = prepare(tiny("resnet18"), "openvino", img_size=64, verbose=False)
    assert runner.mode == "onnx" and "resnets[openvino]" in runner.fallback_reason


def test_missing_onnx_falls_back_and_says_why(monkeypatch, capsys):
    monkeypatch.setattr(modes, "onnx_missing",
                        lambda runtime=True: "onnxruntime not installed (pip install 'resnets[export]')")
    model = tiny("resnet18")
    runner = prepare(model, "onnx", img_size=64, verbose=True)
    assert runner.mode == "channels_last"
    assert "onnxruntime not installed" in runner.fallback_reason
    err = capsys.readouterr().err
    assert "'onnx' -> using 'channels_last'" in err and "resnets[export]" in err
    assert relative_error(runner(images()), eager(model, images())) < TOLERANCE


def test_failing_compile_falls_back(monkeypatch):
    def broken_compile(module, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler found")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    runner = prepare(tiny("resnet18"), "compile", img_size=64, verbose=False)
    assert runner.mode == "channels_last"
    assert "torch.compile failed: no C++ compiler found" in runner.fallback_reason
    assert runner.fixed_batch is None


def test_precision_and_dtype_must_agree():
    with pytest.raises(ResnetsError, match="disagree"):
        prepare(tiny("resnet18"), "eager", img_size=64, precision="fp32", dtype=torch.bfloat16)
    assert prepare(tiny("resnet18"), "eager", img_size=64, dtype=torch.bfloat16).precision == "bf16"


def test_unknown_mode_suggests_the_closest():
    with pytest.raises(UnknownNameError, match="channels_last"):
        prepare(tiny("resnet18"), "channel_last", img_size=64)
    with pytest.raises(ResnetsError, match="only for `resnets bench`"):
        prepare(tiny("resnet18"), "all", img_size=64)


def test_bad_sizes_and_inputs_are_user_errors():
    model = tiny("resnet18")
    with pytest.raises(ResnetsError, match="too small"):
        prepare(model, "fused", img_size=16)
    runner = prepare(model, "fused", img_size=64, verbose=False)
    with pytest.raises(ResnetsError, match="expected images shaped"):
        runner(torch.randn(3, 64, 64))
    with pytest.raises(ResnetsError, match="too small"):
        runner(torch.randn(1, 3, 16, 16))


def test_prepare_never_modifies_the_callers_model():
    model = tiny("resnet18")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for mode in ("eager", "fused", "channels_last"):
        prepare(model, mode, img_size=64, verbose=False)(images())
    assert model.training
    assert resnets.inference.count_batchnorms(model) == 20
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.conv1.weight.is_contiguous()


@pytest.mark.skipif(not HAS_ONNX, reason="onnx missing")
def test_cached_runner_is_rebuilt_when_weights_change():
    model = tiny("resnet18")
    first = prepare(model, "onnx", img_size=64, batch_size=2, verbose=False)
    assert prepare(model, "onnx", img_size=64, batch_size=8, verbose=False).forward is first.forward
    with torch.no_grad():
        model.fc.bias.add_(1.0)  # an optimizer step does the same: an in-place update
    second = prepare(model, "onnx", img_size=64, batch_size=2, verbose=False)
    assert second.forward is not first.forward
    assert relative_error(second(images()), eager(model, images())) < TOLERANCE


def test_compile_past_the_recompile_limit_falls_back_instead_of_running_eagerly(monkeypatch):
    # dynamo would silently run eagerly once its recompile limit is hit; we must say so and fall back.
    monkeypatch.setattr(modes, "RECOMPILE_LIMIT", 0)
    runner = prepare(tiny("resnet18"), "compile", img_size=64, batch_size=1, verbose=False)
    assert runner.mode == "channels_last"
    assert "RECOMPILE_LIMIT" in runner.fallback_reason


@pytest.mark.parametrize("mode", [pytest.param("onnx", marks=needs_onnx), pytest.param("openvino", marks=needs_openvino)])
def test_exported_runners_reject_another_image_size(mode):
    runner = prepare(tiny("resnet18"), mode, img_size=64, verbose=False)
    with pytest.raises(ResnetsError, match="prepared for 64x64"):
        runner(images(1, 96))
