"""A restricted unpickler for pickles of numpy arrays (PaddlePaddle's `.pdparams`), which never runs their code.

Unpickling calls whatever callables a pickle names, so a weight file could run `os.system`. Python's
`Unpickler.find_class` hook alone refuses a bad global only when the unpickler reaches it, after it has built
everything before; so the whole opcode stream is scanned first (`pickletools.genops`, which executes nothing)
and a file naming any global outside the allow-list is refused before a single object exists. The unpickler then
resolves globals only from the same list, a second line of defence. numpy's own `allow_pickle=False` loader reads
`.npy`, not pickles, and torch's weights-only unpickler rebuilds torch tensors, not numpy arrays, hence this file.
"""

from __future__ import annotations

import pickle
import pickletools
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ResnetsError

# Exactly what rebuilding an ndarray needs: numpy < 2 spells the module numpy.core, numpy >= 2 numpy._core (and
# writes that spelling into new pickles). paddle.save writes protocol 4 (ndarray.__reduce__: _reconstruct, then
# __setstate__ with the bytes); protocol 5 pickles of arrays use _frombuffer instead, and protocol 0-2 ones
# written by Python 3 carry the bytes as a latin-1 str through `_codecs.encode`, which only turns text into bytes.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
})

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
# Opcodes that reach objects outside the pickle: persistent ids (a hook we do not give) and the copyreg extension
# registry (which resolves to arbitrary globals).
_FORBIDDEN_OPS = {"PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4"}


class RefusedPickle(ResnetsError):
    """The pickle names something other than numpy array reconstruction."""


def pickle_globals(data: bytes | BinaryIO, source: str = "pickle") -> list[tuple[str, str]]:
    """Every global the pickle would look up, found without executing it (refuses what it cannot resolve).
    `data` may be an open file: the scan reads it only up to the pickle's STOP."""
    found: list[tuple[str, str]] = []
    memo: dict[int, Any] = {}
    recent: list[Any] = []  # the values of the last pushes (strings or None), for STACK_GLOBAL's two operands
    try:
        for op, arg, pos in pickletools.genops(data):
            name = op.name
            if name in _FORBIDDEN_OPS:
                raise RefusedPickle(f"refusing to load {source}: its pickle uses {name} at byte {pos}, which could "
                                    "reach objects outside the file; a weight file needs only numpy arrays")
            if name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
                found.append((module, attr))
                recent.append(None)
            elif name == "STACK_GLOBAL":
                if len(recent) < 2 or not all(isinstance(v, str) for v in recent[-2:]):
                    raise RefusedPickle(f"refusing to load {source}: a global at byte {pos} is named in a way this "
                                        "reader cannot check without running the pickle")
                found.append((recent[-2], recent[-1]))
                recent[-2:] = [None]
            elif name in _STRING_OPS:
                recent.append(arg if isinstance(arg, str) else None)
            elif name in _MEMO_PUT:  # does not change the stack; remembers its top
                memo[len(memo) if name == "MEMOIZE" else arg] = recent[-1] if recent else None
            elif name in _MEMO_GET:
                recent.append(memo.get(arg))
            elif name not in ("FRAME", "PROTO"):
                recent.append(None)
            del recent[:-2]
    except ValueError as exc:  # genops' way of saying "not a pickle" / truncated
        raise ResnetsError(f"cannot read {source}: corrupt, truncated or not a pickle ({exc})") from None
    return found


def check_globals(data: bytes | BinaryIO, source: str = "pickle") -> None:
    """Refuse (one line naming it) the first global outside ALLOWED_GLOBALS; nothing is unpickled."""
    for module, attr in pickle_globals(data, source):
        if (module, attr) not in ALLOWED_GLOBALS:
            raise RefusedPickle(f"refusing to load {source}: its pickle references {module}.{attr}, which is not "
                                "numpy array data; unpickling it could run code")


def _resolve(module: str, attr: str) -> Callable[..., Any]:
    import numpy as np

    if (module, attr) == ("_codecs", "encode"):
        return _latin1_encode
    core = getattr(np, "_core", None) or np.core  # whichever spelling the file uses, the installed numpy's own
    if attr == "_reconstruct":
        return core.multiarray._reconstruct
    if attr == "_frombuffer":
        return core.numeric._frombuffer
    return {"ndarray": np.ndarray, "dtype": np.dtype}[attr]


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode is allowed only to turn latin-1 text into bytes, got {encoding!r}")
    return text.encode("latin1")


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return _resolve(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def load_array_pickle(path: str | Path) -> Any:
    """Unpickle `path` allowing numpy arrays and plain Python containers only; refuse anything else up front."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:  # scanned, then unpickled, from the file: never two copies in memory
            check_globals(handle, str(path))
            handle.seek(0)
            try:
                return _ArrayUnpickler(handle).load()
            except Exception as exc:  # noqa: BLE001 - pickle errors come in many types; all mean a bad file here
                raise ResnetsError(f"cannot read weight file {path}: corrupt or not a pickle of arrays ({exc})") from None
    except OSError as exc:
        raise ResnetsError(f"cannot read weight file {path}: {exc.strerror or exc}") from None
