"""The Keras side of tests/peers/test_keras_parity.py; runs in the tf-keras environment (make peers-keras).

    python keras_peer.py OUT_DIR NAME:FORMAT[:SIZE] ...

For each Keras applications model NAME (e.g. ResNetRS50) it builds the network with random weights and
randomised BatchNorm statistics (and random biases, which Keras' init leaves at zero), saves it as FORMAT
(h5: legacy `model.save("m.h5")`; keras: the `.keras` zip; weights_h5: legacy `save_weights("m.h5")`,
names only; weights: the bare `.weights.h5`), and records the logits for fixed 0-255 RGB images after
Keras' own preprocess_input. It writes OUT_DIR/NAME-FORMAT.<suffix> and OUT_DIR/NAME-FORMAT.npz and one JSON
line per model on stdout. Nothing here imports resnets: the two frameworks meet only through the files.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # reproducible float order on CPU

import numpy as np  # noqa: E402
import tf_keras as keras  # noqa: E402

SUFFIX = {"h5": ".h5", "keras": ".keras", "weights_h5": ".h5", "weights": ".weights.h5"}
# preprocess_input of each family; ResNet-RS preprocesses inside the model (Rescaling + Normalization).
PREPROCESS = {"ResNetRS": lambda x: x, "V2": keras.applications.resnet_v2.preprocess_input,
              "v1": keras.applications.resnet.preprocess_input}


def _family(name: str) -> str:
    return "ResNetRS" if name.startswith("ResNetRS") else "V2" if name.endswith("V2") else "v1"


def _randomise(model: keras.Model, rng: np.random.Generator) -> None:
    """Random biases and BN parameters and statistics. The BN that closes each residual branch gets a small
    gamma: at full scale a 400-layer net's logits grow to 1e8 on random statistics, where a tolerance proves
    little."""
    for layer in model.layers:
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            closing = layer.name.endswith(("_3_bn", "batch_norm_3"))
            low, high = (0.1, 0.3) if closing else (0.5, 1.5)
            gamma, beta, mean, var = weights
            layer.set_weights([rng.uniform(low, high, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2.0, var.shape)])
        elif weights and isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
            layer.set_weights([weights[0]] + [rng.normal(0, 0.2, w.shape) for w in weights[1:]])


def build(out_dir: Path, spec: str, rng: np.random.Generator) -> dict:
    name, fmt, *rest = spec.split(":")
    size = int(rest[0]) if rest else 64
    start = time.perf_counter()
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classifier_activation=None)
    preprocess = PREPROCESS[_family(name)]
    _randomise(model, rng)
    images = rng.uniform(0, 255, (2, size, size, 3)).astype("float32")
    logits = model(preprocess(images.copy()), training=False).numpy()
    path = out_dir / f"{name}-{fmt}{SUFFIX[fmt]}"
    if fmt in ("h5", "keras"):
        model.save(path)
    else:
        model.save_weights(path)
    np.savez(out_dir / f"{name}-{fmt}.npz", images=images, logits=logits)
    keras.backend.clear_session()
    return {"name": name, "format": fmt, "file": path.name, "size": size, "seconds": time.perf_counter() - start,
            "max_abs_logit": float(np.abs(logits).max())}


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for spec in argv[1:]:
        print(json.dumps(build(out_dir, spec, rng)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
