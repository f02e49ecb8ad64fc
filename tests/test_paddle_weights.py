"""PaddleClas `.pdparams` without PaddlePaddle: tiny synthetic pickles in both of PaddleClas' naming families, the
restricted unpickler against hostile pickles, and every way such a file can be wrong. (Agreement with the real
PaddleClas is tests/peers/test_paddle_parity.py.)"""

from __future__ import annotations

import io
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from resnets.cli import main
from resnets.errors import ResnetsError
from resnets.weights import paddle as paddle_weights
from resnets.weights import safe_pickle
from resnets.weights.factory import create_model, load_model

TINY = {"num_classes": 10, "width_multiplier": 0.25}
_BN = {"weight": "weight", "bias": "bias", "running_mean": "_mean", "running_var": "_variance"}


def _randomised(name: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name, **overrides)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _paddle_unit(module: str, is_conv: bool, layers: tuple[int, ...], deep_stem: bool, family: str) -> str:
    """PaddleClas' name for one of our modules, written out from PaddleClas' own code (legendary_models/resnet.py:
    stem.K / blocks.N over all stages, conv/bn; model_zoo: conv1_K or conv / bb_S_I, _conv/_batch_norm, scale, out)."""
    legendary = family == "legendary"
    conv, norm = ("conv", "bn") if legendary else ("_conv", "_batch_norm")
    part = conv if is_conv else norm
    if module == "conv1" or module.startswith("conv1.") or module == "bn1":
        k = {"conv1.0": 0, "conv1.1": 0, "conv1.3": 1, "conv1.4": 1, "conv1.6": 2}.get(module, 2 if deep_stem else 0)
        if legendary:
            return f"stem.{k}.{part}"
        return f"{f'conv1_{k + 1}' if deep_stem else 'conv'}.{part}"
    if module == "fc":
        return "fc" if legendary else "out"
    stage, index, rest = re.match(r"layer(\d)\.(\d+)\.(.+)", module).groups()
    stage, index = int(stage) - 1, int(index)
    block = f"blocks.{sum(layers[:stage]) + index}" if legendary else f"bb_{stage}_{index}"
    if m := re.fullmatch(r"(?:conv|bn)(\d)", rest):
        return f"{block}.conv{int(m[1]) - 1}.{part}"
    if rest.startswith("downsample."):
        return f"{block}.short.{part}"
    return f"{block}.scale.{'squeeze' if rest == 'se.fc1' else 'excitation'}"


def to_pdparams(model: torch.nn.Module, path: Path, family: str, *, protocol: int = 4, prefix: str = "") -> Path:
    """Write `model` as paddle.save would for the PaddleClas class of that architecture."""
    state = model.state_dict()
    deep_stem = "conv1.weight" not in state
    out, names = {}, {}
    for key, value in state.items():
        module, param = key.rsplit(".", 1)
        if param == "num_batches_tracked":
            continue
        is_conv = value.ndim == 4 or module.endswith(("se.fc1", "se.fc2")) or module == "fc"
        unit = _paddle_unit(module, is_conv, model.config.layers, deep_stem, family)
        array = value.numpy().copy()
        if not is_conv:
            param = _BN[param]
        elif unit.split(".")[-1] in ("fc", "out", "squeeze", "excitation") and param == "weight":
            array = array.reshape(array.shape[0], -1).T.copy()  # Paddle's Linear: [in, out]
        out[f"{prefix}{unit}.{param}"] = array
        names[f"{unit}.{param}"] = f"param_{len(names)}"
    out[paddle_weights.NAME_TABLE_KEY] = names
    path.write_bytes(pickle.dumps(out, protocol=protocol))
    return path


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("name, family, overrides", [
    ("resnet18_vd", "legendary", TINY),  # deep stem, flat blocks.N over the stages
    ("resnet50", "legendary", {**TINY, "layers": (1, 2, 1, 1)}),  # 7x7 stem, bottlenecks
    ("se_resnet18_vd", "model_zoo", TINY),  # conv1_K stem, SE Linears -> 1x1 convs
    ("resnext50_32x4d", "model_zoo", {"num_classes": 10, "layers": (1, 1, 1, 1)}),  # single `conv` stem
    ("se_resnext50_vd_32x4d", "model_zoo", {**TINY, "layers": (1, 1, 1, 1)}),
])
def test_both_naming_families_round_trip_exactly(tmp_path, name, family, overrides):
    ours = _randomised(name, **overrides)
    path = to_pdparams(ours, tmp_path / "m.pdparams", family)
    back = create_model(name, weights=path, source="paddle", **{k: v for k, v in overrides.items()
                                                                 if k != "num_classes"}).eval()
    assert back.config.num_classes == 10  # taken from the [in, out] classifier
    torch.testing.assert_close(_logits(back), _logits(ours), rtol=0, atol=0)
    _, metadata = paddle_weights.read_paddle(path, back.config)
    assert metadata["paddle_naming"] == family


