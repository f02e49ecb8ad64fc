"""Studies: run ids from resolved specs (stable across processes), the directory's resume bookkeeping, failed
runs, refused specs, every kind's report, and every bad input in one line. Runs are tiny: the built-in
digits set, quarter-width models, one epoch, one thread."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from resnets.cli import main
from resnets.studies.parse import parse_seeds, parse_steps
from resnets.studies.runid import spec_hash
from resnets.studies.spec import ScalingStudy, SeedsStudy
from resnets.train.spec import read_run_record

TINY = ["--data", "digits", "--epochs", "1", "--set", "model.width_multiplier=0.25", "--threads", "1",
        "--no-tensorboard", "--deterministic"]


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory) -> Path:
    """Some digits images as a PNG folder (train/<class>/, val/<class>/): another data set for the reports."""
    from resnets.data.build import build_dataset

    root = tmp_path_factory.mktemp("digits-folder")
    for split, step in (("train", 4), ("val", 3)):
        dataset = build_dataset("digits", split, None)
        for i in range(0, len(dataset), step):
            image, label = dataset[i]
            folder = root / split / dataset.classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def seeds_study(tmp_path_factory, digits_folder) -> Path:
    out = tmp_path_factory.mktemp("seeds") / "study"
    code = main(["study", "seeds", *TINY, "--seeds", "0-2", "--eval-data", f"other={digits_folder}",
                 "--out", str(out)])
    assert code == 0
    return out


# --- run ids ----------------------------------------------------------------------------------------------------
_ID_SCRIPT = """
import json, sys
from resnets.studies.spec import ScalingStudy
study = ScalingStudy(data="digits", depths=[10, 18], widths=[0.25, 0.5], epochs=1, sets=["lr=0.05"])
print(json.dumps([r.run_id for r in study.plan()]))
"""


def test_run_ids_are_stable_across_processes_and_match_the_run_record(tmp_path):
    ids = []
    for hash_seed in ("1", "987"):  # different str hashing, a fresh interpreter each time
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        result = subprocess.run([sys.executable, "-c", _ID_SCRIPT], capture_output=True, text=True, env=env,
                                cwd=tmp_path, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        ids.append(json.loads(result.stdout))
    assert ids[0] == ids[1] and len(set(ids[0])) == 4
    here = [r.run_id for r in ScalingStudy(data="digits", depths=[10, 18], widths=[0.25, 0.5], epochs=1,
                                           sets=["lr=0.05"]).plan()]
    assert here == ids[0]
    # the id is the resolved configuration, not the spelling: lr=5e-2 is lr=0.05
    spelled = ScalingStudy(data="digits", depths=[10, 18], widths=[0.25, 0.5], epochs=1, sets=["lr=5e-2"])
    assert [r.run_id for r in spelled.plan()] == here
    assert [r.run_id for r in ScalingStudy(data="digits", depths=[10, 18], widths=[0.25, 0.5], epochs=1,
                                           sets=["lr=0.04"]).plan()] != here


def test_finished_run_directory_is_an_ordinary_run_hashing_to_its_id(seeds_study):
    for run_dir in sorted((seeds_study / "runs").iterdir()):
        for name in ("run.json", "summary.json", "best.safetensors", "last.state.pt", "study-result.json"):
            assert (run_dir / name).is_file(), (run_dir, name)
        recorded = read_run_record(run_dir).spec
        assert run_dir.name.endswith(spec_hash(recorded))
        assert (run_dir / "train.log").read_text().count("resnets train: recipe demo") == 1


# --- reports ------------------------------------------------------------------------------------------------------
def test_seeds_report_has_the_spread_correlations_and_figures(seeds_study, capsys):
    rows = _rows(seeds_study)
    assert [r["seed"] for r in rows] == ["0", "1", "2"] and {r["status"] for r in rows} == {"finished"}
    for row in rows:
        assert 0 <= float(row["val_top1"]) <= 100 and 0 <= float(row["other_top1"]) <= 100
        assert int(row["params"]) > 0 and int(row["macs"]) > 0 and float(row["train_wall_s"]) > 0
    assert len({r["val_top1"] for r in rows}) > 1  # the seeds differ
    report = (seeds_study / "report.md").read_text()
    for text in ("| val | 3 |", "| other | 3 |", "best seed", "worst seed", "median", "Pearson r", "Spearman ρ",
                 "val vs other", "hist-val.png", "hist-other.png", "scatter-val-vs-other.png"):
        assert text in report, text
    best = max(rows, key=lambda r: float(r["val_top1"]))
    assert f"{best['seed']} ({float(best['val_top1']):.2f})" in report
    for name in ("hist-val.png", "hist-other.png", "scatter-val-vs-other.png"):
        assert (seeds_study / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["study", "show", str(seeds_study)]) == 0
    assert capsys.readouterr().out == report
    assert main(["study", "show", str(seeds_study), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["study"]["seeds"] == [0, 1, 2] and len(shown["rows"]) == 3


def test_same_command_reuses_every_finished_run(seeds_study, digits_folder, capsys):
    stamps = {p: p.stat().st_mtime_ns for p in seeds_study.glob("runs/*/best.safetensors")}
    before = _rows(seeds_study)
    capsys.readouterr()
    code = main(["study", "seeds", *TINY, "--seeds", "0-2", "--eval-data", f"other={digits_folder}",
                 "--out", str(seeds_study)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "3 finished (reused)" in printed and "starting" not in printed
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps and _rows(seeds_study) == before


@pytest.mark.parametrize("replace, extra, differs", [
    ({"--seeds": "0-3"}, [], "seeds"),
    ({}, ["--set", "lr=0.05"], "sets"),
    ({"--epochs": "2"}, [], "epochs"),
])
def test_a_changed_spec_is_refused_in_one_line(seeds_study, digits_folder, capsys, replace, extra, differs):
    args = [*TINY, "--seeds", "0-2", "--eval-data", f"other={digits_folder}", *extra]
    for flag, value in replace.items():
        args[args.index(flag) + 1] = value
    listing = sorted(str(p) for p in seeds_study.rglob("*"))
    capsys.readouterr()
    code = main(["study", "seeds", *args, "--out", str(seeds_study)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "holds a different seeds study" in err and differs in err
    assert sorted(str(p) for p in seeds_study.rglob("*")) == listing


def test_scaling_report_pareto_depth_width_and_regularisation(tmp_path):
    out = tmp_path / "scaling"
    code = main(["study", "scaling", "--data", "digits", "--depths", "10,18", "--widths", "0.25,0.5", "--epochs",
                 "1", "--threads", "1", "--no-tensorboard", "--bench-batch", "4", "--out", str(out)])
    assert code == 0
    rows = _rows(out)
    assert [(r["depth"], r["width"]) for r in rows] == [("10", "0.25"), ("10", "0.5"), ("18", "0.25"), ("18", "0.5")]
    for row in rows:
        assert float(row["latency_ms"]) > 0 and float(row["throughput_img_s"]) > 0
        assert row["drop_rate"] == "0.25" and row["drop_path_rate"] == "0.0"  # ResNet-RS's rule for these sizes
    assert int(rows[1]["params"]) > int(rows[0]["params"]) and int(rows[2]["params"]) > int(rows[0]["params"])
    run = read_run_record(out / "runs" / rows[2]["run_id"])
    assert run.model_config.layers == (2, 2, 2, 2) and run.model_config.width_multiplier == 0.25
    assert run.spec.recipe.drop_rate == 0.25
    report = (out / "report.md").read_text()
    assert "scaling is ahead" in report or "scaling loses less" in report
    for text in ("## 1 epochs", "Pareto front", "latency ms (b1)", "Depth against width: ", "top-1 per doubling",
                 "## Regularisation by model size", "RS-200, RS-270, RS-350 @256", "scaling-e1-time.png",
                 "scaling-e1-latency.png"):
        assert text in report, text
    assert "T" in report.split("## 1 epochs")[1].split("front:")[0]
    assert (out / "scaling-e1-time.png").is_file() and (out / "scaling-e1-latency.png").is_file()


def test_ablation_ladder_is_cumulative_with_mean_std_and_deltas(tmp_path):
    out = tmp_path / "ablation"
    code = main(["study", "ablation", *TINY, "--steps", "nols:label_smoothing=0.0",
                 "wd:weight_decay=1e-4,rrc_scale=0.5,1.0", "--seeds", "0", "--out", str(out)])
    assert code == 0
    rows = _rows(out)
    assert [(r["step_index"], r["seed"]) for r in rows] == [("0", "0"), ("1", "0"), ("2", "0")]
    last = read_run_record(out / "runs" / rows[-1]["run_id"]).spec.recipe
    assert (last.label_smoothing, last.weight_decay, last.rrc_scale) == (0.0, 1e-4, (0.5, 1.0))  # cumulative
    first = read_run_record(out / "runs" / rows[0]["run_id"]).spec.recipe
    assert first.label_smoothing == 0.1 and first.weight_decay == 5e-4  # the demo recipe as given
    report = (out / "report.md").read_text()
    for text in ("| 0 | baseline |", "| 1 | nols |", "| 2 | wd |", "mean top-1", "std", "Δ previous", "Δ baseline",
                 "ablation.png"):
        assert text in report, text
    assert (out / "ablation.png").is_file()


@pytest.mark.slow
def test_resnet_rs_ladder_ships_table_1_with_the_paper_beside(tmp_path):
    from resnets.studies.spec import AblationStudy

    study = AblationStudy(ladder="resnet-rs", data="digits", epochs=9)
    steps = study.all_steps()
    assert [s.paper_top1 for s in steps] == [79.0, 79.3, 78.8, 79.1, 80.4, 80.6, 81.0, 80.7, 82.2, 82.9, 83.4]
    from resnets.studies.published import PAPER_VERIFIED  # only the abstract's end points are confirmed

    assert {s.name for s in steps if s.paper_top1 in (79.0, 82.2, 83.4)} == PAPER_VERIFIED["resnet-rs"]
    runs = study.plan()
    assert runs[0].spec.recipe.schedule == "step" and runs[0].spec.recipe.epochs == 9
    assert runs[0].spec.recipe.step_epochs == (3, 6, 8)  # 30/60/80 of 90, kept at their fraction
    assert runs[1].spec.recipe.schedule == "cosine" and runs[2].spec.recipe.epochs == 35  # 9 x 350/90
    last = runs[-1].spec
    assert last.recipe.weight_decay == 4e-5 and last.recipe.drop_rate == 0.25 and last.recipe.ema_decay == 0.9999
    assert last.recipe.auto_augment == "randtf-m15-n2"  # TF's RandAugment, as the resnet-rs recipe
    assert last.model_overrides["se_ratio"] == 0.25 and last.model_overrides["shortcut"] == "avg"
    short = AblationStudy(ladder="resnet-rs", ladder_steps=2, data="digits", epochs=1, sets=[
        "model.width_multiplier=0.25"])
    out = tmp_path / "rs"
    from resnets.studies.executors import LocalExecutor
    from resnets.studies.runner import run_study

    run_study(short, out, LocalExecutor(parallel=1, threads=1), runtime={"tensorboard": False},
              say=lambda _: None)
    report = (out / "report.md").read_text()
    assert "| 0 | baseline |" in report and "79.0" in report and "79.3" in report and "+0.30" in report
    assert "ResNet-RS (arXiv 2103.07579) Table 1" in report


def test_transfer_matrix_with_ranks_and_head_reset(tmp_path, seeds_study, digits_folder):
    weights = sorted(seeds_study.glob("runs/*/best.safetensors"))
    out = tmp_path / "transfer"
    code = main(["study", "transfer", "--weights", f"s0={weights[0]}", "scratch=none",
                 "--datasets", "digits=digits", f"folder={digits_folder}", "--model", "resnet18", "--epochs", "1",
                 "--img-size", "32", "--set", "model.width_multiplier=0.25", "--threads", "1", "--no-tensorboard",
                 "--out", str(out)])
    assert code == 0
    rows = _rows(out)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"finished"}
    record = read_run_record(out / "runs" / rows[0]["run_id"])
    assert record.spec.options.reset_head and record.spec.options.weights == str(weights[0])
    assert record.spec.recipe.name == "finetune" and record.model_config.width_multiplier == 0.25
    report = (out / "report.md").read_text()
    assert "| pretraining | digits | folder | mean rank |" in report and "(#1)" in report and "(#2)" in report
    assert "transfer.png" in report and (out / "transfer.png").is_file()


# --- failures and bad input -----------------------------------------------------------------------------------
def test_a_failed_run_is_marked_listed_and_retried(tmp_path, capsys):
    out = tmp_path / "study"
    broken = ["--steps", "bad:lr=0.1,batch_size=100000"]  # more than the training set: fails inside its run
    code = main(["study", "ablation", *TINY, *broken, "--out", str(out)])
    assert code == 1  # the study went on and says a run failed
    rows = _rows(out)
    assert rows[0]["status"] == "finished" and rows[1]["status"] == "failed"
    assert "fewer than one batch" in rows[1]["error"]
    capsys.readouterr()
    assert main(["study", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "## Failed runs" in shown and rows[1]["run_id"] in shown and "fewer than one batch" in shown
    code = main(["study", "ablation", *TINY, *broken, "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1 and "1 failed before (retried)" in printed and "retrying" in printed


@pytest.mark.parametrize("args, message", [
    (["seeds", "--seeds", "3-1"], "not an increasing range"),
    (["seeds", "--seeds", "0-x"], "is not a seed or a range"),
    (["seeds", "--seeds", "1,1"], "seed 1 is given twice"),
    (["seeds", "--seeds", ""], "no seeds given"),
    (["scaling", "--depths", "50,77"], "no published block layout for depth 77; known depths: 10, 14, 18, 26, 34, "
                                       "50, 101, 152, 200, 269, 270, 350, 420"),
    (["scaling", "--widths", ""], "the grid is empty"),
    (["scaling", "--img-sizes", "64,abc"], "'abc' is not an integer"),
    (["scaling", "--widths", "0.5,1", "--set", "model.width_multiplier=0.25"], "fixes what --widths varies"),
    (["scaling", "--regularisation", "nope.yaml"], "no such file"),
    (["ablation"], "an ablation needs --steps"),
    (["ablation", "--steps", "x"], "expected NAME:key=value"),
    (["ablation", "--steps", "a:lr=0.1", "a:lr=0.2"], "is repeated"),
    (["ablation", "--steps", "a:bogus_field=1"], "unknown recipe field 'bogus_field'"),
    (["ablation", "--ladder", "resnet-rs", "--ladder-steps", "40"], "--ladder-steps must be between 1 and 10"),
    (["seeds", "--eval-data", "x"], "expected NAME=DIR"),
    (["seeds", "--eval-data", "x=/no/such/dir"], "data path not found"),
    (["seeds", "--recipe", "nosuch"], "unknown recipe"),
    (["seeds", "--executor", "ray", "--ray-address", "127.0.0.1:1"], "no Ray cluster answers at 127.0.0.1:1"),
    (["seeds", "--parallel", "0"], "--parallel must be at least 1"),
    (["transfer", "--weights", "a=/no/file", "--datasets", "d=digits"], "file not found"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    if "--executor" in args:
        pytest.importorskip("ray")
    out = tmp_path / "out"
    kind, rest = args[0], args[1:]
    base = ["--data", "digits"] if kind != "transfer" else []
    code = main(["study", kind, *base, *rest, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_show_of_a_directory_that_is_no_study(tmp_path, capsys):
    assert main(["study", "show", str(tmp_path)]) == 2
    assert "is not a study directory" in capsys.readouterr().err


def test_an_existing_directory_that_is_no_study_is_refused(tmp_path, capsys):
    (tmp_path / "something.txt").write_text("x")
    assert main(["study", "seeds", *TINY, "--out", str(tmp_path)]) == 2
    assert "is not a study directory" in capsys.readouterr().err


def test_results_csv_is_replaced_atomically(tmp_path, monkeypatch):
    """A full disk while writing results.csv leaves the previous file whole."""
    import errno

    from resnets.studies import results

    path = tmp_path / "results.csv"
    results.write_results(path, [{"run_id": "a", "status": "finished"}], ["run_id", "status"])
    before = path.read_text()

    def full(tmp):
        Path(tmp).write_text("run_id,sta")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results, "atomic_write", lambda p, write: __import__(
        "resnets.weights.io", fromlist=["atomic_write"]).atomic_write(p, full))
    with pytest.raises(OSError):
        results.write_results(path, [{"run_id": "b", "status": "failed"}], ["run_id", "status"])
    assert path.read_text() == before and not list(tmp_path.glob(".results.csv.*"))


def test_parsers():
    assert parse_seeds("0-3,7,9-10") == [0, 1, 2, 3, 7, 9, 10]
    steps = parse_steps(["a:step_epochs=[3,6],lr=0.1", "b:model.se_ratio=0.25"])
    assert steps[0].changes == {"step_epochs": "[3,6]", "lr": "0.1"} and steps[1].changes == {"model.se_ratio": "0.25"}


def test_seeds_study_spec_round_trips_through_study_json():
    from resnets.studies.spec import load_study

    study = SeedsStudy(data="digits", seeds=[0, 4], eval_data=[["x", "digits"]], sets=["lr=0.05"])
    again = load_study(json.loads(json.dumps(study.to_dict())))
    assert again == study and [r.run_id for r in again.plan()] == [r.run_id for r in study.plan()]


def test_a_corrected_published_value_updates_the_study_instead_of_refusing_it(tmp_path):
    """paper_top1 is what a study is compared with, not what it runs: correcting it keeps the finished runs."""
    from resnets.studies.runner import SPEC_FILE, prepare_directory
    from resnets.studies.spec import AblationStudy

    def study(paper: float | None) -> AblationStudy:
        steps = parse_steps(["nols:label_smoothing=0.0"])
        steps[0].paper_top1 = paper
        return AblationStudy(steps=steps, data="digits", epochs=1, sets=["model.width_multiplier=0.25"])

    out = tmp_path / "ablation"
    first = study(78.4)
    ids = [e.run_id for e in prepare_directory(first, out, first.plan())]
    second = study(78.8)
    assert [e.run_id for e in prepare_directory(second, out, second.plan())] == ids
    assert json.loads((out / SPEC_FILE).read_text())["steps"][0]["paper_top1"] == 78.8
    changed = AblationStudy(steps=parse_steps(["nols:label_smoothing=0.2"]), data="digits", epochs=1,
                            sets=["model.width_multiplier=0.25"])
    with pytest.raises(Exception, match="holds a different ablation study"):
        prepare_directory(changed, out, changed.plan())
