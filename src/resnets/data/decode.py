"""``--decode cpu|gpu|dali|auto``: where JPEG training images are decoded.

* ``cpu``: libjpeg-turbo in the worker processes (``preprocess.decode_bytes``), as always.
* ``gpu``: the workers only read the files' bytes; the main process decodes each batch on the GPU with
  ``torchvision.io.decode_jpeg(..., device="cuda")`` (nvJPEG, batched). Anything nvJPEG refuses (PNG, a
  CMYK or corrupt JPEG) is decoded on the CPU instead, or skipped and named like any unreadable image.
* ``dali``: NVIDIA DALI's mixed (CPU Huffman + GPU IDCT) decoder, the one NVIDIA's ResNet-50 reference
  uses; the optional extra ``resnets[dali]`` (``nvidia-dali-cuda120``, from NVIDIA's package index).
* ``auto``: ``gpu`` when training on CUDA from image files that are not cached, else ``cpu``.

Without a CUDA device ``gpu`` and ``dali`` say so in one line and the run decodes on the CPU; without
DALI installed ``dali`` falls back to ``gpu`` the same way. GPU decoding needs ``--augment-on device``
(the decoded images are already on the GPU; the per-sample CPU transforms cannot take them).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from ..errors import ResnetsError
from .preprocess import decode_bytes

DECODERS = ("auto", "cpu", "gpu", "dali")
Decoder = Callable[[list[torch.Tensor], list[str]], list[torch.Tensor | None]]


def dali_available() -> bool:
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_decode(requested: str, device: torch.device, *, has_files: bool, cached: bool,
                   augment_on_device: bool, say: Callable[[str], None]) -> str:
    """The decoder a run uses for `requested` on `device`; says why when it differs from the request."""
    if requested not in DECODERS:
        raise ResnetsError(f"unknown --decode {requested!r}; choose from {', '.join(DECODERS)}")
    if requested == "auto":
        return "gpu" if device.type == "cuda" and has_files and not cached and augment_on_device else "cpu"
    if requested == "cpu":
        return "cpu"
    if device.type != "cuda":
        say(f"notice: --decode {requested} needs a CUDA device (training on {device.type}); decoding on the CPU")
        return "cpu"
    if cached:
        say(f"notice: --decode {requested}: the data set is decoded once into the cache; nothing to decode per epoch")
        return "cpu"
    if not has_files:
        say(f"notice: --decode {requested}: this data set has no image files; decoding on the CPU")
        return "cpu"
    if not augment_on_device:
        say(f"notice: --decode {requested} needs --augment-on device (the per-sample CPU transforms cannot take "
            "images decoded on the GPU); decoding on the CPU")
        return "cpu"
    if requested == "dali" and not dali_available():
        say("notice: --decode dali: NVIDIA DALI is not installed (pip install 'resnets[dali]' from "
            "https://pypi.nvidia.com); decoding with torchvision on the GPU instead")
        return "gpu"
    return requested


def _cpu_fallback(data: torch.Tensor, name: str, device: torch.device) -> torch.Tensor | None:
    try:
        return decode_bytes(data.numpy().tobytes(), name).to(device)
    except ResnetsError:
        return None


def torchvision_gpu_decoder(device: torch.device) -> Decoder:
    """Batched nvJPEG decoding through torchvision; per-image CPU fallback for what nvJPEG refuses."""
    from torchvision.io import ImageReadMode, decode_jpeg

    def decode(encoded: list[torch.Tensor], names: list[str]) -> list[torch.Tensor | None]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29's TorchCodec notice
            try:
                return list(decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:  # one bad image fails the batch call: decode one by one
                out: list[torch.Tensor | None] = []
                for data, name in zip(encoded, names, strict=True):
                    try:
                        out.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
                    except RuntimeError:
                        out.append(_cpu_fallback(data, name, device))
                return out

    return decode


def dali_decoder(device: torch.device, max_batch: int, threads: int = 4) -> Decoder:
    """DALI's mixed decoder fed batch by batch (external source), its outputs copied into torch tensors."""
    from nvidia.dali import fn, pipeline_def, types
    from nvidia.dali.plugin.pytorch import feed_ndarray

    @pipeline_def(batch_size=max_batch, num_threads=threads, device_id=device.index or 0, prefetch_queue_depth=1)
    def pipeline():
        jpegs = fn.external_source(name="jpegs", dtype=types.UINT8, no_copy=False)
        return fn.decoders.image(jpegs, device="mixed", output_type=types.RGB)

    pipe = pipeline()
    pipe.build()

    def decode(encoded: list[torch.Tensor], names: list[str]) -> list[torch.Tensor | None]:
        pipe.feed_input("jpegs", [data.numpy() for data in encoded])
        try:
            (output,) = pipe.run()
        except RuntimeError:  # a corrupt image fails the batch: fall back to torchvision for this batch
            return torchvision_gpu_decoder(device)(encoded, names)
        images: list[torch.Tensor | None] = []
        for i in range(len(encoded)):
            tensor = output[i]
            hwc = torch.empty(tuple(tensor.shape()), dtype=torch.uint8, device=device)
            feed_ndarray(tensor, hwc, cuda_stream=torch.cuda.current_stream(device))
            images.append(hwc.permute(2, 0, 1))
        return images

    return decode


def build_decoder(name: str, device: torch.device, max_batch: int) -> Decoder | None:
    """The batch decoder for a resolved `name` (None for "cpu": the workers decode)."""
    if name == "cpu":
        return None
    if name == "gpu":
        return torchvision_gpu_decoder(device)
    if name == "dali":
        return dali_decoder(device, max_batch)
    raise ResnetsError(f"unknown decoder {name!r}")


def read_file_bytes(path: str) -> torch.Tensor:
    """A file's bytes as a uint8 tensor (what decode_jpeg takes); one-line error when unreadable."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ResnetsError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if not data:
        raise ResnetsError(f"cannot decode image {path}: the file is empty")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)
