"""Backbone use: timm's features_only / out_indices / output_stride, torchvision's replace_stride_with_dilation,
frozen BN and GroupNorm, and gradient checkpointing. Peers are built with random weights and random BN
statistics, converted by our own path, and compared map by map."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
import torchvision
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from resnets import ResnetsError, create_model, load_model, save_model
from resnets.models.blocks import RESIDUAL_BLOCKS
from resnets.weights.convert import convert_state_dict
from tests.helpers import randomize_bn, relative_error


def _x(batch: int = 2, height: int = 65, width: int = 67, seed: int = 0) -> torch.Tensor:
    """Odd sizes on purpose: partial pooling windows and the dilated shortcut's padding show up at the border."""
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def _tiny(name: str = "resnet50d", **overrides) -> nn.Module:
    overrides.setdefault("width_multiplier", 0.25)
    overrides.setdefault("num_classes", 0 if overrides.get("features_only") else 10)
    return create_model(name, **overrides)


# --- features_only / output_stride against timm -----------------------------------------------------------
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_resnet50d_features_equal_timm(output_stride):
    torch.manual_seed(0)
    theirs = randomize_bn(timm.create_model("resnet50d", features_only=True, out_indices=(0, 1, 2, 3, 4),
                                            output_stride=output_stride))
    ours = create_model("resnet50d", features_only=True, out_indices=(0, 1, 2, 3, 4),
                        output_stride=output_stride).eval()
    ours.load_state_dict(convert_state_dict(theirs.state_dict(), "timm"), strict=True)
    assert ours.feature_info.channels() == theirs.feature_info.channels()
    assert ours.feature_info.reduction() == theirs.feature_info.reduction()
    assert ours.feature_info.module_name() == theirs.feature_info.module_name()
    x = _x()
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert len(got) == len(expected) == 5
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a.shape == b.shape, index
        assert b.std() > 1e-3 and relative_error(a, b) < 1e-4, index
    assert ours.feature_info.reduction() == [min(r, output_stride) for r in (2, 4, 8, 16, 32)]


@pytest.mark.parametrize("output_stride", [8, 16])
def test_preact_features_equal_timm_resnetv2(output_stride):
    """timm's resnetv2 feature maps (its forward_intermediates: stem conv, then every stage before the final
    norm) for the same weights; the full model's head and final norm are left out of our backbone."""
    torch.manual_seed(0)
    theirs = randomize_bn(timm.create_model("resnetv2_50d", output_stride=output_stride))
    ours = create_model("resnetv2_50d", features_only=True, out_indices=(0, 1, 2, 3, 4),
                        output_stride=output_stride).eval()
    state = convert_state_dict(theirs.state_dict(), "timm")
    assert sorted(ours.keys_not_built(state)) == sorted(k for k in state if k.startswith(("norm.", "head.")))
    ours.load_state_dict({k: v for k, v in state.items() if k not in ours.keys_not_built(state)}, strict=True)
    x = _x()
    with torch.no_grad():
        _, expected = theirs.forward_intermediates(x)
        got = ours(x)
    for a, b in zip(got, expected, strict=True):
        assert a.shape == b.shape and relative_error(a, b) < 1e-4
    assert ours.feature_info.module_name() == ["stem.conv3", "stages.0", "stages.1", "stages.2", "stages.3"]


@pytest.mark.parametrize(("dilate", "output_stride"), [([False, False, True], 16), ([False, True, True], 8)])
def test_torchvision_replace_stride_with_dilation(dilate, output_stride):
    torch.manual_seed(0)
    theirs = randomize_bn(torchvision.models.resnet50(replace_stride_with_dilation=dilate))
    ours = create_model("resnet50", output_stride=output_stride).eval()
    ours.load_state_dict(convert_state_dict(theirs.state_dict(), "torchvision"), strict=True)
    x = _x(batch=1)
    with torch.no_grad():
        assert relative_error(ours(x), theirs(x)) < 1e-4
        maps = ours.forward_stages(x)
    assert maps[-1].shape[-2:] == maps[-3 if output_stride == 8 else -2].shape[-2:]


