"""Parity with the real tf-keras: Keras builds each applications ResNet with random weights and randomised BN
statistics in its own process (keras_peer.py, in the environment `make peers-keras` creates), saves its file
and logits; we convert the file and must give the same logits within 1e-4 x max(1, |logit|).

One peer process serves the whole module and streams one JSON line per model, so each test starts as soon as
its file is written, while Keras builds the next. Each model is saved in one format, the formats alternating
within each family so both `.h5` and `.keras` (and a names-only `save_weights` .h5) are read for every family.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from resnets.cli import main as cli_main
from resnets.errors import ResnetsError
from resnets.weights.factory import create_model, load_model, load_weights
from resnets.weights.resolve import model_from_weights

REPO = Path(__file__).resolve().parents[2]
PEER = Path(os.environ.get("RESNETS_PEER_KERAS", REPO / ".venv-peers" / "keras" / "bin" / "python"))
SCRIPT = Path(__file__).with_name("keras_peer.py")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PEER.exists(), reason=f"tf-keras peer environment absent ({PEER}): run `make peers-keras`"),
]

# (Keras constructor, format, image size, our preset). 64 px where it is cheap, 32 (the networks' minimum) for
# the deep ones; the biggest as legacy .h5, whose save is the faster.
MODELS = [
    ("ResNet50", "h5", 64, "resnet50a"),
    ("ResNet101", "keras", 32, "resnet101a"),
    ("ResNet152", "h5", 32, "resnet152a"),
    ("ResNet50V2", "keras", 64, "resnet50v2"),
    ("ResNet101V2", "h5", 32, "resnet101v2"),
    ("ResNet152V2", "keras", 32, "resnet152v2"),
    ("ResNetRS50", "keras", 64, "resnetrs50"),
    ("ResNetRS50", "weights_h5", 32, "resnetrs50"),
    ("ResNetRS101", "h5", 32, "resnetrs101"),
    ("ResNetRS152", "keras", 32, "resnetrs152"),
    ("ResNetRS200", "h5", 32, "resnetrs200"),
    ("ResNetRS270", "h5", 32, "resnetrs270"),
    ("ResNetRS350", "h5", 32, "resnetrs350"),
    ("ResNetRS420", "h5", 32, "resnetrs420"),
]


class Peer:
    """The running keras_peer.py: `wait(name, fmt)` blocks until that model's files are written."""

    def __init__(self, out_dir: Path, models: list[tuple]) -> None:
        self.out_dir = out_dir
        self.stderr = open(out_dir / "peer.stderr", "w+")  # noqa: SIM115 - closed in close()
        specs = [f"{name}:{fmt}:{size}" for name, fmt, size, _ in models]
        self.process = subprocess.Popen([str(PEER), str(SCRIPT), str(out_dir), *specs], stdout=subprocess.PIPE,
                                        stderr=self.stderr, text=True, cwd=out_dir)
        self.records: dict[tuple[str, str], dict] = {}

    def wait(self, name: str, fmt: str) -> dict:
        while (name, fmt) not in self.records:
            line = self.process.stdout.readline()
            if not line:
                self.process.wait()
                self.stderr.seek(0)
                tail = self.stderr.read()[-2000:]
                pytest.fail(f"the Keras peer exited ({self.process.returncode}) before {name}:{fmt}:\n{tail}")
            record = json.loads(line)
            self.records[(record["name"], record["format"])] = record
        return self.records[(name, fmt)]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.stderr.close()


@pytest.fixture(scope="module")
def peer(request, tmp_path_factory):
    """Keras builds only the models of the tests selected (-k), in the order they run."""
    wanted = [item.callspec.params for item in request.session.items
              if item.module is request.module and hasattr(item, "callspec")]
    models = [m for m in MODELS if any((p["name"], p["fmt"]) == m[:2] for p in wanted)]
    running = Peer(tmp_path_factory.mktemp("keras_peer"), models)
    yield running
    running.close()


def _our_logits(model, images: np.ndarray) -> np.ndarray:
    """Our model on Keras' 0-255 RGB NHWC images, normalised by the converted config's mean/std."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2) / 255
    mean = torch.tensor(model.config.mean)[:, None, None]
    std = torch.tensor(model.config.std)[:, None, None]
    with torch.no_grad():
        return model.eval()((x - mean) / std).numpy()


def _assert_agrees(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    assert np.isfinite(theirs).all() and theirs.std() > 1e-3, "degenerate logits prove nothing"
    excess = np.abs(ours - theirs) / np.maximum(1.0, np.abs(theirs))
    assert excess.max() < 1e-4, f"max |difference| / max(1, |logit|) = {excess.max():.2e}"


VIA_CLI = {("ResNet50", "h5"), ("ResNetRS50", "keras")}  # the rest through create_model


@pytest.mark.parametrize(("name", "fmt", "size", "preset"), MODELS, ids=[f"{m[0]}-{m[1]}" for m in MODELS])
def test_converted_keras_model_gives_keras_logits(peer, name, fmt, size, preset, tmp_path, capsys):
    record = peer.wait(name, fmt)
    path = peer.out_dir / record["file"]
    expected = np.load(peer.out_dir / f"{name}-{fmt}.npz")
    try:
        if (name, fmt) in VIA_CLI:
            # `resnets convert SRC --out DST` names the preset from the file; DST carries the preprocessing
            # (caffe's BGR and mean for v1), so load_model alone reproduces Keras' model(preprocess_input(x)).
            out = tmp_path / "converted.safetensors"
            assert cli_main(["convert", str(path), "--out", str(out)]) == 0
            assert f"(keras: Keras {name}) -> {out}: {preset}," in capsys.readouterr().out
            model = load_model(out)
        elif fmt == "weights_h5":  # eval/predict/bench's loader: no model name, the file says it
            model = model_from_weights(path)
            assert model.config.name == preset and model.weights_source == f"keras: Keras {name}"
        else:
            model = create_model(preset, weights=path)  # source "auto": recognised as Keras from the file
            assert model.weights_source == f"keras: Keras {name}"
        assert record["size"] == size
        _assert_agrees(_our_logits(model, expected["images"]), expected["logits"])
        # load_weights into a built model: v2's preprocessing is the preset's, so it loads; v1's caffe mode
        # would leave the model normalising wrongly, so it is refused (create_model carries it over).
        if (name, fmt) == ("ResNet50V2", "keras"):
            rebuilt = create_model(preset)
            load_weights(rebuilt, path)
            _assert_agrees(_our_logits(rebuilt, expected["images"]), expected["logits"])
        if (name, fmt) == ("ResNet50", "h5"):
            with pytest.raises(ResnetsError, match="expects other preprocessing"):
                load_weights(create_model(preset), path)
    finally:
        path.unlink()  # the deep ones are hundreds of MB; keep the disk free for the next
