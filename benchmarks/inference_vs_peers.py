"""Our inference modes against timm's and OpenVINO's on the same network, weights and machine.

For each model, image size and batch size the runners are timed *interleaved*: every repetition calls
each runner once in turn, so a noisy neighbour slows all of them alike. Reported per runner: median
latency, images/s, achieved GFLOP/s (2 x MACs x images/s) and its share of this machine's fp32 matmul
rate, and ratios against timm eager, timm compiled, OpenVINO fp32 and OpenVINO bf16. Printed with them:
the machine's capabilities (CPU model, AVX512/AMX flags, torch's and oneDNN's ISA, OpenVINO's list) and
the fp32 and bf16 matmul rates measured in the same run, so a ratio can be read against the hardware.

Peers: timm eager / channels_last / torch.compile (as timm's benchmark.py), timm channels_last under bf16
autocast, and OpenVINO run as a user deploys it (timm's model through ov.convert_model, the CPU plugin
with the fp32 or bf16 precision hint, threads = ours). `ours_onnx` is ONNX Runtime fp32 on our graph.

    python benchmarks/inference_vs_peers.py --quick                 # ResNet-50 @224, batch 1 and 16
    python benchmarks/inference_vs_peers.py --markdown out.md       # 4 models @224 (~25 min on 2 cores)
    python benchmarks/inference_vs_peers.py --sizes 160 --markdown out160.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch._dynamo

import resnets
from resnets.hardware import capabilities, matmul_gflops, onednn_isa, openvino_capabilities
from resnets.inference import modes as modes_module
from resnets.inference.best import BestOptions
from resnets.inference.modes import prepare
from resnets.models.cost import count_cost

DEFAULT_MODELS = ("resnet18", "resnet50", "resnext50_32x4d", "resnetrs50")
PEERS = ("timm_eager", "timm_channels_last", "timm_compiled", "timm_bf16", "openvino_fp32", "openvino_bf16")
RATIO_BASES = {"vs_timm_eager": "timm_eager", "vs_timm_compiled": "timm_compiled", "vs_ov_fp32": "openvino_fp32",
               "vs_ov_bf16": "openvino_bf16", "vs_ort_fp32": "ours_onnx"}
TARGETS = {"vs_timm_eager_b16": 2.0, "vs_timm_compiled_b16": 1.2, "latency_vs_timm_eager_b1": 0.6}
"""issue 4: best >= 2.0x timm eager and >= 1.2x timm compiled (batch 16); batch-1 latency <= 0.6x eager."""


@dataclass
class Result:
    model: str
    img_size: int
    batch_size: int
    runner: str
    mode_used: str
    latency_ms_p50: float
    throughput_img_s: float
    gflops_s: float
    pct_of_sgemm: float
    precision: str = "fp32"
    vs_timm_eager: float | None = None
    vs_timm_compiled: float | None = None
    vs_ov_fp32: float | None = None
    vs_ov_bf16: float | None = None
    vs_ort_fp32: float | None = None
    prepare_s: float = 0.0
    max_abs_diff_vs_timm: float | None = None
    choice: str | None = None


def sgemm_gflops(size: int = 2048, reps: int = 8) -> float:
    """Best-of-`reps` fp32 matmul rate with torch's BLAS at the current thread count."""
    return matmul_gflops(torch.float32, size, reps)


def machine_capabilities() -> dict:
    caps = capabilities("cpu")
    return {"cpu": caps.name, "features": list(caps.features), "torch_isa": caps.torch_isa,
            "native": dict(caps.native), "onednn_isa": onednn_isa(), "openvino": openvino_capabilities()}


_OV_MODELS: dict[str, object] = {}  # model name -> openvino.Model converted from timm's module (22 s for RN-50)


