"""Output parity with the peers: their model's weights, converted, give our model the same logits, and our
weights load back into theirs. Every preset is checked against some peer-built network:

* presets timm or torchvision also name: their own definition (the set is computed, none may be skipped);
* the rest: a timm/torchvision definition changed in one documented way (PaddleClas layout, C stem, ...).

Models are randomly initialised with a fixed seed and every BatchNorm gets random gamma/beta/running stats,
so a zero-initialised gamma cannot hide a wrong or missing branch.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from functools import partial

import pytest
import timm
import torch
import torchvision
from timm.layers import SEModule
from torch import nn

from resnets import ResNet, create_model, get_config, list_models
from resnets.weights.convert import convert_state_dict
from resnets.weights.load import load_into

TIMM_SHARED = sorted(set(list_models()) & set(timm.list_models()))
TORCHVISION_SHARED = sorted(set(list_models()) & set(torchvision.models.list_models()))

# Marked slow (still run by `make test`, skipped by `make test-fast`): every network deeper than 50 layers,
# which includes the giants whose two copies alone take seconds to build. They only repeat blocks that the
# fast set checks at 10-50 layers, where every stem, shortcut, stride placement, SE ratio, grouping and
# width of the zoo appears; the fast set takes ~25 s on one core, the whole file ~2-3 min.
GIANTS = {"resnetrs270", "resnetrs350", "resnetrs420", "resnext101_32x16d", "resnext101_32x32d",
          "wide_resnet101_2", "seresnet269d"}


def _is_slow(name: str) -> bool:
    return sum(get_config(name).layers) > 16  # [3, 4, 6, 3] = 16 blocks = 50 layers


SLOW = {name for name in list_models() if _is_slow(name)}


def _torchvision_stride_in_1x1(name: str) -> nn.Module:
    """torchvision's ResNet with each downsampling block's stride moved from the 3x3 to the first 1x1:
    the original (Caffe, mmpretrain style='caffe') bottleneck."""
    model = torchvision.models.get_model(name, weights=None)
    for stage in (model.layer2, model.layer3, model.layer4):
        stage[0].conv1.stride, stage[0].conv2.stride = (2, 2), (1, 1)
    return model


def _first_block_projected(model: nn.Module, avg: bool) -> nn.Module:
    """timm's net with PaddleClas' projection shortcut in its first block (where shapes match): 1x1 conv + BN,
    after timm's stride-1 pool slot (an Identity) in the D form."""
    channels = model.layer1[0].conv1.in_channels
    projection = [nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels)]
    model.layer1[0].downsample = nn.Sequential(nn.Identity(), *projection) if avg else nn.Sequential(*projection)
    return model


# PaddleClas' SE: reduced width int(C / 16), no rounding to 8 (timm's SEModule with divisor 1).
PADDLE_SE = {"block_args": {"attn_layer": partial(SEModule, rd_divisor=1)}}
PADDLE_VD_WIDE = {"stem_type": "deep", "stem_width": 64, "avg_down": True}  # the SE-ResNeXt/SENet _vd stem
LAYERS_101, LAYERS_152 = (3, 4, 23, 3), (3, 8, 36, 3)

