"""Reading and writing weights. Nothing here unpickles code: safetensors, or torch.load(weights_only=True)."""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import ResnetsError

FORMAT_TAG = "resnets"
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
_PREFIXES = ("module.", "_orig_mod.", "model.")


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Any) -> None:
    """Call `write(tmp_path)`, fsync, then rename over `path`: a crash or full disk never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give what open() would have given
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_weights(state_dict: Mapping[str, torch.Tensor], path: str | Path, *, config: Any = None,
                 class_names: list[str] | None = None, extra: Mapping[str, Any] | None = None) -> None:
    """Write a safetensors file atomically, with the model config and class names in its metadata."""
    metadata = {"format": FORMAT_TAG}
    if config is not None:
        metadata["config"] = config.to_json(indent=None)
    if class_names is not None:
        metadata["class_names"] = json.dumps(list(class_names))
    for key, value in (extra or {}).items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a weight file (.safetensors, or a PyTorch .pth/.pt/.bin/.ckpt state dict)."""
    path = Path(path)
    if not path.exists():
        raise ResnetsError(f"weight file not found: {path}")
    if path.is_dir():
        raise ResnetsError(f"weight path is a directory, not a file: {path}")
    try:
        is_safetensors = _is_safetensors(path)
    except OSError as exc:
        raise ResnetsError(f"cannot read weight file {path}: {exc.strerror or exc}") from None
    if is_safetensors:
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = dict(handle.metadata() or {})
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as exc:
            raise ResnetsError(f"cannot read weight file {path}: corrupt or not a safetensors file ({exc})") from None
        return tensors, metadata
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols; the user can do nothing about it
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle and zip errors come in many types; all mean the same to the user
        raise ResnetsError(_load_failure(path, exc)) from None
    return _unwrap(obj, path), {}


def _load_failure(path: Path, exc: Exception) -> str:
    """One line for a torch.load failure; a refused pickle names the Python object it wanted to build."""
    text = str(exc).strip()
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if "Weights only load failed" in text and found:
        return (f"refusing to load {path}: it holds pickled Python objects ({found.group(1)}) beyond tensors, and "
                "unpickling them could run code; save the state dict alone (torch.save(model.state_dict(), ...)) "
                "or use safetensors")
    detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    if detail:
        reason = f"pickle data that a weights-only load cannot read: {detail.group(1)}"
    else:
        reason = text.splitlines()[0].split(". ")[0] if text else type(exc).__name__
    return f"cannot read weight file {path}: corrupt, truncated or not a PyTorch/safetensors weight file ({reason})"


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as handle:  # safetensors: 8-byte little-endian header length, then '{'
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint (which may nest it under 'state_dict' or 'model')."""
    for _ in range(3):
        if isinstance(obj, Mapping) and not _is_tensor_dict(obj):
            inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not _is_tensor_dict(obj):
        raise ResnetsError(f"weight file {path} holds no state dict of tensors")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _is_tensor_dict(obj: Mapping) -> bool:
    return bool(obj) and sum(isinstance(v, torch.Tensor) for v in obj.values()) >= len(obj) / 2


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes that DDP ('module.'), torch.compile ('_orig_mod.') or Lightning add."""
    out = dict(state_dict)
    for prefix in _PREFIXES:
        if out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix):]: v for k, v in out.items()}
    return out