def _openvino_peer(name: str, net: torch.nn.Module, precision: str):
    import openvino as ov

    if name not in _OV_MODELS:
        _OV_MODELS[name] = ov.convert_model(net, example_input=torch.randn(1, 3, 224, 224))
    hint = {"fp32": "f32", "bf16": "bf16"}[precision]
    compiled = ov.Core().compile_model(_OV_MODELS[name], "CPU", {
        "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        "PERFORMANCE_HINT": "LATENCY"})
    used = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    if used != hint:
        raise RuntimeError(f"OpenVINO runs {used} here, not {precision} (this CPU lacks it natively)")
    request = compiled.create_infer_request()

    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(request.infer([x.numpy()])[0].copy())

    return fn


def _timm_runners(name: str, state_dict: dict, num_classes: int, size: int, batch: int,
                  peers: list[str]) -> dict[str, tuple]:
    """timm's model with our weights: eager (NCHW), channels_last, torch.compile (default settings), channels_last
    with bf16 autocast, and OpenVINO (fp32 / bf16 hints)."""
    import timm

    out = {}
    for peer in peers:
        start = time.perf_counter()
        net = timm.create_model(name, pretrained=False, num_classes=num_classes)
        net.load_state_dict(state_dict)
        net.eval()
        precision = "bf16" if peer.endswith("bf16") else "fp32"
        if peer.startswith("openvino"):
            try:
                fn = _openvino_peer(name, net, precision)
            except (ImportError, RuntimeError) as exc:
                print(f"note: {peer} left out: {exc}", file=sys.stderr)
                continue
        elif peer == "timm_channels_last":
            net = net.to(memory_format=torch.channels_last)

            def fn(x: torch.Tensor, n=net) -> torch.Tensor:
                return n(x.contiguous(memory_format=torch.channels_last))
        elif peer == "timm_bf16":
            net = net.to(memory_format=torch.channels_last)

            def fn(x: torch.Tensor, n=net) -> torch.Tensor:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return n(x.contiguous(memory_format=torch.channels_last)).float()
        elif peer == "timm_compiled":
            compiled = torch.compile(net)  # timm benchmark.py --torchcompile: inductor, default mode
            graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
            with torch.inference_mode():
                compiled(torch.zeros(batch, 3, size, size))
            if torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs:  # dynamo gave up: eager
                raise RuntimeError(f"torch.compile did not compile timm {name} (recompile limit?)")
            fn = compiled
        else:
            fn = net
        out[peer] = (fn, peer, time.perf_counter() - start, precision, None)
    return out


def _our_runners(model: resnets.ResNet, size: int, batch: int, our_modes: list[str],
                 best: BestOptions) -> dict[str, tuple]:
    out = {}
    for mode in our_modes:
        start = time.perf_counter()
        runner = prepare(model, mode, img_size=size, batch_size=batch, verbose=mode == "best", best=best)
        choice = (f"{runner.selection.chosen.name} ({runner.selection.chosen.verdict})" if runner.selection else None)
        out[f"ours_{mode}"] = (runner, runner.mode, time.perf_counter() - start, runner.precision, choice)
    return out


def interleaved(runners: dict[str, Callable], images: torch.Tensor, warmup: int, reps: int) -> dict[str, list[float]]:
    """Seconds per call for every runner, alternating runners within each repetition."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in runners.values():
                fn(images)
        for rep in range(reps):
            order = list(runners.items())
            if rep % 2:  # alternate the order so no runner always follows the same one
                order.reverse()
            for name, fn in order:
                # A short untimed gap: ONNX Runtime's worker threads spin for a while after a run and would
                # otherwise steal cycles from whichever runner comes next.
                time.sleep(0.005)
                start = time.perf_counter()
                fn(images)
                times[name].append(time.perf_counter() - start)
    return times


def bench_one(name: str, size: int, batch_sizes: list[int], our_modes: list[str], peers: list[str], warmup: int,
              reps: int, sgemm: list[float], best: BestOptions, weights: Path | None = None) -> list[Result]:
    # Random weights time every runner alike; trained weights (--weights) also give int8's top-1 check a meaning.
    model = (resnets.load_model(weights) if weights else resnets.create_model(name)).eval()
    macs = count_cost(model, size).macs
    state_dict = model.state_dict()
    results = []
    for batch in batch_sizes:
        # Each compiled model is a recompile of the same forward code: past dynamo's limit it would silently
        # run eagerly. Nothing compiled for an earlier shape is used again, so start afresh.
        torch._dynamo.reset()
        runners = {**_our_runners(model, size, batch, our_modes, best),
                   **_timm_runners(name, state_dict, model.config.num_classes, size, batch, peers)}
        images = torch.randn(batch, 3, size, size)
        with torch.inference_mode():
            reference = runners[peers[0]][0](images) if peers else None
            diffs = {k: (v[0](images) - reference).abs().max().item() if reference is not None else None
                     for k, v in runners.items()}
        times = interleaved({k: v[0] for k, v in runners.items()}, images, warmup, reps)
        medians = {k: statistics.median(v) for k, v in times.items()}
        for key, (_fn, used, prep, precision, choice) in runners.items():
            img_s = batch / medians[key]
            gflops = 2 * macs * img_s / 1e9
            result = Result(name, size, batch, key, used, medians[key] * 1000, img_s, gflops, 100 * gflops / sgemm[0],
                            precision=precision, prepare_s=prep, max_abs_diff_vs_timm=diffs[key], choice=choice)
            for field_name, base in RATIO_BASES.items():
                if base in medians:
                    setattr(result, field_name, medians[base] / medians[key])
            results.append(result)
            ratios = "  ".join(f"x{getattr(result, f):.2f} {f[3:]}" for f in RATIO_BASES if getattr(result, f))
            print(f"{name} @{size} b{batch} {key:<20} {used:<14} {precision} {medians[key] * 1000:9.1f} ms "
                  f"{img_s:8.1f} img/s {gflops:6.1f} GFLOP/s  {ratios}  (prep {prep:.1f} s, diff {diffs[key] or 0:.1e})",
                  file=sys.stderr, flush=True)
    return results


def target_check(results: list[Result]) -> list[str]:
    """One line per model/size: our best against the issue's targets."""
    lines = []
    keys = sorted({(r.model, r.img_size) for r in results}, key=lambda k: (k[0], -k[1]))
    for model, size in keys:
        best = {r.batch_size: r for r in results if r.model == model and r.img_size == size and r.runner == "ours_best"}
        parts = []
        if 16 in best and best[16].vs_timm_eager is not None:
            ok = best[16].vs_timm_eager >= TARGETS["vs_timm_eager_b16"]
            parts.append(f"b16 vs timm eager x{best[16].vs_timm_eager:.2f} (target >= 2.0: {'met' if ok else 'MISSED'})")
        if 16 in best and best[16].vs_timm_compiled is not None:
            ok = best[16].vs_timm_compiled >= TARGETS["vs_timm_compiled_b16"]
            parts.append(f"vs timm compiled x{best[16].vs_timm_compiled:.2f} (target >= 1.2: {'met' if ok else 'MISSED'})")
        if 1 in best and best[1].vs_timm_eager is not None:
            ratio = 1 / best[1].vs_timm_eager
            ok = ratio <= TARGETS["latency_vs_timm_eager_b1"]
            parts.append(f"b1 latency {ratio:.2f}x timm eager (target <= 0.6: {'met' if ok else 'MISSED'})")
        for batch, r in sorted(best.items()):
            for field_name, label in (("vs_ort_fp32", "ONNX Runtime fp32"), ("vs_ov_fp32", "OpenVINO fp32"),
                                      ("vs_ov_bf16", "OpenVINO bf16")):
                ratio = getattr(r, field_name)
                if ratio is not None:
                    verdict = "" if field_name == "vs_ov_bf16" else f" (target >= 1.0: {'met' if ratio >= 0.995 else 'MISSED'})"
                    parts.append(f"b{batch} vs {label} x{ratio:.2f}{verdict}")
        if parts:
            lines.append(f"{model} @{size}: " + "; ".join(parts))
    return lines


def to_markdown(results: list[Result], meta: dict) -> str:
    caps = meta["capabilities"]
    rates = meta["matmul_gflops"]
    lines = [f"Machine: {caps['cpu']}, {meta['cores']} cores; features {' '.join(caps['features'])}; torch ISA "
             f"{caps['torch_isa']}; oneDNN ISA: {caps['onednn_isa']}; OpenVINO CPU capabilities: {caps['openvino']}; "
             f"native precisions: {', '.join(f'{k} ({v})' for k, v in caps['native'].items())}.",
             f"Matmul rates (2048^2, torch, {meta['threads']} threads), before / after: fp32 "
             f"{rates['fp32'][0]:.0f} / {rates['fp32'][1]:.0f} GFLOP/s, bf16 {rates['bf16'][0]:.0f} / "
             f"{rates['bf16'][1]:.0f} GFLOP/s. torch {meta['torch']}, timm {meta['timm']}, onnxruntime "
             f"{meta['onnxruntime']}, openvino {meta['openvino']}; 1-min load average before/after "
             f"{meta['load_average_before_after']} (2.0 = both cores busy with other work).",
             f"Command: `{meta['command']}`", "",
             "| model | size | batch | runner | mode used | precision | p50 ms | img/s | GFLOP/s | % fp32 mm | "
             "vs timm eager | vs timm compiled | vs ORT fp32 | vs OV fp32 | vs OV bf16 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def ratio(value: float | None) -> str:
        return f"{value:.2f}x" if value is not None else ""

    for r in results:
        lines.append(f"| {r.model} | {r.img_size} | {r.batch_size} | {r.runner} | {r.mode_used} | {r.precision} | "
                     f"{r.latency_ms_p50:.1f} | {r.throughput_img_s:.1f} | {r.gflops_s:.0f} | {r.pct_of_sgemm:.0f} | "
                     f"{ratio(r.vs_timm_eager)} | {ratio(r.vs_timm_compiled)} | {ratio(r.vs_ort_fp32)} | "
                     f"{ratio(r.vs_ov_fp32)} | {ratio(r.vs_ov_bf16)} |")
    choices = sorted({f"{r.model} b{r.batch_size}: {r.choice}" for r in results if r.choice})
    lines += ["", "What `best` chose:", ""] + [f"- {c}" for c in choices]
    lines += ["", "Targets, our `best`:", ""] + [f"- {line}" for line in target_check(results)]
    return "\n".join(lines) + "\n"


def _csv(text: str, cast=str) -> list:
    return [cast(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated preset names")
    parser.add_argument("--sizes", default="224", help="image sizes, e.g. 224,160 (default 224)")
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--ours", default="best,onnx",
                        help="our modes to time (best, eager, fused, channels_last, compile, onnx, openvino)")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"timm runners: {', '.join(PEERS)}")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per runner (default 5)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch/ORT threads (default: all cores)")
    parser.add_argument("--quick", action="store_true", help="ResNet-50 @224 only, 3 repetitions")
    parser.add_argument("--compile-freezing", choices=("on", "off"), default=None,
                        help="override inductor freezing for our compile mode (to choose COMPILE_OPTIONS)")
    parser.add_argument("--compile-mode", default=None, help="override torch.compile mode for our compile mode")
    parser.add_argument("--precision", default=None, help="restrict our best to one precision (e.g. fp32)")
    parser.add_argument("--allow-int8", action="store_true", help="let our best pick int8 (needs --calib)")
    parser.add_argument("--calib", default=None, help="images: int8 calibration and best's check set")
    parser.add_argument("--int8-val", default=None, help="labelled folder for int8's top-1 check")
    parser.add_argument("--weights", type=Path, default=None,
                        help="one of our weight files (with class names) for the one model in --models, e.g. "
                             "trained on --int8-val's classes so int8's top-1 change is measured on a real model")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="write a markdown table here")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    if args.compile_freezing:
        modes_module.COMPILE_OPTIONS["freezing"] = args.compile_freezing == "on"
    if args.compile_mode:
        modes_module.COMPILE_OPTIONS["mode"] = args.compile_mode
    models, sizes = _csv(args.models), _csv(args.sizes, int)
    reps = args.reps
    if args.quick:
        models, sizes, reps = ["resnet50"], [224], min(reps, 3)
    peers = [p for p in _csv(args.peers) if p in PEERS]
    if args.weights and len(models) != 1:
        parser.error("--weights holds one network: name exactly that one in --models")
    best = BestOptions(precision=args.precision, calib=args.calib, allow_int8=args.allow_int8, int8_val=args.int8_val)
    load_before = os.getloadavg()[0]
    caps = machine_capabilities()
    print(f"capabilities: {caps}", file=sys.stderr)
    sgemm = sgemm_gflops()
    bf16_before = matmul_gflops(torch.bfloat16)
    print(f"matmul: fp32 {sgemm:.0f} GFLOP/s, bf16 {bf16_before:.0f} GFLOP/s with {torch.get_num_threads()} threads",
          file=sys.stderr)
    results: list[Result] = []
    reference = [sgemm]  # % of sgemm uses the best rate seen: the start may have been disturbed
    for name in models:
        for size in sizes:
            results += bench_one(name, size, _csv(args.batch_sizes, int), _csv(args.ours), peers, args.warmup, reps,
                                 reference, best, args.weights)
    sgemm_after = sgemm_gflops()
    bf16_after = matmul_gflops(torch.bfloat16)
    if sgemm_after > sgemm:  # recompute the % against the better reference
        for r in results:
            r.pct_of_sgemm = 100 * r.gflops_s / sgemm_after
    import onnxruntime
    import timm

    try:
        import openvino
        ov_version = openvino.__version__
    except ImportError:
        ov_version = "not installed"
    meta = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "cores": os.cpu_count(), "capabilities": caps, "openvino": ov_version,
            "matmul_gflops": {"fp32": [sgemm, sgemm_after], "bf16": [bf16_before, bf16_after]},
            "torch": torch.__version__, "timm": timm.__version__, "onnxruntime": onnxruntime.__version__,
            "threads": torch.get_num_threads(), "sgemm_gflops": sgemm, "sgemm_gflops_after": sgemm_after,
            "compile_options": dict(modes_module.COMPILE_OPTIONS),
            "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "command": "python benchmarks/inference_vs_peers.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    markdown = to_markdown(results, meta)
    print(markdown)
    if args.markdown:
        args.markdown.write_text(markdown)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