# Presets no peer names: timm's definition of a sibling with one change (keyword passed to timm's own
# model function, or the first block's shortcut), or torchvision's with the stride moved.
DERIVED_PEERS: dict[str, tuple[str, Callable[[], nn.Module]]] = {
    "resnet18c": ("timm", lambda: timm.create_model("resnet18d", avg_down=False)),
    "resnet26c": ("timm", lambda: timm.create_model("resnet26d", avg_down=False)),
    "resnet34c": ("timm", lambda: timm.create_model("resnet34d", avg_down=False)),
    "resnet200c": ("timm", lambda: timm.create_model("resnet200d", avg_down=False)),
    "resnext152_32x4d": ("timm", lambda: timm.create_model("resnext101_32x4d", layers=(3, 8, 36, 3))),
    "seresnet50d": ("timm", lambda: timm.create_model("seresnet152d", layers=(3, 4, 6, 3))),
    "resnet200_vd": ("timm", lambda: timm.create_model("resnet200d", layers=(3, 12, 48, 3))),
    "resnet50a": ("torchvision", lambda: _torchvision_stride_in_1x1("resnet50")),
    "resnet101a": ("torchvision", lambda: _torchvision_stride_in_1x1("resnet101")),
    "resnet152a": ("torchvision", lambda: _torchvision_stride_in_1x1("resnet152")),
    # PaddleClas (ppcls/arch/backbone): its basic-block nets project the first block's shortcut ...
    "resnet18_vb": ("timm", lambda: _first_block_projected(timm.create_model("resnet18"), avg=False)),
    "resnet34_vb": ("timm", lambda: _first_block_projected(timm.create_model("resnet34"), avg=False)),
    "resnet18_vd": ("timm", lambda: _first_block_projected(timm.create_model("resnet18d"), avg=True)),
    "resnet34_vd": ("timm", lambda: _first_block_projected(timm.create_model("resnet34d"), avg=True)),
    "se_resnet18_vd": ("timm", lambda: _first_block_projected(timm.create_model(
        "seresnet18", stem_type="deep", stem_width=32, avg_down=True, **PADDLE_SE), avg=True)),
    "se_resnet34_vd": ("timm", lambda: _first_block_projected(timm.create_model(
        "seresnet34", stem_type="deep", stem_width=32, avg_down=True, **PADDLE_SE), avg=True)),
    "se_resnet50_vd": ("timm", lambda: timm.create_model("seresnet152d", layers=(3, 4, 6, 3), **PADDLE_SE)),
    # ... its ResNeXt zoo has 64x4d and D forms timm does not name ...
    "resnext50_64x4d": ("timm", lambda: timm.create_model("resnext50_32x4d", cardinality=64)),
    "resnext152_64x4d": ("timm", lambda: timm.create_model("resnext101_64x4d", layers=LAYERS_152)),
    "resnext50_vd_64x4d": ("timm", lambda: timm.create_model("resnext50d_32x4d", cardinality=64)),
    "resnext101_vd_32x4d": ("timm", lambda: timm.create_model("resnext50d_32x4d", layers=LAYERS_101)),
    "resnext101_vd_64x4d": ("timm", lambda: timm.create_model("resnext50d_32x4d", layers=LAYERS_101, cardinality=64)),
    "resnext152_vd_32x4d": ("timm", lambda: timm.create_model("resnext50d_32x4d", layers=LAYERS_152)),
    "resnext152_vd_64x4d": ("timm", lambda: timm.create_model("resnext50d_32x4d", layers=LAYERS_152, cardinality=64)),
    # ... and SE-ResNeXts with a 64-64-128 stem.
    "se_resnext152_64x4d": ("timm", lambda: timm.create_model(
        "seresnext101_64x4d", layers=LAYERS_152, stem_type="deep", stem_width=64, **PADDLE_SE)),
    "se_resnext50_vd_32x4d": ("timm", lambda: timm.create_model("seresnext50_32x4d", **PADDLE_VD_WIDE, **PADDLE_SE)),
    "senet154_vd": ("timm", lambda: timm.create_model(
        "seresnext101_64x4d", layers=LAYERS_152, **PADDLE_VD_WIDE, **PADDLE_SE)),
}

# PaddleClas names and the timm model each is (vd = D, vc = C). The SE ones differ from timm's only in how the
# SE width would round (PaddleClas int(C / 16), timm to a multiple of 8), which coincide at these widths.
PADDLE_TO_TIMM = {
    "resnet50_vd": "resnet50d", "resnet101_vd": "resnet101d", "resnet152_vd": "resnet152d",
    "resnet50_vc": "resnet50c", "resnext50_vd_32x4d": "resnext50d_32x4d",
    "se_resnext50_32x4d": "seresnext50_32x4d", "se_resnext101_32x4d": "seresnext101_32x4d",
}

# Keras' ResNetV2 layout (stride on each stage's last block, biased convs, zero-padded pool) has no timm or
# torchvision twin; it is checked against tf_keras itself (the Keras parity tests of the weights converter).
KERAS_ONLY = {"resnet50v2", "resnet101v2", "resnet152v2"}


_POOL_SIZE = 1_000_003  # prime, so repeats never line up with channel boundaries
_POOL = torch.randn(_POOL_SIZE, generator=torch.Generator().manual_seed(0)).repeat(2)


