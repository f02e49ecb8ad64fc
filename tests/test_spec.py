"""Run specification: what resolution decides from recipe + options, and the notes it records."""

from __future__ import annotations

import pytest

from resnets.errors import ResnetsError
from resnets.train.options import TrainOptions
from resnets.train.spec import recipe_drift, resolve_spec


def test_img_size_moves_the_eval_size_by_the_recipes_ratio():
    spec = resolve_spec(TrainOptions(recipe="rsb-a3", data="x", img_size=32))
    assert (spec.recipe.img_size, spec.eval_img_size) == (32, 45)  # 32 * 224 / 160 = 44.8
    assert any("evaluation at 45 px" in note and "160:224" in note for note in spec.notes)


def test_explicit_eval_size_wins():
    spec = resolve_spec(TrainOptions(recipe="rsb-a3", data="x", img_size=32, eval_img_size=32))
    assert spec.eval_img_size == 32 and not spec.notes
    spec = resolve_spec(TrainOptions(recipe="rsb-a3", data="x", img_size=32, sets=["eval_img_size=40"]))
    assert spec.eval_img_size == 40 and not spec.notes


def test_size_rules_apply_before_the_ratio():
    spec = resolve_spec(TrainOptions(recipe="resnet-rs", model="resnetrs101", data="x", img_size=96))
    assert spec.eval_img_size == 96  # ResNet-RS-101 trains and tests at 192 (its size rule)
    assert "evaluates at its training size" in spec.notes[0]
    spec = resolve_spec(TrainOptions(recipe="torchvision-v2", data="x", img_size=88))
    assert spec.eval_img_size == 112  # 176:224


def test_a_run_shorter_than_its_warmup_keeps_the_warmups_fraction():
    spec = resolve_spec(TrainOptions(recipe="rsb-a3", data="x", epochs=4))  # warmup 5 of 100 epochs
    assert spec.recipe.warmup_epochs == pytest.approx(0.2)
    assert any("warmup" in note and "0.2 epochs" in note for note in spec.notes)
    longer = resolve_spec(TrainOptions(recipe="rsb-a3", data="x", epochs=10))
    assert longer.recipe.warmup_epochs == 5 and not longer.notes  # fits: stays in epochs


def test_torchvision_ema_copy_phase_is_shortened_alike():
    spec = resolve_spec(TrainOptions(recipe="torchvision-v2", data="x", epochs=3))
    assert spec.recipe.ema_copy_epochs == pytest.approx(5 * 3 / 600)
    assert len([n for n in spec.notes if "EMA copy phase" in n]) == 1


def test_seed_and_data_are_resolved_into_the_record():
    spec = resolve_spec(TrainOptions())
    assert spec.options.data == "digits" and spec.options.seed == 0
    with pytest.raises(ResnetsError, match="names no data set"):
        resolve_spec(TrainOptions(recipe="rsb-a3"))


def test_recipe_drift_names_the_changed_fields(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("base: demo\nname: r\nlr: 0.2\n")
    spec = resolve_spec(TrainOptions(recipe=str(recipe)))
    assert recipe_drift(spec) is None
    recipe.write_text("base: demo\nname: r\nlr: 0.3\nepochs: 2\n")
    note = recipe_drift(spec)
    assert note is not None and "(epochs, lr)" in note
    recipe.unlink()
    assert "cannot be read" in recipe_drift(spec)
