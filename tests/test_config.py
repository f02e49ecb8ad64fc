"""ResNetConfig and the preset registry: JSON round trips, overrides, name suggestions, invalid values."""

from __future__ import annotations

import dataclasses
import json

import pytest

import resnets
from resnets import ResNetConfig, ResnetsError, UnknownNameError, get_config, list_models
from resnets.models import registry


@pytest.mark.parametrize("name", list_models())
def test_json_round_trip_every_preset(name):
    config = get_config(name)
    text = config.to_json()
    json.loads(text)  # plain JSON, no Python-only values
    back = ResNetConfig.from_json(text)
    assert back == config and hash(back) == hash(config)
    assert back.description == config.description  # not part of equality, but must survive
    assert back.to_dict() == config.to_dict()
    assert isinstance(back.layers, tuple) and isinstance(back.mean, tuple)
    assert back.name == name


def test_registry_size_and_natural_order():
    names = list_models()
    assert len(names) >= 45 and len(set(names)) == len(names)
    assert names.index("resnet18") < names.index("resnet50") < names.index("resnet101")
    assert list_models("resnet5?d") == ["resnet50d"]
    assert set(list_models("resnet*_vd")) == {"resnet18_vd", "resnet34_vd", "resnet50_vd", "resnet101_vd",
                                             "resnet152_vd", "resnet200_vd"}
    assert set(list_models("*_vb")) == {"resnet18_vb", "resnet34_vb"}
    assert list_models("resnetv2_5*") == ["resnetv2_50", "resnetv2_50d", "resnetv2_50d_gn", "resnetv2_50t"]
    assert list_models("nothing*") == []


def test_required_presets_exist():
    required = ["resnet18", "resnet26", "resnet34", "resnet50", "resnet101", "resnet152", "resnet200",
                "resnet50c", "resnet50d", "resnext50_32x4d", "resnext101_32x4d", "resnext101_32x8d",
                "resnext101_32x16d", "resnext101_64x4d", "resnext152_32x4d", "wide_resnet50_2", "wide_resnet101_2",
                "seresnet18", "seresnet34", "seresnet50", "seresnet101", "seresnet152", "seresnet50d",
                "seresnext50_32x4d", "seresnext101_32x4d", "seresnext101_32x8d", "resnet50_vd", "resnet50_vc",
                "resnet200_vd"] + [f"resnetrs{d}" for d in (50, 101, 152, 200, 270, 350, 420)]
    # issue 12: timm's BN pre-activation nets, Keras' V2, and the PaddleClas zoo under its lower-case names
    required += [f"resnetv2_{d}{s}" for d in (18, 34, 50, 101, 152) for s in ("", "d")] + ["resnetv2_50t",
                                                                                           "resnetv2_50d_gn"]
    required += ["resnet50v2", "resnet101v2", "resnet152v2", "resnet18_vb", "resnet34_vb", "se_resnet18_vd",
                 "se_resnet34_vd", "se_resnet50_vd", "se_resnext50_32x4d", "se_resnext101_32x4d",
                 "se_resnext152_64x4d", "se_resnext50_vd_32x4d", "senet154_vd", "resnext50_64x4d", "resnext152_64x4d"]
    required += [f"resnext{d}_vd_{c}x4d" for d in (50, 101, 152) for c in (32, 64)]
    assert sorted(set(required) - set(list_models())) == []
    for depth in (18, 26, 34, 50, 101, 152, 200):
        assert {f"resnet{depth}c", f"resnet{depth}d"} <= set(list_models())


def test_resnet_rs_defaults_follow_the_recipe():
    """docs/reference.md §3.2: dropout 0.25 (0.4 for RS-350/420), stochastic depth 0.1 from RS-200 on, per stage."""
    for depth, drop, drop_path in [(50, 0.25, 0.0), (101, 0.25, 0.0), (152, 0.25, 0.0), (200, 0.25, 0.1),
                                   (270, 0.25, 0.1), (350, 0.4, 0.1), (420, 0.4, 0.1)]:
        config = get_config(f"resnetrs{depth}")
        assert (config.drop_rate, config.drop_path_rate, config.drop_path_schedule) == (drop, drop_path, "stage")
        assert (config.se_ratio, config.stem_pool, config.shortcut, config.stem_type) == (0.25, "conv", "avg", "deep")
        assert config.interpolation == "bicubic"
    assert (get_config("resnetrs50").input_size, get_config("resnetrs50").eval_size) == (160, 224)


def test_overrides_make_a_new_config():
    base = get_config("resnet50")
    changed = base.replace(drop_path_rate=0.05, act="silu", num_classes=10)
    assert (changed.drop_path_rate, changed.act, changed.num_classes) == (0.05, "silu", 10)
    assert (base.drop_path_rate, base.act, base.num_classes) == (0.0, "relu", 1000)  # preset untouched
    assert changed.layers == base.layers and changed != base
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.num_classes = 3  # type: ignore[misc]
    model = resnets.create_model("resnet18", num_classes=7, width_multiplier=0.25, drop_rate=0.1)
    assert (model.config.num_classes, model.config.width_multiplier, model.config.drop_rate) == (7, 0.25, 0.1)


def test_json_lists_become_tuples():
    config = ResNetConfig.from_dict({"layers": [1, 1, 1, 1], "block": "basic", "mean": [0.5, 0.5, 0.5]})
    assert config.layers == (1, 1, 1, 1) and config.mean == (0.5, 0.5, 0.5)
    hash(config)