def _fill(tensor: torch.Tensor, gen: torch.Generator, scale: float, shift: float = 0.0) -> None:
    """Random values from a shared pool at a random offset: as good as fresh noise for telling weights
    apart, and ~20x cheaper than sampling 100 M normals for every model."""
    n, start = tensor.numel(), int(torch.randint(0, _POOL_SIZE, (1,), generator=gen))
    flat = tensor.view(-1)
    for offset in range(0, n, _POOL_SIZE):
        chunk = min(_POOL_SIZE, n - offset)
        torch.add(_POOL[start:start + chunk] * scale, shift, out=flat[offset:offset + chunk])


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    """Random weights everywhere, including BN affine and running statistics (so eval-mode BN is a random
    per-channel affine map, and no zero-initialised gamma can hide a wrong branch)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                _fill(module.weight, gen, 0.25, 1.0)
                _fill(module.bias, gen, 0.1)
                _fill(module.running_mean, gen, 0.1)
                module.running_var.copy_(module.running_mean.abs() + 0.5)
                module.num_batches_tracked.zero_()
            elif isinstance(module, nn.GroupNorm):
                _fill(module.weight, gen, 0.25, 1.0)
                _fill(module.bias, gen, 0.1)
            elif isinstance(module, nn.Conv2d | nn.Linear):
                fan_out = module.weight.shape[0] * module.weight[0, 0].numel()
                _fill(module.weight, gen, (2.0 / fan_out) ** 0.5)
                if module.bias is not None:
                    _fill(module.bias, gen, 0.1)
    return model.eval()


def _build(make: Callable[[], nn.Module]) -> nn.Module:
    """Build on the meta device and allocate without initialising: `_randomise` or a strict load fills
    every tensor, and construction no longer spends seconds sampling weights thrown away at once."""
    with torch.device("meta"):
        model = make()
    return model.to_empty(device="cpu")


def _images(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def _check_parity(name: str, make_theirs: Callable[[], nn.Module], source: str) -> None:
    """Theirs -> ours (converted) and ours -> theirs (loaded strictly) give identical logits."""
    theirs = _randomise(_build(make_theirs), seed=1)
    ours = _build(lambda: ResNet(get_config(name))).eval()
    their_state = theirs.state_dict()
    assert set(ours.state_dict()) == set(their_state), "state dict keys differ"

    load_into(ours, convert_state_dict(their_state, source), model_name=name)
    x = _images()
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert torch.isfinite(expected).all() and expected.std() > 1e-3, "degenerate logits prove nothing"
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)

    # And back: our (re-randomised) weights load strictly into their model and agree again.
    _randomise(ours, seed=2)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), ours(x), rtol=0, atol=1e-4)
    del ours, theirs, their_state  # freed here by reference counting; big models also sweep cycles
    if name in SLOW:
        gc.collect()


def _params(names: list[str]) -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names]


def test_peer_sets_cover_the_zoo():
    """Nothing shared with a peer is left out, and every other preset has a derived peer."""
    assert len(TIMM_SHARED) >= 68 and len(TORCHVISION_SHARED) == 10
    assert {f"resnetv2_{d}" for d in (18, 34, 50, 101, 152)} | {"resnetv2_50d_gn", "resnetv2_50t"} <= set(TIMM_SHARED)
    checked = set(TIMM_SHARED) | set(TORCHVISION_SHARED) | set(DERIVED_PEERS) | set(PADDLE_TO_TIMM) | KERAS_ONLY
    assert sorted(set(list_models()) - checked) == []
    assert not set(DERIVED_PEERS) & (set(TIMM_SHARED) | set(TORCHVISION_SHARED))
    assert GIANTS <= SLOW and len(set(list_models()) - SLOW) >= 30


@pytest.mark.parametrize("name", _params(TIMM_SHARED))
def test_timm_parity(name):
    _check_parity(name, lambda: timm.create_model(name, pretrained=False), "timm")


@pytest.mark.parametrize("name", _params(TORCHVISION_SHARED))
def test_torchvision_parity(name):
    _check_parity(name, lambda: torchvision.models.get_model(name, weights=None), "torchvision")


@pytest.mark.parametrize("name", _params(sorted(DERIVED_PEERS)))
def test_derived_peer_parity(name):
    source, build = DERIVED_PEERS[name]
    _check_parity(name, build, source)


@pytest.mark.parametrize("name", _params(sorted(PADDLE_TO_TIMM)))
def test_paddleclas_presets_equal_their_timm_twins(name):
    twin = PADDLE_TO_TIMM[name]
    assert get_config(name).replace(name=twin, se_divisor=get_config(twin).se_divisor) == get_config(twin)
    _check_parity(name, lambda: timm.create_model(twin, pretrained=False), "timm")


def test_stride_in_1x1_differs_from_default():
    """The A-variant check above is not vacuous: moving the stride changes the function."""
    a = _randomise(_build(lambda: create_model("resnet50a", num_classes=10)), seed=1)
    b = _randomise(_build(lambda: create_model("resnet50", num_classes=10)), seed=1)
    with torch.no_grad():
        assert not torch.allclose(a(_images()), b(_images()), atol=1e-3)
