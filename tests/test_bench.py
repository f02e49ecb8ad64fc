"""`resnets bench`: record fields and values, failure handling, CSV/JSON output, the accuracy/speed plot."""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest
import torch

import resnets
from resnets.cli import main
from resnets.errors import ResnetsError
from resnets.inference import modes
from resnets.inference.bench import (
    BenchSettings,
    PeakMemory,
    bench_inference,
    format_table,
    percentile,
    run_bench,
)
from resnets.inference.plot import pareto_front, plot_accuracy_vs_speed, plot_points, read_accuracy_csv

REQUIRED = {"model", "mode", "batch_size", "img_size", "params", "macs", "latency_ms_p50", "latency_ms_p90",
            "throughput_img_s", "peak_mem_mb"}


def tiny() -> resnets.ResNet:
    return resnets.create_model("resnet18", num_classes=10, width_multiplier=0.25).eval()


def test_records_have_sane_values():
    model = tiny()
    settings = BenchSettings(modes=("eager", "fused"), batch_sizes=(1, 2), img_size=64, warmup=1, reps=3)
    records = bench_inference(model, "tiny18", settings, verbose=False)
    assert [(r.mode, r.batch_size) for r in records] == [("eager", 1), ("eager", 2), ("fused", 1), ("fused", 2)]
    assert all((r.precision, r.backend, r.agreement) == ("fp32", "torch", None) for r in records)
    cost = resnets.count_cost(model, 64)
    weights_mb = sum(p.numel() for p in model.state_dict().values() if p.is_floating_point()) * 4 / 2**20
    for r in records:
        assert r.error is None and set(r.to_dict()) >= REQUIRED
        assert (r.model, r.img_size, r.params, r.macs) == ("tiny18", 64, cost.params, cost.macs)
        assert 0 < r.latency_ms_p50 <= r.latency_ms_p90
        assert r.throughput_img_s == pytest.approx(r.batch_size / (r.latency_ms_p50 / 1000))
        assert r.gflops_s == pytest.approx(2 * cost.macs * r.throughput_img_s / 1e9)
        assert r.peak_mem_mb >= weights_mb
        assert r.threads == torch.get_num_threads()


def test_a_failing_mode_is_reported_and_the_run_goes_on(monkeypatch):
    def broken(model, settings):
        raise RuntimeError("kernel exploded")

    monkeypatch.setitem(modes.BUILDERS, "channels_last", broken)
    settings = BenchSettings(modes=("channels_last", "fused"), batch_sizes=(1,), img_size=64, warmup=0, reps=1)
    records = run_bench([("tiny18", tiny())], settings, verbose=False)
    assert records[0].error == "RuntimeError: kernel exploded" and records[0].throughput_img_s is None
    assert records[1].mode == "fused" and records[1].error is None


def test_settings_reject_bad_values():
    with pytest.raises(ResnetsError, match="unknown inference mode"):
        BenchSettings(modes=("fastest",))
    with pytest.raises(ResnetsError, match="batch sizes"):
        BenchSettings(batch_sizes=(0,))
    assert BenchSettings(modes=("all",)).modes == modes.MODES


def test_percentile_interpolates():
    assert percentile([4.0], 90) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 90) == pytest.approx(4.6)


def test_peak_memory_sees_a_large_allocation():
    with PeakMemory(torch.device("cpu")) as memory:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        del block
    assert memory.peak_mb >= 48


def test_cli_json_and_csv(capsys, tmp_path):
    out_csv = tmp_path / "bench.csv"
    code = main(["bench", "resnet18", "--img-size", "64", "--batch-size", "1,2", "--mode", "fused", "--reps", "2",
                 "--warmup", "0", "--json", "--csv", str(out_csv)])
    assert code == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["batch_size"] for r in records] == [1, 2]
    assert all(set(r) >= REQUIRED and r["params"] == 11_689_512 and r["mode"] == "fused" for r in records)
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 2 and rows[0]["model"] == "resnet18" and float(rows[1]["throughput_img_s"]) > 0