def test_protocol_2_pickles_and_distillation_students_load(tmp_path):
    ours = _randomised("resnet18_vd", **TINY)
    for protocol, prefix in [(2, ""), (4, "Student.")]:
        path = to_pdparams(ours, tmp_path / f"p{protocol}.pdparams", "legendary", protocol=protocol, prefix=prefix)
        if prefix:  # a distillation checkpoint also holds its teacher: only the student is taken
            raw = pickle.loads(path.read_bytes())
            raw["Teacher.fc.weight"] = np.zeros((3, 3), np.float32)
            path.write_bytes(pickle.dumps(raw, protocol=4))
        back = create_model("resnet18_vd", weights=path, source="paddle", width_multiplier=0.25).eval()
        torch.testing.assert_close(_logits(back), _logits(ours), rtol=0, atol=0)


def test_convert_cli_end_to_end(tmp_path, capsys):
    ours = _randomised("resnet18_vd", num_classes=10)
    src = to_pdparams(ours, tmp_path / "ResNet18_vd_pretrained.pdparams", "legendary")
    out = tmp_path / "r18vd.safetensors"
    assert main(["convert", "--from", "paddle", str(src), "--model", "resnet18_vd", "--out", str(out)]) == 0
    assert "resnet18_vd" in capsys.readouterr().out
    back = load_model(out).eval()
    assert back.config.name == "resnet18_vd" and back.config.num_classes == 10
    torch.testing.assert_close(_logits(back), _logits(ours), rtol=0, atol=0)


def _cli_error(capsys, args: list[str]) -> str:
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_shapes_that_do_not_fit_name_the_tensor_and_write_nothing(tmp_path, capsys):
    src = to_pdparams(_randomised("resnet18_vd", **TINY), tmp_path / "tiny.pdparams", "legendary")
    out = tmp_path / "never.safetensors"
    line = _cli_error(capsys, ["convert", "--from", "paddle", str(src), "--model", "resnet18_vd", "--out", str(out)])
    assert "stem.0.conv.weight has shape (8, 3, 3, 3)" in line and "conv1.0.weight needs (32, 3, 3, 3)" in line
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_tensors_with_no_place_in_the_preset_are_named(tmp_path):
    se_file = to_pdparams(_randomised("se_resnet18_vd", **TINY), tmp_path / "se.pdparams", "model_zoo")
    with pytest.raises(ResnetsError, match=r"no place for 32 PaddleClas tensor\(s\): bb_0_0\.scale\.squeeze\.weight"):
        create_model("resnet18_vd", weights=se_file, source="paddle", width_multiplier=0.25)
    deeper = to_pdparams(_randomised("resnet34_vd", **TINY), tmp_path / "r34.pdparams", "legendary")
    with pytest.raises(ResnetsError, match=r"does not fit resnet18_vd: blocks\.2\.conv0\.conv\.weight has shape "
                                           r"\(16, 16, 3, 3\), layer2\.0\.conv1\.weight needs \(32, 16, 3, 3\)"):
        create_model("resnet18_vd", weights=deeper, source="paddle", width_multiplier=0.25)
    extra = to_pdparams(_randomised("resnet18_vd", **TINY), tmp_path / "extra.pdparams", "legendary")
    raw = pickle.loads(extra.read_bytes())
    raw["blocks.8.conv0.conv.weight"] = np.zeros((128, 128, 3, 3), np.float32)  # a 9th block: ResNet18 has 8
    extra.write_bytes(pickle.dumps(raw, protocol=4))
    with pytest.raises(ResnetsError, match=r"no place for 1 PaddleClas tensor\(s\): blocks\.8\.conv0\.conv\.weight$"):
        create_model("resnet18_vd", weights=extra, source="paddle", width_multiplier=0.25)


