"""The ResNet module: backbone outputs, drop-path schedules, init, SE widths, stems, input checks, cost."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnets import ResnetsError, config_cost, count_cost, create_model, get_config, list_models
from resnets.models.blocks import BasicBlock, Bottleneck, PreActBottleneck
from resnets.models.cost import meta_model
from resnets.models.resnet import _max_pool, drop_path_rates


def _tiny(name: str = "resnet18", **overrides) -> nn.Module:
    """A preset at a quarter of its width: same structure, a fraction of the compute."""
    overrides.setdefault("width_multiplier", 0.25)
    return create_model(name, num_classes=overrides.pop("num_classes", 10), **overrides).eval()


def _blocks(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, BasicBlock | Bottleneck)]


def _structure(name: str, **overrides) -> nn.Module:
    """The full-size network on the meta device: module structure without spending time on weights."""
    return meta_model(get_config(name).replace(**overrides))


def _x(size: int = 64, channels: int = 3, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(0))


# --- backbone use -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "channels"), [("resnet18", [16, 32, 64, 128]), ("resnet50d", [64, 128, 256, 512]),
                                                ("resnetrs50", [64, 128, 256, 512])])
def test_forward_stages_shapes_and_strides(name, channels):
    model = _tiny(name)
    with torch.no_grad():
        stages = model.forward_stages(_x(96))
    assert [s.shape for s in stages] == [(2, c, 96 // r, 96 // r) for c, r in zip(channels, (4, 8, 16, 32), strict=True)]
    assert [(f["num_chs"], f["reduction"], f["module"]) for f in model.feature_info] == [(16, 2, "act1")] + [
        (c, r, f"layer{i + 1}") for i, (c, r) in enumerate(zip(channels, (4, 8, 16, 32), strict=True))]
    with torch.no_grad():
        taps = model.forward_intermediates(_x(96))
    assert taps[0].shape == (2, 16, 48, 48) and all(torch.equal(a, b) for a, b in zip(taps[1:], stages, strict=True))
    with torch.no_grad():
        features = model.forward_features(_x(96))
        torch.testing.assert_close(features, stages[-1])
        pooled = model.forward_head(features, pre_logits=True)
        assert pooled.shape == (2, model.num_features)
        torch.testing.assert_close(model.forward_head(features), model.fc(pooled))
        torch.testing.assert_close(model(_x(96)), model.fc(pooled))


def test_non_square_and_odd_inputs():
    model = _tiny()
    with torch.no_grad():
        stages = model.forward_stages(_x(64)[:, :, :, :50])
    assert stages[-1].shape[-2:] == (2, 2) and stages[0].shape[-2:] == (16, 13)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 33, 47)).shape == (1, 10)


def test_num_classes_zero_gives_pooled_features():
    model = _tiny(num_classes=0)
    assert isinstance(model.fc, nn.Identity)
    with torch.no_grad():
        out = model(_x())
        assert out.shape == (2, model.num_features) == (2, 128)
        torch.testing.assert_close(out, model.forward_head(model.forward_features(_x()), pre_logits=True))


def test_reset_classifier():
    model = _tiny()
    model.reset_classifier(3)
    assert model.fc.out_features == 3 and model.config.num_classes == 3
    with torch.no_grad():
        assert model(_x()).shape == (2, 3)
    model.reset_classifier(0)
    assert isinstance(model.fc, nn.Identity) and model.config.num_classes == 0


def test_in_chans():
    model = _tiny(in_chans=1)
    assert model.conv1.in_channels == 1
    with torch.no_grad():
        assert model(_x(channels=1)).shape == (2, 10)


# --- bad input ------------------------------------------------------------------------------------------
def test_too_small_input_is_a_user_error():
    model = _tiny()
    with pytest.raises(ResnetsError, match="too small.*at least 32x32"):
        model(_x(31))
    with pytest.raises(ResnetsError, match="too small"):
        model.forward_stages(torch.randn(1, 3, 64, 16))
    with torch.no_grad():
        assert model(_x(32)).shape == (2, 10)  # the total stride is the minimum


def test_wrong_channels_and_rank_are_user_errors():
    model = _tiny()
    with pytest.raises(ResnetsError, match="expected 3 input channels, got 1"):
        model(_x(channels=1))
    with pytest.raises(ResnetsError, match=r"\(N, C, H, W\)"):
        model(torch.randn(3, 64, 64))


# --- stochastic depth -----------------------------------------------------------------------------------
def test_linear_drop_path_schedule_as_timm():
    model = _structure("resnet50", drop_path_rate=0.1)
    rates = [b.drop_path.rate if b.drop_path is not None else 0.0 for b in _blocks(model)]
    assert len(rates) == 16
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1)
    assert rates == pytest.approx([0.1 * i / 15 for i in range(16)])
    assert _blocks(model)[0].drop_path is None  # a zero rate builds no module


def test_per_stage_drop_path_schedule_as_resnet_rs():
    config = get_config("resnetrs50").replace(drop_path_rate=0.2)
    assert drop_path_rates(config) == [[pytest.approx(0.2 * f)] * n for f, n in zip((0.4, 0.6, 0.8, 1.0), (3, 4, 6, 3),
                                                                                     strict=True)]
    model = _structure("resnetrs50", drop_path_rate=0.2)
    for stage, fraction in zip(model.stage_blocks, (0.4, 0.6, 0.8, 1.0), strict=True):
        assert {round(b.drop_path.rate, 6) for b in stage} == {round(0.2 * fraction, 6)}


def test_drop_path_acts_only_in_training():
    model = _tiny(drop_path_rate=0.5, zero_init_last=False)
    x = _x()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        torch.manual_seed(0)
        first = model.forward_features(x)
        torch.manual_seed(1)
        assert not torch.allclose(first, model.forward_features(x))


# --- dropout, init --------------------------------------------------------------------------------------
def test_dropout_only_in_train():
    model = _tiny(drop_rate=0.5)
    features = torch.randn(4, model.num_features, 2, 2)
    with torch.no_grad():
        pooled = features.mean((2, 3))
        torch.testing.assert_close(model.forward_head(features), model.fc(pooled))
        model.train()
        torch.manual_seed(0)
        dropped = model.forward_head(features, pre_logits=True)
        zero_fraction = (dropped == 0).float().mean().item()
        assert 0.3 < zero_fraction < 0.7
        kept = dropped != 0
        torch.testing.assert_close(dropped[kept], pooled[kept] * 2)  # inverted dropout scales by 1/(1-p)


def test_zero_init_last_makes_blocks_identity():
    model = _tiny("resnet50")
    blocks = _blocks(model)
    assert all(torch.count_nonzero(b.last_norm.weight) == 0 for b in blocks)
    block = model.layer1[1]  # identity shortcut: output = relu(input)
    x = torch.rand(2, block.conv1.in_channels, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(x))
    plain = _tiny("resnet50", zero_init_last=False)
    assert all(torch.all(b.last_norm.weight == 1) for b in _blocks(plain))
    assert isinstance(blocks[0].last_norm, nn.BatchNorm2d) and blocks[0].last_norm is blocks[0].bn3
    basic = _blocks(_tiny("resnet18"))[0]
    assert basic.last_norm is basic.bn2 and torch.count_nonzero(basic.bn2.weight) == 0


# --- architecture details -------------------------------------------------------------------------------
def test_se_reduced_widths():
    seresnet = _structure("seresnet50")
    assert (seresnet.layer1[0].se.fc1.in_channels, seresnet.layer1[0].se.fc1.out_channels) == (256, 16)
    assert seresnet.layer1[0].se.fc2.out_channels == 256
    assert seresnet.layer4[0].se.fc1.out_channels == 128  # 2048 / 16
    rs = _structure("resnetrs50")
    assert (rs.layer1[0].se.fc1.in_channels, rs.layer1[0].se.fc1.out_channels) == (256, 64)
    assert rs.layer4[0].se.fc1.out_channels == 512
    small = _structure("seresnet18")
    assert small.layer1[0].se.fc1.out_channels == 8  # 64 / 16 = 4, rounded up to the divisor 8
    assert _structure("resnet50").layer1[0].se is None


def test_se_scales_the_branch():
    model = _tiny("seresnet50", zero_init_last=False)
    se = model.layer1[0].se
    x = torch.randn(2, se.fc1.in_channels, 4, 4)
    with torch.no_grad():
        scale = torch.sigmoid(se.fc2(torch.relu(se.fc1(x.mean((2, 3), keepdim=True)))))
        torch.testing.assert_close(se(x), x * scale)


def test_stride_in_1x1():
    original, default = _structure("resnet50a"), _structure("resnet50")
    for stage in (original.layer2, original.layer3, original.layer4):
        assert stage[0].conv1.stride == (2, 2) and stage[0].conv2.stride == (1, 1)
    for stage in (default.layer2, default.layer3, default.layer4):
        assert stage[0].conv1.stride == (1, 1) and stage[0].conv2.stride == (2, 2)
    assert original.layer1[0].conv1.stride == (1, 1)
    assert config_cost(original.config).params == config_cost(default.config).params
    assert config_cost(original.config).macs < config_cost(default.config).macs  # the 3x3 runs at low resolution


@pytest.mark.parametrize(("name", "widths"), [("resnet50c", (32, 32, 64)), ("resnet50d", (32, 32, 64)),
                                              ("resnet50s", (64, 64, 128)), ("resnet50t", (24, 32, 64)),
                                              ("resnetrs50", (32, 32, 64))])
def test_deep_stems(name, widths):
    model = _structure(name)
    convs = [m for m in model.conv1 if isinstance(m, nn.Conv2d)]
    assert tuple(c.out_channels for c in convs) == widths
    assert [c.stride for c in convs] == [(2, 2), (1, 1), (1, 1)]
    if name == "resnetrs50":  # a learned 3x3/2 conv replaces the max-pool
        assert isinstance(model.maxpool[0], nn.Conv2d) and model.maxpool[0].stride == (2, 2)
    else:
        assert isinstance(model.maxpool, nn.MaxPool2d)


def test_plain_stem_and_shortcuts():
    plain, d = _structure("resnet50"), _structure("resnet50d")
    assert plain.conv1.kernel_size == (7, 7) and plain.conv1.stride == (2, 2)
    assert plain.layer2[0].downsample[0].stride == (2, 2)  # strided 1x1 conv
    pool = d.layer2[0].downsample[0]
    assert isinstance(pool, nn.AvgPool2d) and pool.ceil_mode and not pool.count_include_pad
    assert d.layer2[0].downsample[1].stride == (1, 1)
    assert isinstance(d.layer1[0].downsample[0], nn.Identity)  # stride 1: no pooling
    assert plain.layer1[1].downsample is None


def test_grouped_and_wide_widths():
    resnext = _structure("resnext50_32x4d")
    assert resnext.layer1[0].conv2.groups == 32
    assert [resnext.stage_blocks[i][0].conv2.out_channels for i in range(4)] == [128, 256, 512, 1024]
    wide = _structure("wide_resnet50_2")
    assert wide.layer4[2].conv2.out_channels == 1024 and wide.layer4[2].conv3.out_channels == 2048


def test_activation_choice():
    model = _tiny("resnet50", act="silu")
    kinds = {type(m) for m in model.modules()}
    assert nn.SiLU in kinds and nn.ReLU not in kinds
    with torch.no_grad():
        assert torch.isfinite(model(_x())).all()


def test_width_multiplier():
    model = _tiny("resnet50", width_multiplier=0.5)
    assert model.conv1.out_channels == 32 and model.num_features == 1024
    assert model.feature_info.channels() == [32, 128, 256, 512, 1024]
    assert model.fc.in_features == 1024
    full, half = config_cost(get_config("resnet50")), config_cost(get_config("resnet50").replace(width_multiplier=0.5))
    assert 0.2 < half.macs / full.macs < 0.3  # MACs scale with width squared


def test_zero_init_last_still_trains():
    """The zero gammas get gradients, so blocks leave identity after one step (and the stem learns)."""
    model = _tiny()
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    stem = model.conv1.weight.detach().clone()
    loss = nn.functional.cross_entropy(model(_x()), torch.tensor([1, 2]))
    loss.backward()
    optimizer.step()
    assert all(torch.count_nonzero(b.last_norm.weight) > 0 for b in _blocks(model))
    assert not torch.equal(stem, model.conv1.weight)


# --- pre-activation (timm resnetv2, Keras ResNetV2) ------------------------------------------------------
def _randomised(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def test_preact_block_normalises_its_input_not_its_output():
    """He et al. 2016: x + F(act(norm1(x))), the projection reads the pre-activated input, no act after the add."""
    model = _randomised(_tiny("resnetv2_50"))
    first, second = model.stage_blocks[0][0], model.stage_blocks[0][1]
    assert isinstance(first, PreActBottleneck)
    x = torch.randn(2, first.conv1.in_channels, 8, 8)
    with torch.no_grad():
        pre = torch.relu(first.norm1(x))
        branch = first.conv3(torch.relu(first.norm3(first.conv2(torch.relu(first.norm2(first.conv1(pre)))))))
        torch.testing.assert_close(first(x), branch + first.downsample(pre))
        y = first(x)
        assert (y < 0).any()  # no act after the add
        pre2 = torch.relu(second.norm1(y))
        branch2 = second.conv3(torch.relu(second.norm3(second.conv2(torch.relu(second.norm2(second.conv1(pre2)))))))
        torch.testing.assert_close(second(y), branch2 + y)  # identity shortcut: the raw input
        features = model.forward_features(_x())
        stages = model.forward_stages(_x())
        torch.testing.assert_close(features, torch.relu(model.norm(stages[-1])))  # the final norm + act


def test_preact_uses_timm_resnetv2_names():
    model = _tiny("resnetv2_50d")
    keys = set(model.state_dict())
    assert {"stem.conv1.weight", "stem.norm1.weight", "stem.conv3.weight", "stages.0.blocks.0.norm1.running_var",
            "stages.0.blocks.0.downsample.conv.weight", "stages.3.blocks.2.conv3.weight", "norm.weight",
            "head.fc.weight", "head.fc.bias"} <= keys
    assert not any(k.startswith(("conv1", "bn1", "layer", "fc.")) for k in keys)
    assert "stem.norm3.weight" not in keys  # pre-activation: nothing normalises the stem's output
    assert model.head.fc.weight.shape == (10, model.num_features, 1, 1) and model.head_keys[0] == "head.fc.weight"
    assert isinstance(model.stage_blocks[1][0].downsample.pool, nn.AvgPool2d)
    plain = _tiny("resnetv2_50")
    assert isinstance(plain.stem.conv, nn.Conv2d) and plain.stem.conv.kernel_size == (7, 7)
    assert plain.stage_blocks[1][0].downsample.conv.stride == (2, 2)


def test_preact_classifier_reset_and_zero_init():
    model = _tiny("resnetv2_18")
    model.reset_classifier(3)
    assert model.classifier.out_channels == 3
    with torch.no_grad():
        assert model(_x()).shape == (2, 3)
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(_x()).shape == (2, model.num_features)
    zeroed = _tiny("resnetv2_50", zero_init_last=True)
    block = zeroed.stage_blocks[0][1]
    assert torch.count_nonzero(block.conv3.weight) == 0
    x = torch.randn(1, block.conv1.in_channels, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)  # identity at init (timm zeroes the last conv)


def test_preact_checkpoint_head_is_found(tmp_path):
    """The class count is read from head.fc, and reset_head leaves head.fc out (not fc)."""
    path = tmp_path / "w.pth"
    torch.save(_tiny("resnetv2_18", num_classes=7).state_dict(), path)
    assert create_model("resnetv2_18", weights=path, width_multiplier=0.25).config.num_classes == 7
    other = create_model("resnetv2_18", weights=path, num_classes=3, reset_head=True, width_multiplier=0.25)
    assert other.classifier.out_channels == 3
    with pytest.raises(ResnetsError, match="pass num_classes=7"):
        create_model("resnetv2_18", weights=path, num_classes=3, width_multiplier=0.25)


@pytest.mark.parametrize("name", ["resnetv2_50d", "resnet50v2", "resnetv2_18"])
def test_fuse_folds_the_preact_convs(name):
    """BN folding (inference/fuse.py) folds conv1->norm2 and conv2->norm3 of every pre-activation block and the
    deep stem's norms; each block's norm1 and the final norm see a residual sum and stay."""
    from resnets.inference.fuse import count_batchnorms, fuse_model

    model = _randomised(_tiny(name))
    fused = fuse_model(model)
    blocks = sum(len(stage) for stage in model.stage_blocks)
    assert count_batchnorms(fused) == blocks + 1
    with torch.no_grad():
        expected = model(_x())
        assert (fused(_x()) - expected).abs().max() <= 1e-5 * max(1.0, expected.abs().max().item())


def test_keras_v2_layout():
    """tf_keras applications resnet.py stack2/block2: the stride on each stage's last 3x3, a tensor-free 1x1
    max-pool shortcut there, biased convs into the residual stream, zero-padded stem pool, eps 1.001e-5."""
    model = _structure("resnet50v2")
    for index, stage in enumerate(model.stage_blocks):
        strides = [block.conv2.stride[0] for block in stage]
        assert strides == [1] * (len(stage) - 1) + [2 if index < 3 else 1]
        assert stage[0].downsample.conv.stride == (1, 1) and stage[0].downsample.conv.bias is not None
        assert all(block.conv3.bias is not None and block.conv1.bias is None for block in stage)
        if index < 3:
            assert isinstance(stage[-1].downsample, nn.MaxPool2d) and stage[-1].downsample.kernel_size == 1
    assert model.stem.conv.bias is not None and isinstance(model.stem.pool[0], nn.ZeroPad2d)
    assert model.norm.eps == 1.001e-5 and [f["reduction"] for f in model.feature_info] == [2, 8, 16, 32, 32]
    assert get_config("resnet50v2").mean == (0.5, 0.5, 0.5)
    # same tensors as timm's resnetv2_50 plus the biases
    extra = set(_structure("resnet50v2").state_dict()) - set(_structure("resnetv2_50").state_dict())
    assert extra and all(k.endswith(".bias") and ("conv" in k) for k in extra)


def test_zero_padded_max_pool_differs_where_the_stem_output_is_negative():
    x = -torch.rand(1, 2, 6, 6) - 0.1
    zero_pad, neg_inf_pad = _max_pool(get_config("resnet50v2")), _max_pool(get_config("resnetv2_50"))
    assert torch.equal(zero_pad(x)[..., 0, 0], torch.zeros(1, 2))  # the border window sees a padded zero
    assert (neg_inf_pad(x) < 0).all()
    assert torch.equal(zero_pad(x.abs()), neg_inf_pad(x.abs()))  # after a ReLU the two agree


# --- PaddleClas' own tweaks -------------------------------------------------------------------------------
def test_paddleclas_projects_its_first_shortcut():
    vb, tv = _structure("resnet18_vb"), _structure("resnet18")
    assert tv.layer1[0].downsample is None
    conv = vb.layer1[0].downsample[0]
    assert (conv.in_channels, conv.out_channels, conv.stride) == (64, 64, (1, 1)) and vb.layer1[1].downsample is None
    vd = _structure("resnet18_vd")
    assert isinstance(vd.layer1[0].downsample[0], nn.Identity) and vd.layer1[0].downsample[1].out_channels == 64
    # a bottleneck's first block projects anyway: the flag changes nothing there
    r50 = get_config("resnet50")
    assert config_cost(r50.replace(first_block_projection=True)).params == config_cost(r50).params


def test_paddleclas_se_widths_and_wide_stem():
    assert _structure("se_resnet18_vd").layer1[0].se.fc1.out_channels == 4  # int(64 / 16), timm would round to 8
    assert _structure("seresnet18").layer1[0].se.fc1.out_channels == 8
    for name in ("se_resnext50_vd_32x4d", "senet154_vd", "se_resnext152_64x4d"):
        model = _structure(name)
        assert [c.out_channels for c in model.conv1 if isinstance(c, nn.Conv2d)] == [64, 64, 128]
        assert model.layer1[0].conv1.in_channels == 128
    assert isinstance(_structure("senet154_vd").layer2[0].downsample[0], nn.AvgPool2d)
    assert _structure("se_resnext152_64x4d").layer2[0].downsample[0].stride == (2, 2)


# --- cost -----------------------------------------------------------------------------------------------
# Counting a full 100+ layer network on the meta device takes ~0.5-2 s, so those presets run as slow.
COST_CASES = [pytest.param(n, marks=pytest.mark.slow) if sum(get_config(n).layers) > 16 else n for n in list_models()]


@pytest.mark.parametrize("name", COST_CASES)
def test_fast_cost_equals_counting_the_full_network(name):
    """config_cost builds each stage with <= 2 blocks and extrapolates; it must equal the full count."""
    config = get_config(name)
    full = meta_model(config)
    for size in (config.input_size, 97):
        assert config_cost(config, size).to_dict() == count_cost(full, size).to_dict()


def test_cost_of_a_real_model_matches_meta_and_its_shapes():
    model = _tiny("resnet50d")
    cost = count_cost(model, 64)
    assert cost.to_dict() == config_cost(model.config, 64).to_dict()
    assert [s.name for s in cost.stages] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    with torch.no_grad():
        shapes = [tuple(t.shape[1:]) for t in model.forward_stages(_x(64, batch=1))]
    assert [s.output_shape for s in cost.stages[1:5]] == shapes
    assert cost.params == sum(p.numel() for p in model.parameters()) == sum(s.params for s in cost.stages)
    assert cost.macs == sum(s.macs for s in cost.stages) and cost.gflops == 2 * cost.gmacs
    assert [s.blocks for s in cost.stages] == [0, 3, 4, 6, 3, 0]
    assert model.training is False


@pytest.mark.parametrize("name", ["resnetv2_50d", "resnet50v2"])
def test_cost_of_a_preact_model_matches_meta_and_its_shapes(name):
    model = _tiny(name)
    cost = count_cost(model, 64)
    assert cost.to_dict() == config_cost(model.config, 64).to_dict()
    with torch.no_grad():
        shapes = [tuple(t.shape[1:]) for t in model.forward_stages(_x(64, batch=1))]
    assert [s.output_shape for s in cost.stages[1:5]] == shapes
    assert cost.params == sum(p.numel() for p in model.parameters()) == sum(s.params for s in cost.stages)
    assert [s.blocks for s in cost.stages] == [0, 3, 4, 6, 3, 0]


def test_cost_results_are_independent_copies():
    first = config_cost(get_config("resnet18"))
    first.stages.clear()
    first.params = 0
    again = config_cost(get_config("resnet18"))
    assert again.params == 11_689_512 and len(again.stages) == 6


def test_cost_rejects_tiny_sizes():
    with pytest.raises(ResnetsError, match="too small"):
        config_cost(get_config("resnet50"), 16)
    with pytest.raises(ResnetsError, match="too small"):
        count_cost(_tiny(), 8)


def test_macs_scale_with_resolution():
    config = get_config("resnet50")
    small, large = config_cost(config, 128), config_cost(config, 256)
    assert small.params == large.params
    conv_small, conv_large = small.macs - small.stages[-1].macs, large.macs - large.stages[-1].macs
    assert conv_large == 4 * conv_small  # all conv outputs are exactly 4x larger at 2x the side