def test_dilation_follows_the_first_dilation_rule():
    """Each dilated stage's first 3x3 keeps the dilation before it (timm first_dilation = torchvision
    previous_dilation); its shortcut pools at stride 1 with explicit zero padding (timm AvgPool2dSame)."""
    model = _tiny("resnet50d", output_stride=8)
    first3, first4 = model.layer3[0], model.layer4[0]
    assert (first3.conv2.dilation, first3.conv2.stride, model.layer3[1].conv2.dilation) == ((1, 1), (1, 1), (2, 2))
    assert (first4.conv2.dilation, model.layer4[2].conv2.dilation, model.layer4[2].conv2.padding) == ((2, 2), (4, 4),
                                                                                                      (4, 4))
    assert type(first3.downsample[0]).__name__ == "SamePadAvgPool2d"
    assert isinstance(model.layer2[0].downsample[0], nn.AvgPool2d)  # undilated: the usual 2x2/2
    basic = _tiny("resnet18", output_stride=16)
    assert basic.layer4[0].conv1.dilation == (1, 1) and basic.layer4[0].conv2.dilation == (2, 2)
    assert basic.layer4[0].downsample[0].stride == (1, 1)


@pytest.mark.parametrize("output_stride", [4, 12, 64, 0])
def test_impossible_output_stride_is_one_line(output_stride):
    with pytest.raises(ResnetsError) as info:
        create_model("resnet50", output_stride=output_stride)
    message = str(info.value)
    assert "\n" not in message and f"output_stride {output_stride}" in message and "8, 16, 32" in message


def test_keras_layout_dilates_its_strided_last_blocks():
    """With the stride on each stage's last block (Keras V2) the same rule applies block by block."""
    model = _tiny("resnet50v2", output_stride=16, features_only=True, out_indices=(1, 2, 3, 4))
    assert model.feature_info.reduction() == [8, 16, 16, 16]  # a Keras stage ends at the next one's stride
    last = model.stages[2].blocks[-1]
    assert last.conv2.stride == (1, 1) and last.conv2.dilation == (1, 1) and last.downsample is None
    assert model.stages[3].blocks[0].conv2.dilation == (2, 2)
    with torch.no_grad():
        assert [m.shape[-1] for m in model(_x())] == [9, 5, 5, 5]


# --- features_only structure, loading and errors ------------------------------------------------------------
def test_out_indices_build_only_what_they_need(tmp_path):
    model = _tiny(features_only=True, out_indices=(1, 2))
    names = {name for name, _ in model.named_children()}
    assert "layer2" in names and not {"layer3", "layer4", "fc", "global_pool"} & names
    with torch.no_grad():
        maps = model(_x())
    assert [m.shape[1] for m in maps] == model.feature_info.channels() == [64, 128]
    assert model.feature_info.reduction() == [4, 8] and [i["index"] for i in model.feature_info] == [1, 2]
    stem_only = _tiny(features_only=True, out_indices=(0,))
    assert not hasattr(stem_only, "maxpool") and not hasattr(stem_only, "layer1")
    with torch.no_grad():
        assert stem_only(_x())[0].shape == (2, 16, 33, 34)  # the deep stem's 64 channels at a quarter width
    assert stem_only.feature_info.channels() == [16] and stem_only.feature_info.reduction() == [2]


def test_classifier_weights_load_into_a_backbone(tmp_path):
    classifier = randomize_bn(_tiny(num_classes=10))
    path = tmp_path / "classifier.safetensors"
    save_model(classifier, path)
    backbone = create_model("resnet50d", weights=path, features_only=True, width_multiplier=0.25).eval()
    assert backbone.config.num_classes == 0 and not hasattr(backbone, "fc")
    assert backbone.feature_info.reduction() == [2, 4, 8, 16, 32]  # timm's default: every tap
    with torch.no_grad():
        expected = classifier.forward_intermediates(_x())
        for got, want in zip(backbone(_x()), expected, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    truncated = create_model("resnet50d", weights=path, features_only=True, out_indices=(1, 2), width_multiplier=0.25)
    assert len(truncated.state_dict()) < len(backbone.state_dict())
    # a backbone saves and reloads as one
    save_model(backbone, tmp_path / "backbone.safetensors")
    again = load_model(tmp_path / "backbone.safetensors").eval()
    assert again.config.features_only and again.config.feature_indices == (0, 1, 2, 3, 4)


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"out_indices": (5,)}, "out_indices"),
    ({"out_indices": (3, 1)}, "increasing"),
    ({"out_indices": ()}, "out_indices"),
    ({"num_classes": 10}, "num_classes=0"),
])
def test_bad_backbone_options_are_one_line(overrides, fragment):
    with pytest.raises(ResnetsError, match=fragment) as info:
        create_model("resnet50", features_only=True, **overrides)
    assert "\n" not in str(info.value)


def test_a_backbone_has_no_classifier():
    model = _tiny(features_only=True)
    with pytest.raises(ResnetsError, match="no classifier"):
        model.reset_classifier(5)
    with pytest.raises(ResnetsError, match="no classifier"):
        _ = model.classifier