def test_missing_tensors_are_named(tmp_path):
    path = to_pdparams(_randomised("resnet18_vd", **TINY), tmp_path / "m.pdparams", "legendary")
    raw = pickle.loads(path.read_bytes())
    del raw["blocks.3.conv1.bn._variance"]
    path.write_bytes(pickle.dumps(raw, protocol=4))
    with pytest.raises(ResnetsError, match=r"missing key\(s\): layer2\.1\.bn2\.running_var"):
        create_model("resnet18_vd", weights=path, source="paddle", width_multiplier=0.25)


@pytest.mark.parametrize("content, message", [
    (pickle.dumps([np.zeros(3, np.float32)]), "not a PaddlePaddle state dict (a pickle of list"),
    (pickle.dumps({}), "it is empty"),
    (pickle.dumps({"fc.weight": np.array(["a"], dtype=object)}), "fc.weight are not numeric arrays"),
    (pickle.dumps({"fc.weight": np.zeros(3, np.float32)})[:-10], "corrupt, truncated or not a pickle"),
    (b"not a pickle at all", "corrupt, truncated or not a pickle"),
])
def test_files_that_are_not_paddle_state_dicts(tmp_path, content, message):
    path = tmp_path / "bad.pdparams"
    path.write_bytes(content)
    with pytest.raises(ResnetsError, match=re.escape(message)):
        create_model("resnet18_vd", weights=path, source="paddle")


def test_paddle_counter_names_are_refused_with_advice(tmp_path):
    path = tmp_path / "static.pdparams"
    path.write_bytes(pickle.dumps({"conv2d_0.w_0": np.zeros((8, 3, 3, 3), np.float32),
                                   "batch_norm_0.w_0": np.ones(8, np.float32)}, protocol=4))
    with pytest.raises(ResnetsError, match=r"names its tensors by Paddle's counters \(conv2d_0\.w_0, \.\.\.\).*"
                                           r"save the model's state_dict\(\)"):
        create_model("resnet18_vd", weights=path, source="paddle")


def test_looks_like_paddle(tmp_path):
    ours = _randomised("resnet18_vd", **TINY)
    pdparams = to_pdparams(ours, tmp_path / "m.pdparams", "legendary")
    renamed = tmp_path / "m.bin"
    renamed.write_bytes(pdparams.read_bytes())
    torch_file = tmp_path / "m.pth"
    torch.save(ours.state_dict(), torch_file)
    legacy_torch = tmp_path / "legacy.pt"
    torch.save(ours.state_dict(), legacy_torch, _use_new_zipfile_serialization=False)
    assert paddle_weights.looks_like_paddle(pdparams) and paddle_weights.looks_like_paddle(renamed)
    assert not paddle_weights.looks_like_paddle(torch_file)
    assert not paddle_weights.looks_like_paddle(legacy_torch)  # a pickle too, but naming torch's globals


