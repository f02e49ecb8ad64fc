"""`resnets export`: ONNX and TorchScript files that load back, match eager PyTorch and take any batch size."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import resnets
from resnets import export as export_module
from resnets.cli import main
from resnets.errors import ResnetsError
from resnets.export import export_model, load_torchscript, onnx_session
from resnets.inference import count_batchnorms, onnx_backend
from tests.helpers import randomize_bn, relative_error

HAS_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="onnx/onnxruntime not installed")
HAS_OPENVINO = HAS_ONNX and all(importlib.util.find_spec(name) for name in ("openvino", "nncf"))
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="openvino/nncf not installed (resnets[openvino])")

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = randomize_bn(resnets.create_model("resnet50d", num_classes=7, width_multiplier=0.25, input_size=64))
    path = tmp_path_factory.mktemp("export") / "tiny.safetensors"
    resnets.save_model(model, path)
    return path, model


@needs_onnx
def test_onnx_export_parity_and_dynamic_batch(capsys, checkpoint, tmp_path):
    path, model = checkpoint
    out = tmp_path / "model.onnx"
    assert main(["export", "--weights", str(path), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "opset 17" in printed and "batch 2:" in printed and "batch 3:" in printed and "-> OK" in printed
    session = onnx_session(out, threads=1)
    images = torch.randn(5, 3, 64, 64)
    logits = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
    with torch.no_grad():
        assert logits.shape == (5, 7) and relative_error(logits, model.eval()(images)) < 1e-4


def test_torchscript_export_parity_and_dynamic_batch(capsys, checkpoint, tmp_path):
    path, model = checkpoint
    out = tmp_path / "model.pt"
    assert main(["export", "--weights", str(path), "--format", "torchscript", "--out", str(out), "--img-size",
                 "96"]) == 0
    printed = capsys.readouterr().out
    assert "torchscript" in printed and "-> OK" in printed and "opset" not in printed
    loaded = load_torchscript(out)
    images = torch.randn(4, 3, 96, 96)
    with torch.no_grad():
        assert relative_error(loaded(images), model.eval()(images)) < 1e-4


@needs_onnx
def test_export_report_for_resnet_rs_with_chosen_opset(tmp_path):
    model = randomize_bn(resnets.create_model("resnetrs50", num_classes=5, width_multiplier=0.25)).train()
    report = export_model(model, tmp_path / "rs.onnx", "onnx", img_size=64, opset=18)
    assert report.opset == 18 and report.parity_ok and set(report.max_abs_diff) == {2, 3}
    assert report.size_bytes == (tmp_path / "rs.onnx").stat().st_size
    assert model.training and count_batchnorms(model) > 0  # the caller's model is left as it was


def test_bad_format_and_options(capsys, checkpoint, tmp_path):
    path, _ = checkpoint
    assert main(["export", "--weights", str(path), "--format", "tflite", "--out", str(tmp_path / "m")]) == 2
    assert "unknown export format 'tflite'" in capsys.readouterr().err
    assert main(["export", "--weights", str(path), "--format", "torchscript", "--opset", "17",
                 "--out", str(tmp_path / "m.pt")]) == 2
    assert "--opset applies to --format onnx only" in capsys.readouterr().err
    assert main(["export", "--weights", str(tmp_path / "nope.safetensors"), "--format", "torchscript",
                 "--out", str(tmp_path / "m.pt")]) == 2
    assert "weight file not found" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


@needs_onnx
def test_out_of_range_opset(capsys, checkpoint, tmp_path):
    path, _ = checkpoint
    assert main(["export", "--weights", str(path), "--format", "onnx", "--opset", "99",
                 "--out", str(tmp_path / "m.onnx")]) == 2
    assert "opset 99 is not supported" in capsys.readouterr().err


def test_missing_onnx_packages_name_the_extra(monkeypatch, capsys, checkpoint, tmp_path):
    monkeypatch.setattr(onnx_backend, "onnx_missing",
                        lambda runtime=True: "onnx and onnxruntime not installed (pip install 'resnets[export]')")
    path, _ = checkpoint
    assert main(["export", "--weights", str(path), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "pip install 'resnets[export]'" in capsys.readouterr().err
    with pytest.raises(ResnetsError, match="resnets\\[export\\]"):
        export_module.export_onnx(torch.nn.Identity(), tmp_path / "x.onnx", img_size=64)


@needs_onnx
def test_dynamic_size_onnx_runs_at_any_size_the_network_accepts(capsys, checkpoint, tmp_path):
    path, model = checkpoint
    out = tmp_path / "dyn.onnx"
    assert main(["export", "--weights", str(path), "--format", "onnx", "--out", str(out), "--dynamic-size"]) == 0
    printed = capsys.readouterr().out
    assert "dynamic batch, height and width" in printed and "48x48:" in printed and "96x96:" in printed
    session = onnx_session(out, threads=1)
    for shape in ((1, 3, 64, 64), (2, 3, 128, 96), (1, 3, 200, 160)):
        images = torch.randn(*shape)
        logits = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
        with torch.no_grad():
            assert relative_error(logits, model.eval()(images)) < 1e-4


@needs_onnx
def test_fixed_size_onnx_refuses_another_size(checkpoint, tmp_path):
    path, model = checkpoint
    report = export_model(model, tmp_path / "fixed.onnx", "onnx", img_size=64)
    assert not report.dynamic_size and not report.size_diffs
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own error type
        onnx_session(tmp_path / "fixed.onnx").run(None, {"images": torch.randn(1, 3, 96, 96).numpy()})


@needs_openvino
def test_openvino_ir_parity_and_both_files_written(capsys, checkpoint, tmp_path):
    path, model = checkpoint
    out = tmp_path / "ir" / "model.xml"
    assert main(["export", "--weights", str(path), "--format", "openvino", "--out", str(out), "--dynamic-size"]) == 0
    printed = capsys.readouterr().out
    assert "openvino fp32" in printed and "-> OK" in printed and "96x96:" in printed
    assert out.is_file() and out.with_suffix(".bin").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.bin", "model.xml"]  # no temporary left
    from resnets.inference import openvino_backend as ovb

    run = ovb.compiled_forward(ovb.compile_model(ovb.read_ir(out), "fp32", threads=1))
    images = torch.randn(2, 3, 80, 112)
    with torch.no_grad():
        assert relative_error(run(images), model.eval()(images)) < 1e-4


@pytest.mark.parametrize("fmt", [pytest.param("onnx", marks=needs_onnx), pytest.param("openvino", marks=needs_openvino)])
def test_int8_export_reports_its_accuracy(capsys, fmt, tmp_path, shared_data):
    folder = shared_data / "imagenette-mini"
    model = resnets.create_model("resnet18", num_classes=10, width_multiplier=0.25, input_size=64, crop_pct=1.0)
    weights = tmp_path / "named.safetensors"
    resnets.save_model(model, weights, class_names=sorted(p.name for p in (folder / "val").iterdir()))
    out = tmp_path / ("q.onnx" if fmt == "onnx" else "q.xml")
    code = main(["export", "--weights", str(weights), "--format", fmt, "--out", str(out), "--precision", "int8",
                 "--calib", str(folder / "train"), "--int8-val", str(folder / "val")])
    printed = capsys.readouterr().out
    assert f"{fmt} int8" in printed and "of 300 images of" in printed and "top-1" in printed
    assert code == (0 if "-> OK" in printed else 1)
    assert out.stat().st_size < 0.5 * 4 * sum(p.numel() for p in model.parameters())  # int8 weights


def test_export_request_errors(capsys, checkpoint, tmp_path, monkeypatch):
    path, _ = checkpoint
    base = ["export", "--weights", str(path), "--out", str(tmp_path / "m")]
    assert main([*base, "--format", "torchscript", "--dynamic-size"]) == 2
    assert "--dynamic-size applies to onnx and openvino" in capsys.readouterr().err
    assert main([*base, "--format", "torchscript", "--precision", "int8"]) == 2
    assert "exports fp32, not int8" in capsys.readouterr().err
    if HAS_ONNX:
        assert main([*base, "--format", "onnx", "--precision", "int8"]) == 2
        assert "needs calibration images: --calib DIR" in capsys.readouterr().err
        assert main([*base, "--format", "onnx", "--precision", "bf16"]) == 2
        assert "exports fp32 or int8, not bf16" in capsys.readouterr().err
    monkeypatch.setattr(export_module, "openvino_missing",
                        lambda int8=False: "openvino not installed (pip install 'resnets[openvino]')")
    assert main(["export", "--weights", str(path), "--out", str(tmp_path / "m.xml"), "--format", "openvino"]) == 2
    assert "resnets[openvino]" in capsys.readouterr().err
    assert not any(tmp_path.glob("m*"))


@needs_openvino
def test_openvino_out_must_be_xml(capsys, checkpoint, tmp_path):
    path, _ = checkpoint
    assert main(["export", "--weights", str(path), "--format", "openvino", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "ends in .xml" in capsys.readouterr().err and not list(tmp_path.iterdir())
