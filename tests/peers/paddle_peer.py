"""Run inside the PaddleClas peer environment (.venv-peers/paddle), never in our own: builds PaddleClas models
with random weights and randomised BatchNorm statistics, and writes for each its `.pdparams` (paddle.save of the
state dict, as PaddleClas publishes them) and its logits on fixed inputs.

    python tests/peers/paddle_peer.py OUT_DIR --size 64 ResNet50_vd SE_ResNeXt50_vd_32x4d ...

OUT_DIR receives inputs.npy (N x 3 x S x S float32), NAME.pdparams and NAME.logits.npy, for the model-zoo classes
also NAME.params.pdparams (the same tensors keyed by their parameter names), and peer.json with the versions. Only numpy, paddle and paddleclas are imported here: this file must not import resnets or torch.
"""

from __future__ import annotations

import argparse
import gc
import json
import pickle
import time
from pathlib import Path

import numpy as np


def randomize_bn(model, rng: np.random.RandomState) -> None:
    """BN scale, shift, mean and variance away from their identity defaults, so a mis-mapped one shows."""
    import paddle

    for layer in model.sublayers():
        if isinstance(layer, (paddle.nn.BatchNorm, paddle.nn.BatchNorm2D)):
            channels = layer.weight.shape[0]
            layer.weight.set_value(rng.uniform(0.5, 1.5, channels).astype("float32"))
            layer.bias.set_value(rng.normal(0.0, 0.1, channels).astype("float32"))
            layer._mean.set_value(rng.normal(0.0, 0.1, channels).astype("float32"))
            layer._variance.set_value(rng.uniform(0.5, 1.5, channels).astype("float32"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("models", nargs="+", help="PaddleClas backbone names, e.g. ResNet50_vd")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()

    import paddle
    import paddleclas
    from paddleclas.ppcls.arch import backbone

    paddle.set_device("cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    inputs = np.random.RandomState(0).standard_normal((args.batch, 3, args.size, args.size)).astype("float32")
    np.save(args.out / "inputs.npy", inputs)
    timings = {}
    for index, name in enumerate(args.models):
        start = time.perf_counter()
        paddle.seed(index)
        # the model-zoo classes give their parameters fixed names, which one process may hold only once: a fresh
        # name scope per model, and the previous model freed
        with paddle.utils.unique_name.guard():
            model = getattr(backbone, name)(class_num=args.classes)
        randomize_bn(model, np.random.RandomState(index))
        model.eval()
        with paddle.no_grad():
            logits = model(paddle.to_tensor(inputs)).numpy()
            # Random deep nets reach |logit| ~ 10^3, where float32 rounding alone (ours in float32 against ours in
            # float64: 1.3e-3 on SE_ResNet50_vd) exceeds 1e-4 on the smaller logits. Scaling the classifier brings
            # the logits to a few units; a mis-mapped tensor anywhere still moves them by their own size.
            head = model.fc if hasattr(model, "fc") else model.out
            scale = 4.0 / max(float(np.abs(logits).max()), 1e-6)
            head.weight.set_value(head.weight.numpy() * scale)
            head.bias.set_value(head.bias.numpy() * scale)
            logits = model(paddle.to_tensor(inputs)).numpy()
        state = model.state_dict()
        paddle.save(state, str(args.out / f"{name}.pdparams"))
        if not name.startswith("ResNet") or name == "ResNet50_vc":  # the model zoo names its parameters
            # keyed by parameter names, as a static-graph save (paddle.static.save) writes them
            named = {tensor.name: tensor.numpy() for tensor in state.values()}
            with open(args.out / f"{name}.params.pdparams", "wb") as handle:
                pickle.dump(named, handle, protocol=4)
        np.save(args.out / f"{name}.logits.npy", logits)
        timings[name] = round(time.perf_counter() - start, 2)
        del model
        gc.collect()
    versions = {"paddle": paddle.__version__, "paddleclas": getattr(paddleclas, "__version__", "2.6"),
                "numpy": np.__version__}
    (args.out / "peer.json").write_text(json.dumps({"versions": versions, "seconds": timings}))


if __name__ == "__main__":
    main()
