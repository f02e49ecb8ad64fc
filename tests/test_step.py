"""The one training step (resnets.train.step.TrainStep) and `resnets bench --train`, which times it."""

from __future__ import annotations

import copy
import json

import torch

from resnets import create_model
from resnets.cli import main
from resnets.inference.bench import BenchSettings, run_bench
from resnets.train.bench import bench_training
from resnets.train.schedule import WarmupSchedule
from resnets.train.step import TrainStep


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("resnet18", num_classes=5, width_multiplier=0.25).eval()  # BN on running stats


def _data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return images, torch.randint(0, 5, (n,), generator=torch.Generator().manual_seed(2))


def _sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9, weight_decay=1e-4)


def _close(a: torch.nn.Module, b: torch.nn.Module, exact: bool = False) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        if exact:
            assert torch.equal(x, y), name
        else:
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6, msg=name)


def test_full_batch_step_is_the_plain_pytorch_step():
    ours, plain = _model(), _model()
    images, targets = _data(8)
    step = TrainStep(ours, _sgd(ours), torch.nn.CrossEntropyLoss(), nominal_batch=8)
    step.step(images, targets)
    optimizer = _sgd(plain)
    torch.nn.CrossEntropyLoss()(plain(images), targets).backward()
    optimizer.step()
    _close(ours, plain, exact=True)


def test_accumulation_and_missing_images_weight_samples():
    images, targets = _data(7)
    # two micro-batches (4 + 3 of a nominal 4 each) == one batch of the same 7 images
    accumulated, whole = _model(), _model()
    step = TrainStep(accumulated, _sgd(accumulated), torch.nn.CrossEntropyLoss(), grad_accum=2, nominal_batch=4)
    step.micro_batch(images[:4], targets[:4], last=False)
    step.micro_batch(images[4:], targets[4:], last=True)
    step.optimizer_step()
    TrainStep(whole, _sgd(whole), torch.nn.CrossEntropyLoss(), nominal_batch=7).step(images, targets)
    _close(accumulated, whole)


def test_a_window_without_images_changes_no_weight_but_counts():
    model = _model()
    before = copy.deepcopy(model.state_dict())
    optimizer = _sgd(model)
    schedule = WarmupSchedule(optimizer, base_lr=0.3, total_steps=10)
    step = TrainStep(model, optimizer, torch.nn.CrossEntropyLoss(), schedule=schedule, nominal_batch=4)
    step.optimizer_step()  # every micro-batch of this step was skipped
    assert step.steps == 1 and schedule.last_step == 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_loss_and_nonfinite_flag_stay_on_the_device_until_read():
    model = _model()
    images, targets = _data(4)
    calls = []

    def loss_fn(logits, y):
        calls.append(1)
        value = torch.nn.functional.cross_entropy(logits, y)
        return value * float("nan") if len(calls) == 2 else value

    step = TrainStep(model, _sgd(model), loss_fn, nominal_batch=4)
    step.step(images, targets)
    with torch.no_grad():
        first = float(torch.nn.functional.cross_entropy(_model()(images), targets)) * 4
    total, bad = step.read_and_reset()
    assert abs(total - first) < 1e-4 and not bad
    step.step(images, targets)
    total, bad = step.read_and_reset()
    assert bad and step.read_and_reset() == (0.0, False)


def test_bench_times_the_training_step_without_touching_the_model():
    model = create_model("resnet18", num_classes=10, width_multiplier=0.25)
    before = model.fc.weight.clone()
    settings = BenchSettings(modes=("eager",), batch_sizes=(2,), img_size=64, warmup=1, reps=2, train=True)
    records = run_bench([("tiny18", model)], settings, verbose=False, train_bench=bench_training)
    train = [r for r in records if r.mode == "train"]
    assert len(train) == 1 and train[0].error is None and train[0].throughput_img_s > 0
    assert torch.equal(model.fc.weight, before)


def test_bench_cli_train_with_a_recipe(capsys):
    assert main(["bench", "resnet18", "--train", "--recipe", "demo", "--mode", "eager", "--batch-size", "4",
                 "--img-size", "32", "--reps", "1", "--warmup", "0", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["mode"] for r in records] == ["eager", "train"] and records[1]["throughput_img_s"] > 0
    assert main(["bench", "resnet18", "--recipe", "demo"]) == 2
    assert "add --train" in capsys.readouterr().err
    assert main(["bench", "resnet18", "--train", "--recipe", "rsb-a9"]) == 2
    assert "unknown recipe" in capsys.readouterr().err
