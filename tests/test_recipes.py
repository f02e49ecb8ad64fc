"""Recipes as data: every shipped recipe loads with the values of docs/reference.md §3; overrides, --set parsing,
lr scaling, per-model rules, round trips and the `resnets recipes` command."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from resnets.cli import main
from resnets.errors import ResnetsError, UnknownNameError
from resnets.models.registry import list_models
from resnets.train.ema import torchvision_ema_decay
from resnets.train.recipe import Recipe, field_names, list_recipes, load_recipe

RECIPES_DIR = Path(__file__).resolve().parents[1] / "src" / "resnets" / "train" / "recipes"
SHIPPED = ["demo", "finetune", "paddle-ssld", "paddle-ssld-finetune", "paddle-vd", "resnet-rs", "rsb-a1", "rsb-a2",
           "rsb-a3", "torchvision-v1", "torchvision-v2"]


def test_every_recipe_is_shipped_and_loads():
    assert list_recipes() == SHIPPED
    for name in SHIPPED:
        recipe = load_recipe(name)
        assert recipe.name == name
        assert recipe.source and recipe.description
        assert recipe.model in list_models(), f"{name}: model {recipe.model} is not a preset"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_yaml_states_every_field(name):
    data = yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())
    missing = set(field_names()) - set(data)
    assert not missing, f"{name}.yaml leaves out {sorted(missing)}"


def test_rsb_a1_matches_reference():
    r = load_recipe("rsb-a1")
    assert (r.epochs, r.batch_size, r.optimizer, r.lr, r.lr_scaling) == (600, 2048, "lamb", 5e-3, "sqrt")
    assert (r.weight_decay, r.no_weight_decay_norm_bias, r.betas, r.eps) == (0.01, True, (0.9, 0.999), 1e-6)
    assert (r.loss, r.label_smoothing, r.bce_target_threshold) == ("bce", 0.1, None)
    assert (r.mixup_alpha, r.cutmix_alpha, r.mixup_prob, r.mixup_switch_prob) == (0.2, 1.0, 1.0, 0.5)
    assert r.auto_augment == "rand-m7-mstd0.5-inc1"
    assert (r.aug_repeats, r.drop_path_rate, r.drop_rate, r.re_prob) == (3, 0.05, 0.0, 0.0)
    assert (r.schedule, r.warmup_epochs, r.warmup_start_factor, r.min_lr) == ("cosine", 5, 1e-4, 1e-6)
    assert (r.img_size, r.eval_img_size, r.eval_crop_pct, r.interpolation) == (224, 224, 0.95, "bicubic")
    assert (r.ema_decay, r.amp, r.lamb_max_grad_norm, r.grad_clip) == (0.0, True, 1.0, None)


def test_rsb_a2_and_a3_match_reference():
    a2 = load_recipe("rsb-a2")
    assert (a2.epochs, a2.lr, a2.weight_decay, a2.label_smoothing, a2.bce_target_threshold) == (300, 5e-3, 0.02, 0.0, 0.2)
    assert (a2.mixup_alpha, a2.cutmix_alpha, a2.aug_repeats, a2.drop_path_rate) == (0.1, 1.0, 3, 0.05)
    a3 = load_recipe("rsb-a3")
    assert (a3.epochs, a3.lr, a3.weight_decay, a3.img_size, a3.eval_img_size) == (100, 8e-3, 0.02, 160, 224)
    assert a3.auto_augment == "rand-m6-mstd0.5-inc1"
    assert (a3.aug_repeats, a3.drop_path_rate, a3.mixup_alpha, a3.cutmix_alpha) == (0, 0.0, 0.1, 1.0)
    assert (a3.loss, a3.optimizer, a3.lr_scaling) == ("bce", "lamb", "sqrt")


def test_resnet_rs_matches_reference_and_size_rules():
    r = load_recipe("resnet-rs")
    assert (r.epochs, r.batch_size, r.optimizer, r.lr, r.momentum, r.lr_scaling) == (350, 4096, "sgd", 1.6, 0.9, "linear")
    assert math.isclose(r.scaled_lr(256), 0.1)  # TF1 base_learning_rate 0.1 per 256
    assert (r.schedule, r.warmup_epochs, r.weight_decay, r.label_smoothing) == ("cosine", 5, 4e-5, 0.1)
    assert (r.ema_decay, r.ema_every_steps, r.amp_dtype) == (0.9999, 1, "bfloat16")
    expected = {  # model: (dropout, stochastic depth, TF RandAugment magnitude, image size)
        "resnetrs50": (0.25, 0.0, 10, 160), "resnetrs101": (0.25, 0.0, 15, 192),
        "resnetrs152": (0.25, 0.0, 15, 256), "resnetrs200": (0.25, 0.1, 15, 256),
        "resnetrs270": (0.25, 0.1, 15, 256), "resnetrs350": (0.4, 0.1, 15, 320),
        "resnetrs420": (0.4, 0.1, 15, 320),
    }
    assert set(r.size_rules) == set(expected)
    for model, (dropout, depth, magnitude, size) in expected.items():
        m = r.for_model(model)
        assert (m.drop_rate, m.drop_path_rate, m.auto_augment, m.img_size) == (
            dropout, depth, f"randtf-m{magnitude}-n2", size), model
        assert m.for_model(f"{model}.tf_in1k") == m  # pretrained tags are ignored, rules are idempotent
    assert r.for_model("resnet50") == r  # no rule: unchanged


def test_torchvision_recipes_match_reference():
    v1 = load_recipe("torchvision-v1")
    assert (v1.epochs, v1.batch_size, v1.lr, v1.momentum, v1.weight_decay) == (90, 256, 0.1, 0.9, 1e-4)
    assert (v1.schedule, v1.step_epochs, v1.step_gamma, v1.label_smoothing) == ("step", (30, 60), 0.1, 0.0)
    assert (v1.eval_crop_pct, v1.interpolation, v1.no_weight_decay_norm_bias) == (0.875, "bilinear", False)
    v2 = load_recipe("torchvision-v2")
    assert (v2.epochs, v2.batch_size, v2.lr, v2.weight_decay) == (600, 1024, 0.5, 2e-5)
    assert (v2.warmup_epochs, v2.warmup_start_factor, v2.min_lr, v2.schedule) == (5, 0.01, 0.0, "cosine")
    assert (v2.no_weight_decay_norm_bias, v2.exempt_bias_from_weight_decay) == (True, False)
    assert (v2.label_smoothing, v2.mixup_alpha, v2.cutmix_alpha, v2.auto_augment) == (0.1, 0.2, 1.0, "ta_wide")
    assert (v2.re_prob, v2.aug_repeats, v2.img_size, v2.eval_img_size) == (0.1, 4, 176, 224)
    assert math.floor(224 / v2.eval_crop_pct) == 232  # --val-resize-size 232
    # EMA as train.py computes it: --model-ema-steps 32, --model-ema-decay 0.99998 at 8 x 128, 600 epochs
    assert v2.ema_every_steps == 32 and v2.ema_copy_epochs == 5
    expected = torchvision_ema_decay(0.99998, world_size=8, batch_size=128, every_steps=32, epochs=600)
    assert math.isclose(expected, 1 - 2e-5 * 8 * 128 * 32 / 600)
    assert v2.ema_decay == 0.99998 and v2.ema_rule == "torchvision"  # derived per run by build_ema


def test_paddle_vd_and_demo():
    p = load_recipe("paddle-vd")
    assert (p.model, p.epochs, p.batch_size, p.lr, p.schedule) == ("resnet50_vd", 200, 256, 0.1, "cosine")
    assert (p.weight_decay, p.label_smoothing, p.mixup_alpha, p.cutmix_alpha) == (7e-5, 0.1, 0.2, 0.0)
    d = load_recipe("demo")
    assert (d.model, d.data, d.img_size, d.optimizer, d.nesterov) == ("resnet18", "digits", 32, "sgd", True)
    assert d.mixup_alpha == 0 and d.cutmix_alpha == 0 and d.hflip == 0.0


def test_lr_scaling_rules():
    a1 = load_recipe("rsb-a1")
    assert a1.scaled_lr(512) == pytest.approx(2.5e-3)  # sqrt(512 / 2048) = 0.5
    assert a1.scaled_lr(2048) == pytest.approx(5e-3)
    v1 = load_recipe("torchvision-v1")
    assert v1.scaled_lr(512) == pytest.approx(0.2) and v1.scaled_lr(64) == pytest.approx(0.025)
    assert v1.with_overrides(lr_scaling="none").scaled_lr(1024) == 0.1
    assert "sqrt" in a1.lr_rule(512) and "0.0025" in a1.lr_rule(512)
    with pytest.raises(ResnetsError):
        a1.scaled_lr(0)


def test_overrides_convert_types_and_reject_unknown_fields():
    r = load_recipe("rsb-a3")
    o = r.with_overrides(epochs=10, lr="1e-3", rrc_scale=[0.35, 1])
    assert (o.epochs, o.lr, o.rrc_scale) == (10, 1e-3, (0.35, 1.0))
    assert isinstance(o.lr, float) and isinstance(o.rrc_scale[1], float)
    assert r.epochs == 100  # frozen: the original is untouched
    with pytest.raises(UnknownNameError, match="did you mean 'epochs'"):
        r.with_overrides(epoch=3)
    with pytest.raises(ResnetsError, match="optimizer must be one of"):
        r.with_overrides(optimizer="adam")


def test_set_parsing():
    r = load_recipe("rsb-a1").with_sets([
        "epochs=5", "lr=5e-3", "batch_size=128", "grad_clip=null", "bce_target_threshold=0.2",
        "rrc_scale=[0.35, 1]", "step_epochs=[2,4]", "auto_augment=null", "amp=false", "rrc_ratio=0.5,2",
        "model_overrides={width_multiplier: 0.25}", "description=a b=c",
    ])
    assert (r.epochs, r.lr, r.batch_size, r.grad_clip, r.bce_target_threshold) == (5, 5e-3, 128, None, 0.2)
    assert (r.rrc_scale, r.step_epochs, r.auto_augment, r.amp) == ((0.35, 1.0), (2, 4), None, False)
    assert r.rrc_ratio == (0.5, 2.0) and r.model_overrides == {"width_multiplier": 0.25}
    assert r.description == "a b=c"  # only the first '=' separates key and value


@pytest.mark.parametrize(("assignment", "message"), [
    ("lrr=0.1", "unknown recipe field 'lrr'; did you mean 'lr'"),
    ("epochs", "--set expects key=value"),
    ("=3", "--set expects key=value"),
    ("epochs=abc", "recipe field 'epochs' expects an integer, got 'abc'"),
    ("epochs=2.5", "expects an integer"),
    ("lr=fast", "recipe field 'lr' expects a number"),
    ("amp=maybe", "recipe field 'amp' expects true or false"),
    ("epochs=null", "recipe field 'epochs' expects an integer, got null"),
    ("rrc_scale=[0.1, 0.5, 1]", "expects 2 values"),
    ("rrc_scale=[0.1", "cannot parse value"),
    ("auto_augment=rand-x9", "unknown RandAugment option 'x' in 'rand-x9'"),
    ("auto_augment=rand-m7-mstd0.5-inc1-w2", "timm's op-weights index w<N> is gone from timm"),
    ("auto_augment=randtf-m15-inc1", "'randtf' takes m<M>, n<N> only"),
    ("label_smoothing=1.5", "label_smoothing must be in"),
    ("size_rules={resnet50: {lrr: 1}}", "did you mean 'lr'"),
    ("size_rules={resnet50: {auto_augment: randtf-m15-w1}}",
     "size rule 'resnet50': unknown RandAugment option 'w' in 'randtf-m15-w1'"),
])
def test_set_errors_are_one_line(assignment, message):
    with pytest.raises(ResnetsError) as info:
        load_recipe("rsb-a1").with_sets([assignment])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_round_trip_through_yaml_and_dict():
    for name in SHIPPED:
        recipe = load_recipe(name)
        assert Recipe.from_dict(yaml.safe_load(recipe.to_yaml())) == recipe
        assert Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe


def test_user_yaml_file_partial_and_base(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: rsb-a3\nepochs: 3\nlr: 2e-3\n")
    r = load_recipe(str(path))
    assert (r.name, r.epochs, r.lr, r.img_size) == ("rsb-a3", 3, 2e-3, 160)
    plain = tmp_path / "plain.yml"
    plain.write_text("epochs: 2\noptimizer: adamw\nlr: 1.0e-3\n")
    r = load_recipe(plain)
    assert (r.name, r.epochs, r.optimizer) == ("plain", 2, "adamw")


def test_bad_recipe_files(tmp_path):
    with pytest.raises(ResnetsError, match="recipe file not found"):
        load_recipe(str(tmp_path / "nope.yaml"))
    with pytest.raises(UnknownNameError, match="unknown recipe 'rsb-a0'; did you mean"):
        load_recipe("rsb-a0")
    broken = tmp_path / "broken.yaml"
    broken.write_text("epochs: [1, 2\n")
    with pytest.raises(ResnetsError, match=r"broken.yaml: line \d+"):
        load_recipe(broken)
    typo = tmp_path / "typo.yaml"
    typo.write_text("epochs: 3\nlabel_smothing: 0.1\n")
    with pytest.raises(UnknownNameError, match="typo.yaml: unknown recipe field 'label_smothing'"):
        load_recipe(typo)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ResnetsError, match="must be a mapping"):
        load_recipe(listing)


def test_cli_lists_recipes(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in SHIPPED:
        assert name in out
    assert "0.005 @ 2048 (sqrt)" in out and "600" in out


def test_cli_prints_one_recipe_resolved(capsys):
    assert main(["recipes", "resnet-rs", "--model", "resnetrs420", "--batch-size", "1024"]) == 0
    out = capsys.readouterr().out
    assert "at batch 1024: lr 0.4" in out
    data = yaml.safe_load(out)
    assert data["model"] == "resnetrs420" and data["drop_rate"] == 0.4 and "tensorflow/tpu" in data["source"]
    assert main(["recipes", "rsb-a1", "--json", "--set", "epochs=7"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["epochs"] == 7 and data["lr"] == 5e-3
    assert main(["recipes", "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == SHIPPED


def test_cli_unknown_recipe_is_one_line_error(capsys):
    assert main(["recipes", "rsb-a9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown recipe 'rsb-a9'; did you mean") and "\n" not in err


def test_cli_subprocess_smoke():
    result = subprocess.run([sys.executable, "-m", "resnets", "recipes", "torchvision-v1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["step_epochs"] == [30, 60]


def test_with_epochs_keeps_step_milestones_proportional():
    v1 = load_recipe("torchvision-v1")
    assert v1.with_epochs(9).step_epochs == (3, 6)
    assert v1.with_epochs(180).step_epochs == (60, 120)
    assert v1.with_epochs(2).step_epochs == (1,)  # milestones stay inside the run
    assert v1.with_overrides(epochs=9).step_epochs == (30, 60)  # the plain override changes only the count
    a3 = load_recipe("rsb-a3").with_epochs(4)
    assert (a3.epochs, a3.warmup_epochs) == (4, 5)  # cosine recipes: only the count changes
