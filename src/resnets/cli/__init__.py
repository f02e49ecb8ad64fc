"""`resnets <command>`: a thin shell over the library. Each command lives in its own module here,
exposing `add_arguments(parser)` and `run(args) -> int`; user errors print one line, never a traceback."""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import ResnetsError

# command name -> (module, one-line help). Modules are imported lazily so `resnets --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("models", "list the model presets with parameters and MACs"),
    "info": ("info", "per-stage shapes, blocks, parameters and MACs of one model"),
    "convert": ("convert", "convert timm/torchvision/Keras/PaddleClas weights to a resnets safetensors file"),
    "recipes": ("recipes", "list the training recipes, or print one"),
    "train": ("train", "train a model with a published recipe"),
    "eval": ("evaluate", "evaluate weights on an image folder"),
    "bench": ("bench", "measure parameters, MACs, latency, throughput and memory"),
    "predict": ("predict", "top-k classes for images"),
    "export": ("export", "export to ONNX or TorchScript with a parity check"),
    "study": ("study", "seed, scaling, ablation and transfer studies: resumable sets of runs, locally or on Ray"),
}

# Commands that run networks: they keep freed host memory for reuse (resnets.host_memory) unless told not to.
RETAINING_MEMORY = {"train", "eval", "bench", "predict", "study"}


def _load(module: str):
    return importlib.import_module(f"{__name__}.{module}")


def build_parser(commands: dict[str, tuple[str, str]] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resnets", description="The ResNet family: build, train, evaluate, measure.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in (commands or COMMANDS).items():
        try:
            mod = _load(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(f"{__name__}."):
                continue  # command not built in this version
            raise
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(command_parser)
        if name in RETAINING_MEMORY:
            command_parser.add_argument(
                "--release-memory", action="store_true",
                help="hand freed host memory back to the OS after every use, as the C library does by default "
                     "(slower on CPU: every batch page-faults its buffers in again; smaller idle footprint)")
        command_parser.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Build only the requested command's parser: importing every command would load torch.compile etc.
    wanted = {argv[0]: COMMANDS[argv[0]]} if argv and argv[0] in COMMANDS else None
    parser = build_parser(wanted)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if not argv else 2
    try:
        if args.command in RETAINING_MEMORY and not getattr(args, "release_memory", False):
            from ..host_memory import retain_freed_memory

            retain_freed_memory()
        return int(args._run(args) or 0)
    except ResnetsError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `resnets models | head`
        return 0


def _one_line(exc: BaseException) -> str:
    """The user-facing line of an error. A DataLoader worker re-raises a worker's ResnetsError with the worker's
    traceback folded into the message ('Caught ResnetsError in DataLoader worker ...'); keep only its last line."""
    text = str(exc).strip()
    if "\n" not in text:
        return text
    last = text.splitlines()[-1].strip()
    prefix = "resnets.errors.ResnetsError: "
    return last[len(prefix):] if last.startswith(prefix) else last


if __name__ == "__main__":
    sys.exit(main())