# --- the restricted unpickler -------------------------------------------------------------------------------
class _Evil:
    """Unpickling this runs `os.system`, which writes a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_evil_pickle_never_runs(tmp_path, protocol, capsys):
    marker = tmp_path / "ran"
    arrays = {"fc.weight": np.ones((4, 2), np.float32)}
    src = tmp_path / "evil.pdparams"
    src.write_bytes(pickle.dumps({**arrays, "z": _Evil(marker)}, protocol=protocol))
    out = tmp_path / "out.safetensors"
    line = _cli_error(capsys, ["convert", "--from", "paddle", str(src), "--model", "resnet18_vd", "--out", str(out)])
    assert "references posix.system" in line and "could run code" in line
    assert not marker.exists() and not out.exists()


def test_refusal_comes_before_anything_is_built(tmp_path, monkeypatch):
    """The array comes first in the file and the evil global last: still nothing is resolved or built."""
    resolved = []
    monkeypatch.setattr(safe_pickle, "_resolve", lambda *name: resolved.append(name))
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps([np.ones(3, np.float32), _Evil(marker)], protocol=4))
    with pytest.raises(safe_pickle.RefusedPickle, match="posix.system"):
        safe_pickle.load_array_pickle(path)
    assert resolved == [] and not marker.exists()
    # ... whereas a clean file goes through the same resolver
    path.write_bytes(pickle.dumps([np.ones(3, np.float32)], protocol=4))
    with pytest.raises(ResnetsError):  # the patched resolver returns None: proof it is only reached now
        safe_pickle.load_array_pickle(path)
    assert resolved


def _op(code: bytes, text: str | None = None) -> bytes:
    if text is None:
        return code
    data = text.encode()
    return b"\x8c" + struct.pack("<B", len(data)) + data  # SHORT_BINUNICODE


def test_globals_hidden_behind_the_stack_or_memo_are_found_or_refused(tmp_path):
    call = b")R."  # EMPTY_TUPLE, REDUCE, STOP
    # names fetched from the memo are followed: posix.system is seen and named
    memo = b"\x80\x04" + _op(b"", "posix") + b"\x94" + _op(b"", "x") + b"0" + b"h\x00" + _op(b"", "system") + b"\x93"
    with pytest.raises(safe_pickle.RefusedPickle, match="references posix.system"):
        safe_pickle.check_globals(memo + call)
    # names the scan cannot pin to the two pushes before STACK_GLOBAL (here a list pushed and popped between)
    hidden = b"\x80\x04" + _op(b"", "posix") + _op(b"", "system") + b"]0" + b"\x93"
    with pytest.raises(safe_pickle.RefusedPickle, match="cannot check without running"):
        safe_pickle.check_globals(hidden + call)
    # persistent ids and the copyreg extension registry reach outside the file
    with pytest.raises(safe_pickle.RefusedPickle, match="EXT1"):
        safe_pickle.check_globals(b"\x80\x02\x82\x01.")


def test_unpickler_allows_numpy_arrays_only():
    data = pickle.dumps({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "names": {"a": "b"}, "n": [1, 2.0]})
    assert {g for g in safe_pickle.pickle_globals(data)} <= safe_pickle.ALLOWED_GLOBALS
    loaded = safe_pickle._ArrayUnpickler(io.BytesIO(data)).load()
    assert loaded["a"].tolist() == [[0, 1, 2], [3, 4, 5]] and loaded["names"] == {"a": "b"}
    with pytest.raises(pickle.UnpicklingError, match="builtins.print is not allowed"):
        safe_pickle._ArrayUnpickler(io.BytesIO(pickle.dumps(print))).load()


def test_backbone_from_a_paddle_classifier(tmp_path):
    ours = _randomised("se_resnet18_vd", **TINY)
    path = to_pdparams(ours, tmp_path / "m.pdparams", "model_zoo")
    backbone = create_model("se_resnet18_vd", weights=path, source="paddle", width_multiplier=0.25,
                            features_only=True, out_indices=(4,)).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        (features,) = backbone(x)
        expected = ours.layer4(ours.layer3(ours.layer2(ours.layer1(ours.maxpool(ours.act1(ours.bn1(ours.conv1(x))))))))
    torch.testing.assert_close(features, expected, rtol=0, atol=0)


@pytest.mark.parametrize("key, first_stage, role", [  # names as PaddleClas 2.6's model zoo gives them
    ("res4b22_branch2c_weights", 2, (("conv", 2, 22, 2, "conv"), "weight")),  # ResNet101_vc-style long stage
    ("res3c_branch2a_weights", 2, (("conv", 1, 2, 0, "conv"), "weight")),
    ("bn2a_branch1_variance", 2, (("short", 0, 0, "bn"), "running_var")),
    ("fc_res3b_exc_offset", 2, (("se", 1, 1, 1), "bias")),  # SE_ResNet_vd
    ("conv6_1_prj_bn_mean", 4, (("short", 2, 0, "bn"), "running_mean")),  # SENet154_vd: stages numbered from 4
    ("conv2_3_x2_weights", 2, (("conv", 0, 2, 1, "conv"), "weight")),  # SE_ResNeXt50
    ("fc5_2_sqz_weights", 2, (("se", 3, 1, 0), "weight")),
    ("bnv1_3_scale", 2, (("stem", 2, "bn"), "weight")),  # ResNet_vc / ResNeXt_vd deep stem
    ("conv1_2_bn_offset", 2, (("stem", 1, "bn"), "bias")),  # SE_ResNeXt_vd deep stem
    ("res_conv1_weights", 2, (("stem", 0, "conv"), "weight")),  # ResNeXt 7x7 stem
    ("bn_conv1_mean", 2, (("stem", 0, "bn"), "running_mean")),
    ("conv3_bn_variance", 4, (("stem", 2, "bn"), "running_var")),  # SE_ResNeXt152 3x3 stem
    ("fc_0.w_0", 2, (("head",), "weight")),
    ("fc6_offset", 2, (("head",), "bias")),
    ("res2a_branch2a_scale", 2, None),  # a conv has no scale: no place
])
def test_model_zoo_parameter_names(key, first_stage, role):
    assert paddle_weights._static_role(key, first_stage) == role