def test_cli_table_and_bad_input(capsys):
    assert main(["bench", "resnet18", "--img-size", "64", "--batch-size", "1", "--mode", "eager", "--reps", "1",
                 "--warmup", "0"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:2] == ["model", "mode"] and "resnet18" in table
    assert main(["bench", "resnet5O"]) == 2
    assert "unknown model 'resnet5O'" in capsys.readouterr().err
    assert main(["bench", "resnet18", "--mode", "turbo"]) == 2
    assert main(["bench", "resnet18", "--plot", "x.png"]) == 2
    assert "--accuracy-csv" in capsys.readouterr().err


# --- plot ---------------------------------------------------------------------------------------------------


def test_pareto_front_throughput_and_latency():
    # (images/s, top-1): C is beaten by B on both axes; D ties A on speed but is less accurate.
    points = [(10.0, 80.0), (30.0, 76.0), (20.0, 75.0), (10.0, 79.0), (5.0, 81.0)]
    assert pareto_front(points) == [4, 0, 1]
    # latency: lower is better, so the fast-and-accurate corner flips
    latency = [(100.0, 80.0), (30.0, 76.0), (50.0, 75.0), (200.0, 81.0)]
    assert pareto_front(latency, higher_x_is_better=False) == [1, 0, 3]
    assert pareto_front([(1.0, 1.0), (1.0, 1.0)]) == [0, 1]  # equal points do not dominate each other


def test_plot_writes_png_with_front(tmp_path, capsys):
    acc = tmp_path / "acc.csv"
    acc.write_text("model,top1,source\nresnet18,69.76,tv\nresnet50d,80.73,timm\n")
    code = main(["bench", "resnet18", "resnet50d", "--img-size", "64", "--batch-size", "1", "--mode", "fused",
                 "--reps", "1", "--warmup", "0", "--plot", str(tmp_path / "p.png"), "--accuracy-csv", str(acc)])
    assert code == 0
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Pareto front" in capsys.readouterr().err


def test_plot_points_and_accuracy_csv_errors(tmp_path):
    settings = BenchSettings(modes=("eager", "fused"), batch_sizes=(1, 2), img_size=64, warmup=0, reps=1)
    records = run_bench([("a", tiny())], settings, verbose=False)
    points = plot_points(records, {"a": 70.0, "other": 80.0})
    fastest = max((r for r in records if r.batch_size == 2), key=lambda r: r.throughput_img_s)
    assert len(points) == 1 and points[0].mode == fastest.mode and points[0].speed == fastest.throughput_img_s
    front = plot_accuracy_vs_speed(points, tmp_path / "one.png", x="throughput")
    assert [p.model for p in front] == ["a"]
    with pytest.raises(ResnetsError, match="nothing to plot"):
        plot_accuracy_vs_speed([], tmp_path / "none.png")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,acc\nresnet18,70\n")
    with pytest.raises(ResnetsError, match="model,top1"):
        read_accuracy_csv(bad)
    bad.write_text("model,top1\nresnet18,seventy\n")
    with pytest.raises(ResnetsError, match="line 2"):
        read_accuracy_csv(bad)
    with pytest.raises(ResnetsError, match="not found"):
        read_accuracy_csv(tmp_path / "missing.csv")


# --- reduced precisions -------------------------------------------------------------------------------------


@pytest.mark.skipif(not all(importlib.util.find_spec(n) for n in ("onnx", "onnxruntime")), reason="onnx missing")
def test_int8_records_carry_the_accuracy_change(shared_data, capsys):
    folder = shared_data / "imagenette-mini"
    model = tiny()
    model.class_names = sorted(p.name for p in (folder / "train").iterdir() if p.is_dir())
    settings = BenchSettings(modes=("onnx",), batch_sizes=(1, 2), img_size=64, warmup=0, reps=1, precision="int8",
                             calib=str(folder / "train"), int8_val=str(folder / "val"))
    records = run_bench([("tiny18", model)], settings, verbose=False)
    assert [(r.mode, r.precision, r.backend) for r in records] == [("onnx", "int8", "onnxruntime")] * 2
    for r in records:
        assert r.error is None and 0 <= r.agreement <= 100 and r.top1_fp32 is not None and r.top1 is not None
    assert "top-1 agrees with fp32 eager" in format_table(records)
    with pytest.raises(ResnetsError, match="--calib DIR"):
        BenchSettings(precision="int8")
    with pytest.raises(ResnetsError, match="not int8"):
        BenchSettings(precision="int8", calib=str(folder), train=True)


def test_bf16_records_say_so_and_check_agreement():
    settings = BenchSettings(modes=("channels_last",), batch_sizes=(2,), img_size=64, warmup=0, reps=1,
                             precision="bfloat16")
    [record] = run_bench([("tiny18", tiny())], settings, verbose=False)
    assert (record.precision, record.dtype) == ("bf16", "bfloat16") and settings.dtype == "bfloat16"
    assert 90 <= record.agreement <= 100 and record.top1 is None


def test_image_files_spread_over_classes(shared_data):
    from resnets.evaluate import image_files

    files = image_files(shared_data / "imagenette-mini" / "val", limit=20)
    assert len(files) == 20 and len({p.parent.name for p in files}) == 10  # the limit still samples every class
    with pytest.raises(ResnetsError, match="image folder not found"):
        image_files(shared_data / "nope")