# --- norm layers --------------------------------------------------------------------------------------------
def test_frozen_batchnorm_has_no_trainable_norm_and_ignores_train_mode(tmp_path):
    reference = randomize_bn(_tiny())
    path = tmp_path / "bn.safetensors"
    save_model(reference, path)
    frozen = create_model("resnet50d", weights=path, norm_layer="frozen_batchnorm", width_multiplier=0.25)
    norms = [m for m in frozen.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert norms and not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    assert all(not list(m.parameters()) for m in norms)
    assert not any("num_batches_tracked" in k for k in frozen.state_dict())
    trainable = {n for n, p in frozen.named_parameters() if p.requires_grad}
    assert trainable and all(("conv" in n or "downsample" in n or n.startswith("fc")) and "bn" not in n
                             for n in trainable)
    x = _x()
    frozen.train()
    with torch.no_grad():
        in_train = frozen(x)
        frozen.eval()
        torch.testing.assert_close(in_train, frozen(x), rtol=0, atol=0)
        torch.testing.assert_close(frozen(x), reference(x), rtol=1e-5, atol=1e-5)  # = BN in eval mode
    before = {k: v.clone() for k, v in frozen.state_dict().items() if "bn" in k}
    frozen.train()
    optimizer = torch.optim.SGD(frozen.parameters(), lr=0.1)
    frozen(x).sum().backward()
    optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in frozen.state_dict().items() if k in before)


def test_groupnorm_builds_and_trains_a_step():
    model = _tiny("resnet50d", norm_layer="groupnorm", norm_groups=8)
    norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and all(m.num_groups == 8 for m in norms)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = _x(), torch.tensor([1, 2])
    first = nn.functional.cross_entropy(model(x), y)
    first.backward()
    weight_before = norms[0].weight.detach().clone()
    optimizer.step()
    assert not torch.equal(weight_before, norms[0].weight)
    assert torch.isfinite(nn.functional.cross_entropy(model(x), y))
    with pytest.raises(ResnetsError, match="groupnorm: 8 channels do not split into 32 groups"):
        _tiny("resnet50d", norm_layer="groupnorm")


def test_timm_groupnorm_resnetv2_is_a_preset():
    """resnetv2_50d_gn is timm's GroupNorm(32) pre-activation net; parity in test_parity, structure here."""
    model = create_model("resnetv2_50d_gn", num_classes=0)
    assert {m.num_groups for m in model.modules() if isinstance(m, nn.GroupNorm)} == {32}


# --- gradient checkpointing ---------------------------------------------------------------------------------
def _count_block_calls(model: nn.Module) -> list[int]:
    calls = [0]
    for module in model.modules():
        if isinstance(module, RESIDUAL_BLOCKS):
            module.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("name", ["resnet50d", "resnetv2_50"])
def test_grad_checkpointing_gives_identical_gradients(name):
    torch.manual_seed(0)
    plain = _tiny(name, drop_path_rate=0.2, zero_init_last=False).train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.set_grad_checkpointing(True)
    calls = _count_block_calls(checkpointed)
    x, y = _x(), torch.tensor([3, 7])
    for model in (plain, checkpointed):
        torch.manual_seed(1)  # the same drop-path draws: checkpointing replays the RNG state on recompute
        nn.functional.cross_entropy(model(x), y).backward()
    blocks = sum(isinstance(m, RESIDUAL_BLOCKS) for m in plain.modules())
    assert calls[0] == 2 * blocks  # every block ran again in the backward pass
    for (n, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=n)
    # BN statistics were updated once, as without checkpointing (the recompute leaves them alone)
    for (n, a), (_, b) in zip(plain.named_buffers(), checkpointed.named_buffers(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6, msg=n)
    with torch.no_grad():
        calls[0] = 0
        checkpointed(x)
        assert calls[0] == blocks  # without gradients nothing is recomputed


def test_grad_checkpointing_from_the_config():
    model = _tiny(grad_checkpointing=True)
    assert model.grad_checkpointing and model.config.grad_checkpointing
    model.set_grad_checkpointing(False)
    assert not model.grad_checkpointing


# --- the CLI ------------------------------------------------------------------------------------------------
def test_info_shows_the_dilation_and_refuses_an_impossible_output_stride(capsys):
    from resnets.cli import main

    assert main(["info", "resnet50d", "--output-stride", "16"]) == 0
    out = capsys.readouterr().out
    assert "output stride 16 (dilation 1, 1, 1, 2)" in out and "layer4       3  2048 x 14 x 14" in out
    assert main(["info", "resnet50", "--output-stride", "12"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == ("error: invalid ResNetConfig: output_stride 12 is not possible for this network: "
                                 "choose one of 8, 16, 32\n")