@pytest.mark.parametrize(("typo", "expected"), [
    ("resnet5O", "resnet50"), ("resnet50-d", "resnet50d"), ("resnext50_32x4", "resnext50_32x4d"),
    ("seresnet5", "seresnet50"), ("resnetrs500", "resnetrs50"),
])
def test_unknown_model_suggests_closest(typo, expected):
    with pytest.raises(UnknownNameError) as info:
        get_config(typo)
    message = str(info.value)
    assert typo in message and repr(expected) in message and "\n" not in message
    with pytest.raises(ResnetsError, match="did you mean"):
        resnets.create_model(typo)


def test_unknown_field_suggests_closest():
    with pytest.raises(UnknownNameError, match="'drop_rate'"):
        get_config("resnet50").replace(dropout_rate=0.1)
    with pytest.raises(UnknownNameError, match="'drop_path_rate'"):
        ResNetConfig.from_dict({"drop_path": 0.1})
    with pytest.raises(UnknownNameError, match="'se_ratio'"):
        resnets.create_model("resnet18", se_ration=0.25)


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("block", "dense", "block must be"),
    ("layers", (), "layers must be"),
    ("layers", (3, 0, 6, 3), "layers must be"),
    ("stage_planes", (64, 128), "one entry per stage"),
    ("stem_type", "huge", "stem_type"),
    ("stem_pool", "avg", "stem_pool"),
    ("shortcut", "dense", "shortcut"),
    ("act", "gelu", "act must be"),
    ("drop_path_schedule", "cosine", "drop_path_schedule"),
    ("se_ratio", 1.5, "se_ratio"),
    ("drop_rate", 1.0, "drop_rate"),
    ("drop_path_rate", -0.1, "drop_path_rate"),
    ("width_multiplier", 0.0, "width_multiplier"),
    ("num_classes", -1, "num_classes"),
    ("in_chans", 0, "in_chans"),
    ("input_size", 16, "input_size"),
    ("crop_pct", 0.0, "crop_pct"),
    ("interpolation", "lanczos", "interpolation"),
    ("cardinality", 0, "cardinality"),
    ("stride_block", "middle", "stride_block"),
    ("residual_bias", True, "residual_bias needs preact"),
    ("norm_layer", "layernorm", "norm_layer"),
    ("norm_groups", 0, "norm_groups"),
    ("output_stride", 4, "output_stride 4 is not possible"),
    ("output_stride", 24, "choose one of 8, 16, 32"),
    ("out_indices", (0, 5), "out_indices"),
    ("out_indices", (-1,), "out_indices"),
    ("out_indices", 3, "out_indices"),
    ("out_indices", ("a", 1), "out_indices"),
    ("features_only", True, "use num_classes=0"),
])
def test_invalid_values_are_one_line_errors(field, value, fragment):
    with pytest.raises(ResnetsError, match=fragment) as info:
        get_config("resnet50").replace(**{field: value})
    assert "\n" not in str(info.value) and str(info.value).startswith("invalid ResNetConfig")


def test_preact_refuses_the_conv_stem_pool():
    with pytest.raises(ResnetsError, match="stem_pool='conv'"):
        get_config("resnetv2_50").replace(stem_pool="conv")


def test_output_strides_follow_the_stage_count():
    assert get_config("resnet50").output_strides == (8, 16, 32)
    three = get_config("resnet50").replace(layers=(2, 2, 2), stage_planes=(64, 128, 256))
    assert three.output_strides == (8, 16) and three.output_stride is None  # its own stride is 16
    with pytest.raises(ResnetsError, match="choose one of 8, 16$"):
        three.replace(output_stride=32)
    assert get_config("resnet50v2").output_strides == (8, 16, 32)


def test_basic_blocks_refuse_groups():
    with pytest.raises(ResnetsError, match="basic blocks"):
        get_config("resnet18").replace(cardinality=32)


def test_bad_json():
    with pytest.raises(ResnetsError, match="not valid JSON"):
        ResNetConfig.from_json("{not json")
    with pytest.raises(ResnetsError, match="must be an object"):
        ResNetConfig.from_json("[1, 2]")


def test_derived_properties():
    assert get_config("resnet50").num_features == 2048
    assert get_config("resnet18").num_features == 512
    assert get_config("resnet50").replace(width_multiplier=0.5).num_features == 1024
    assert get_config("resnetrs101").eval_size == 288 and get_config("resnet50").eval_size == 224
    half = get_config("resnet50").replace(width_multiplier=0.5)
    assert [half.scaled(c) for c in (64, 128, 256, 512)] == [32, 64, 128, 256]
    assert get_config("resnet50").replace(width_multiplier=0.01).scaled(64) == 8  # never below 8


@pytest.fixture
def scratch_preset():
    yield "my_resnet_for_test"
    registry._PRESETS.pop("my_resnet_for_test", None)


def test_register_a_user_preset(scratch_preset):
    config = get_config("resnet18").replace(layers=(1, 1, 1, 1), description="tiny")
    registered = resnets.register(scratch_preset, config)
    assert registered.name == scratch_preset and get_config(scratch_preset) == registered
    assert scratch_preset in list_models()
    with pytest.raises(ResnetsError, match="already exists"):
        resnets.register(scratch_preset, config)
    resnets.register(scratch_preset, config.replace(num_classes=5), overwrite=True)
    assert get_config(scratch_preset).num_classes == 5
