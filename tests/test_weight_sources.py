"""The weight-source registry and the Keras reader without TensorFlow: tiny synthetic .h5/.keras files written
with h5py in the layouts tf-keras 2.21 writes (legacy: groups with `layer_names`/`weight_names`; .keras: a zip
of config.json + model.weights.h5 with class-derived `layers/<class>[_N]/vars/<i>` paths). Parity with real
Keras files is tests/peers/test_keras_parity.py."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch

from resnets.cli import main as cli_main
from resnets.errors import ResnetsError, UnknownNameError
from resnets.models.config import ResNetConfig
from resnets.models.registry import get_config
from resnets.weights import convert as sources
from resnets.weights import keras as kr
from resnets.weights.factory import create_model, save_model

h5py = pytest.importorskip("h5py")


# --- synthetic Keras files ----------------------------------------------------------------------------
def _v1_layers(layout=(3, 4, 6, 3), width: int = 1) -> dict[str, dict[str, np.ndarray]]:
    """Every weighted layer of a Keras ResNet v1 by name, with tiny arrays (shapes fit no real network)."""
    conv = {"kernel": np.zeros((1, 1, width, width), np.float32), "bias": np.zeros(width, np.float32)}
    bn = {v: np.ones(width, np.float32) for v in ("gamma", "beta", "moving_mean", "moving_variance")}
    layers = {"conv1_conv": conv, "conv1_bn": bn}
    for stage, blocks in enumerate(layout):
        for block in range(blocks):
            prefix = f"conv{stage + 2}_block{block + 1}"
            for i in ((0, 1, 2, 3) if block == 0 else (1, 2, 3)):
                layers[f"{prefix}_{i}_conv"], layers[f"{prefix}_{i}_bn"] = conv, bn
    layers["predictions"] = {"kernel": np.zeros((width, 10), np.float32), "bias": np.zeros(10, np.float32)}
    return layers


def _write_legacy_h5(path, layers, model_name: str | None = None, chunks: int = 1) -> None:
    """model.save("m.h5") (with model_name: model_config and a model_weights group) or save_weights."""
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if model_name else f
        if model_name:
            config = {"class_name": "Functional", "config": {"name": model_name, "layers": [
                {"class_name": "Conv2D", "config": {"name": n}, "name": n} for n in layers]}}
            f.attrs["model_config"] = json.dumps(config)
        names = np.array([n.encode() for n in layers])
        if chunks == 1:
            root.attrs["layer_names"] = names
        else:  # as Keras splits a list past HDF5's 64 kB attribute limit (the deep ResNet-RS)
            for i, part in enumerate(np.array_split(names, chunks)):
                root.attrs[f"layer_names{i}"] = part
        for name, weights in layers.items():
            group = root.create_group(name)
            group.attrs["weight_names"] = np.array([f"{name}/{v}:0".encode() for v in weights])
            for var, value in weights.items():
                group.create_dataset(f"{name}/{var}:0", data=value)


def _cli(*args) -> int:
    return cli_main(["convert", *map(str, args)])


def _one_line_exit_2(capsys, *args, expect: str) -> str:
    code = _cli(*args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and expect in err, err
    return err


# --- bad Keras input: one line, exit 2, no output file -------------------------------------------------
def test_bare_weights_h5_is_refused_saying_what_to_save(tmp_path, capsys):
    src, out = tmp_path / "model.weights.h5", tmp_path / "out.safetensors"
    with h5py.File(src, "w") as f:  # tf-keras' save_weights("*.weights.h5"): class-derived paths, no names
        f.create_dataset("layers/conv2d/vars/0", data=np.zeros((3, 3, 3, 8), np.float32))
        f.create_group("vars")
    _one_line_exit_2(capsys, src, "--model", "resnet50a", "--out", out, expect="model.save('model.keras')")
    assert not out.exists()


def test_unsupported_architecture_is_named_with_the_supported_ones(tmp_path, capsys):
    src, out = tmp_path / "effnet.h5", tmp_path / "out.safetensors"
    _write_legacy_h5(src, {"stem_conv": {"kernel": np.zeros((3, 3, 3, 8), np.float32)}}, model_name="efficientnetb0")
    err = _one_line_exit_2(capsys, src, "--out", out, expect="'efficientnetb0'")
    assert "ResNetRS50/101/152/200/270/350/420" in err and "ResNet50V2/101V2/152V2" in err
    assert not out.exists()


def test_a_layout_no_keras_model_has_is_refused(tmp_path, capsys):
    src = tmp_path / "r18ish.h5"
    _write_legacy_h5(src, _v1_layers((2, 2, 2, 2)))
    _one_line_exit_2(capsys, src, "--out", tmp_path / "o.safetensors", expect="[2, 2, 2, 2] blocks per stage")


def test_shapes_that_do_not_fit_the_preset(tmp_path, capsys):
    src, out = tmp_path / "tiny.h5", tmp_path / "out.safetensors"
    _write_legacy_h5(src, _v1_layers(), model_name="resnet50")
    _one_line_exit_2(capsys, src, "--out", out, expect="weights do not fit resnet50a")
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # nor an atomic write's temporary file


def test_the_preset_must_be_the_one_the_keras_model_maps_to(tmp_path, capsys):
    """Keras v1 strides its first 1x1 conv: loading it into resnet50 (stride on the 3x3) would fit every shape
    and compute something else."""
    src = tmp_path / "r50.h5"
    _write_legacy_h5(src, _v1_layers())
    _one_line_exit_2(capsys, src, "--model", "resnet50", "--out", tmp_path / "o.safetensors",
                     expect="use --model resnet50a")


def test_chunked_layer_names_are_read_whole(tmp_path):
    src = tmp_path / "r50.h5"
    _write_legacy_h5(src, _v1_layers(), chunks=3)
    read = kr.read_keras_file(src)
    assert list(read.layers) == list(_v1_layers()) and kr.recognise(read).preset == "resnet50a"


def test_a_missing_layer_is_named(tmp_path, capsys):
    layers = _v1_layers()
    del layers["conv3_block2_2_bn"]
    src = tmp_path / "r50.h5"
    _write_legacy_h5(src, layers)
    _one_line_exit_2(capsys, src, "--out", tmp_path / "o.safetensors", expect="lacks conv3_block2_2_bn/moving_mean")


@pytest.mark.parametrize("payload", [kr.HDF5_MAGIC + b"\x00" * 64, b"PK\x03\x04garbage"])
def test_corrupt_keras_files(tmp_path, capsys, payload):
    src = tmp_path / "broken.keras"
    src.write_bytes(payload)
    _one_line_exit_2(capsys, src, "--from", "keras", "--model", "resnet50a", "--out", tmp_path / "o.safetensors",
                     expect="broken.keras")


def test_keras_zip_without_its_weights_is_refused(tmp_path):
    src = tmp_path / "m.keras"
    with zipfile.ZipFile(src, "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Functional", "config": {"layers": []}}))
    with pytest.raises(ResnetsError, match="not a complete .keras archive"):
        create_model("resnet50a", weights=src, source="keras")


def test_keras_zip_names_come_from_the_config_in_layer_order(tmp_path):
    """The weights h5 inside a .keras names layers by class and position (conv2d, conv2d_1, ...): the reader
    pairs them with config.json's layer names in order, skipping layers without variables."""
    layers = [("input_1", "InputLayer", {}), ("stem_7_stem_conv_1", "Conv2D", {"use_bias": False}),
              ("bn_a", "BatchNormalization", {"scale": False}), ("pad", "ZeroPadding2D", {}),
              ("head", "Conv2D", {})]
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_dataset("layers/conv2d/vars/0", data=np.full((1, 1, 3, 4), 1.0, np.float32))
        for i in range(3):  # no gamma: beta, moving_mean, moving_variance
            f.create_dataset(f"layers/batch_normalization/vars/{i}", data=np.full(4, float(i), np.float32))
        f.create_dataset("layers/conv2d_1/vars/0", data=np.full((1, 1, 4, 2), 2.0, np.float32))
        f.create_dataset("layers/conv2d_1/vars/1", data=np.full(2, 3.0, np.float32))
        f.create_group("layers/zero_padding2d/vars")
    src = tmp_path / "m.keras"
    config = {"class_name": "Functional", "config": {"name": "toy", "layers": [
        {"class_name": c, "config": {"name": n, **extra}, "name": n} for n, c, extra in layers]}}
    with zipfile.ZipFile(src, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", buffer.getvalue())
    assert kr.looks_like_keras(src)
    read = kr.read_keras_file(src)
    assert list(read.layers) == ["stem_7_stem_conv_1", "bn_a", "head"]
    assert set(read.layers["bn_a"]) == {"beta", "moving_mean", "moving_variance"}
    assert read.layers["bn_a"]["moving_variance"][0] == 2.0 and read.layers["head"]["bias"][0] == 3.0
    with pytest.raises(ResnetsError, match=r"ResNetRS with \[\] blocks per stage"):  # and no whole ResNet
        kr.recognise(read)


def test_rs_layer_names_lose_their_per_process_counter():
    assert kr._strip_counter("stem_12_stem_conv_1") == "stem_stem_conv_1"
    assert kr._strip_counter("BlockGroup2__block_0__conv_1") == "BlockGroup2__block_0__conv_1"


# --- what is folded -----------------------------------------------------------------------------------
def test_conv_bias_and_eps_fold_into_batchnorm_exactly():
    rng = np.random.default_rng(0)
    c = 5
    kf = kr.KerasFile(path=None, model_name=None)
    kf.layers = {"bn": {"gamma": rng.uniform(0.5, 1.5, c), "beta": rng.normal(size=c),
                        "moving_mean": rng.normal(size=c), "moving_variance": rng.uniform(0.5, 2, c)}}
    kf.configs = {"bn": {"epsilon": 1e-3}}
    mapper = kr._Mapper(kf, kr.Recognised(kr.FAMILIES["v1"], 50, "resnet50a", (3, 4, 6, 3)), target_eps=1e-5)
    bias = rng.normal(size=c).astype(np.float32)
    mapper.batchnorm("bn", "bn1", folded_bias=bias)
    z = rng.normal(size=(7, c)).astype(np.float32)
    w = kf.layers["bn"]
    keras = w["gamma"] * (z + bias - w["moving_mean"]) / np.sqrt(w["moving_variance"] + 1e-3) + w["beta"]
    bn = torch.nn.BatchNorm1d(c, eps=1e-5).eval()
    bn.load_state_dict({k.split(".", 1)[1]: v for k, v in mapper.out.items()}, strict=False)
    torch.testing.assert_close(bn(torch.from_numpy(z)), torch.from_numpy(keras.astype(np.float32)))


@pytest.mark.parametrize(("scale", "offset", "mean", "variance"),
                         [(1 / 255, 0.0, [0.485, 0.456, 0.406], [0.052441, 0.050176, 0.050625]),
                          (1 / 127.5, -1.0, [0.1, -0.2, 0.3], [4.0, 1.0, 0.25])])
def test_rescaling_and_normalization_become_our_mean_and_std(scale, offset, mean, variance):
    """For 0-255 RGB x: Keras feeds (x * scale + offset - m) / sqrt(v); ours (x / 255 - mean) / std."""
    kf = kr.KerasFile(path=None, model_name="resnet-rs-50")
    kf.classes = {"rescaling_3": "Rescaling", "normalization_3": "Normalization"}
    kf.configs = {"rescaling_3": {"scale": scale, "offset": offset},
                  "normalization_3": {"mean": mean, "variance": variance}}
    got = kr._preprocessing(kf, kr.Recognised(kr.FAMILIES["rs"], 50, "resnetrs50", (3, 4, 6, 3)))
    x = np.random.default_rng(1).uniform(0, 255, (10, 3))
    keras = (x * scale + offset - np.array(mean)) / np.sqrt(variance)
    ours = (x / 255 - np.array(got["mean"])) / np.array(got["std"])
    np.testing.assert_allclose(ours, keras, rtol=1e-9, atol=1e-9)


def test_caffe_preprocessing_with_the_channel_flip_in_conv1():
    """v1: Keras' conv1 sees BGR, 0-255 minus the BGR mean; our normalised RGB input with the converted
    mean/std, through conv1 with its input channels reversed, is the same image."""
    got = kr._preprocessing(kr.KerasFile(path=None, model_name=None), kr.Recognised(kr.FAMILIES["v1"], 50, "resnet50a", (3, 4, 6, 3)))
    x = np.random.default_rng(2).uniform(0, 255, (10, 3))
    keras_bgr = x[:, ::-1] - np.array(kr.CAFFE_MEAN_BGR)
    ours_rgb = (x / 255 - np.array(got["mean"])) / np.array(got["std"])
    np.testing.assert_allclose(ours_rgb[:, ::-1], keras_bgr, atol=1e-9)


# --- the registry -------------------------------------------------------------------------------------
def _timm_like_file(tmp_path, name="resnet10t"):
    path = tmp_path / f"{name}.pth"
    torch.save(create_model(name).state_dict(), path)
    return path


def test_auto_tells_torchvision_timm_and_ours_apart(tmp_path):
    tv = tmp_path / "tv.pth"
    torch.save(create_model("resnet18").state_dict(), tv)
    assert create_model("resnet18", weights=tv).weights_source == "torchvision"
    assert create_model("resnet10t", weights=_timm_like_file(tmp_path)).weights_source == "timm"
    ours = tmp_path / "ours.safetensors"
    save_model(create_model("resnet18"), ours)
    assert create_model("resnet18", weights=ours).weights_source == "resnets"


def test_from_torchvision_refuses_timm_keys_and_non_torchvision_presets(tmp_path, capsys):
    _one_line_exit_2(capsys, _timm_like_file(tmp_path, "resnet18d"), "--from", "torchvision", "--model", "resnet18",
                     "--out", tmp_path / "o.safetensors", expect="keys torchvision never writes")
    _one_line_exit_2(capsys, _timm_like_file(tmp_path, "resnet18d"), "--from", "torchvision", "--model",
                     "resnet18d", "--out", tmp_path / "o.safetensors", expect="resnet18d has no torchvision counterpart")
    assert _cli(_timm_like_file(tmp_path, "resnet18d"), "--from", "timm", "--model", "resnet18d",
                "--out", tmp_path / "o.safetensors") == 0


def test_torchvision_key_grammar():
    tv = create_model("resnext50_32x4d").state_dict()
    assert sources._has_torchvision_keys(tv)
    assert not sources._has_torchvision_keys(create_model("seresnet18").state_dict())
    assert sources.torchvision_can_build(get_config("wide_resnet50_2"))
    assert not sources.torchvision_can_build(get_config("resnet50a"))


def test_paddle_without_its_module_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sources, "_paddle_module", lambda: None)
    src = tmp_path / "ResNet50_vd_pretrained.pdparams"
    src.write_bytes(b"\x80\x04}.")
    assert sources.SOURCES["paddle"].detect(src)
    _one_line_exit_2(capsys, src, "--model", "resnet50_vd", "--out", tmp_path / "o.safetensors",
                     expect=sources.PADDLE_MISSING)


def test_unknown_source_suggests_the_closest(tmp_path):
    with pytest.raises(UnknownNameError, match="'keras'"):
        sources.read_weights(tmp_path / "x.h5", ResNetConfig(), "kears")


def test_model_name_is_needed_where_the_file_does_not_say(tmp_path, capsys):
    _one_line_exit_2(capsys, _timm_like_file(tmp_path), "--out", tmp_path / "o.safetensors", expect="--model")
