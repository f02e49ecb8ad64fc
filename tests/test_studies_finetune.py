"""The transfer study's protocol: the shipped `finetune` recipe and layer-wise lr decay, checked against
timm's own grouping of a ResNet (param_groups_layer_decay)."""

from __future__ import annotations

import pytest

from resnets.train.optim import build_optimizer, layer_lr_scales
from resnets.train.recipe import load_recipe
from resnets.train.schedule import build_schedule
from resnets.weights.factory import create_model


@pytest.mark.parametrize("name", ["resnet18", "resnet50d"])
def test_layer_decay_scales_match_timm(name):
    timm = pytest.importorskip("timm")
    from timm.optim import param_groups_layer_decay

    theirs = timm.create_model(name, num_classes=10)
    groups = param_groups_layer_decay(theirs, weight_decay=1e-4, layer_decay=0.7)
    expected = {}
    named = {id(p): n for n, p in theirs.named_parameters()}
    for group in groups:
        for p in group["params"]:
            expected[named[id(p)]] = group["lr_scale"]
    ours = layer_lr_scales(create_model(name, num_classes=10), 0.7)
    assert ours.keys() == expected.keys()
    assert all(ours[k] == pytest.approx(expected[k]) for k in ours)
    assert ours["fc.weight"] == 1.0 and ours["conv1.weight" if name == "resnet18" else "conv1.0.weight"] < 0.1


def test_layer_decay_reaches_the_optimiser_through_the_schedule():
    model = create_model("resnet18", num_classes=10, width_multiplier=0.25)
    recipe = load_recipe("finetune").with_sets(["layer_decay=0.5", "warmup_epochs=0"])
    optimizer = build_optimizer(model, recipe, lr=0.01)
    schedule = build_schedule(optimizer, recipe, lr=0.01, steps_per_epoch=10, epochs=recipe.epochs)
    scales = layer_lr_scales(model, 0.5)
    by_param = {id(p): n for n, p in model.named_parameters()}
    for group in optimizer.param_groups:
        for p in group["params"]:
            assert group["lr"] == pytest.approx(schedule.lr * scales[by_param[id(p)]])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(schedule.lr)  # the logged lr is the peak's
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    # with the decay off, one lr for every group (the recipes' default)
    plain = build_optimizer(model, load_recipe("finetune"), lr=0.01)
    assert all("lr_scale" not in g for g in plain.param_groups)


def test_finetune_recipe_is_mmpretrains_cub_protocol():
    r = load_recipe("finetune")
    assert (r.optimizer, r.lr, r.batch_size, r.nesterov, r.momentum, r.weight_decay) == ("sgd", 0.01, 64, True, 0.9,
                                                                                        5e-4)
    assert (r.schedule, r.epochs, r.warmup_epochs, r.warmup_start_factor, r.min_lr) == ("cosine", 100, 5, 0.01, 0.0)
    assert (r.img_size, r.eval_img_size, r.label_smoothing, r.no_weight_decay_norm_bias) == (448, 448, 0.0, False)
    assert r.eval_crop_pct == pytest.approx(448 / 600) and r.rrc_scale[0] == pytest.approx((448 / 600) ** 2)
    assert "mmpretrain" in r.source and r.layer_decay is None


@pytest.mark.parametrize("value", ["0", "1.5", "-0.1"])
def test_bad_layer_decay_is_one_line(value):
    from resnets.errors import ResnetsError

    with pytest.raises(ResnetsError, match="layer_decay must be in"):
        load_recipe("finetune").with_sets([f"layer_decay={value}"])
