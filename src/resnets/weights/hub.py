"""Published weights by tag: find the file in the local cache, download it when the machine is online, verify
it and read it.

timm's files live on the Hugging Face Hub (repo `timm/<model>.<tag>`) and are cached the way `huggingface_hub`
caches everything (HF_HUB_CACHE: models--timm--<model>.<tag>/snapshots/<revision>/<file>); torchvision's live on
download.pytorch.org and are cached where `torch.hub` puts them ($TORCH_HOME/hub/checkpoints/<file>). Both
caches are used as their owners lay them out, so weights fetched by timm or torchvision are found here and the
other way round. The Hub's offline switch (HF_HUB_OFFLINE=1) also stops torchvision downloads: one switch for
"never touch the network".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ResnetsError, UnknownNameError, closest
from .io import read_state_dict
from .published import TIMM_FILES, Published, peer_name, published_for

_HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # torch.hub's rule: the sha256 prefix after the last '-'


@dataclass(frozen=True)
class Fetched:
    """A published weight file on this machine."""

    entry: Published
    path: Path

    @property
    def origin(self) -> str:
        """Where the file came from, for messages: the Hub repo and file, or torchvision's file name."""
        if self.entry.source == "timm":
            return f"{self.entry.repo_id} {self.path.name}"
        return f"torchvision {self.entry.file}"


def split_tag(preset: str | None, text: str) -> tuple[str, str]:
    """(preset, tag) from `TAG` (with the preset given) or the peers' `MODEL.TAG` (resnet50.a1_in1k)."""
    model, dot, tag = text.partition(".")
    if not dot:
        if preset is None:
            raise ResnetsError(f"--pretrained {text}: name the model, e.g. --model resnet50 --pretrained {text}, "
                               "or --pretrained resnet50.a1_in1k")
        return preset, text
    if preset is not None and model not in (preset, peer_name(preset)):
        raise ResnetsError(f"--pretrained {text} names {model}, but the model is {preset}")
    return preset or model, tag


def find_published(preset: str, tag: str) -> Published:
    """The published weights of `preset` tagged `tag` (case-insensitive); unknown tags get suggestions."""
    entries = published_for(preset)
    if not entries:
        raise ResnetsError(f"no published weights for {preset}: neither timm nor torchvision publishes this "
                           "architecture (`resnets models --pretrained` lists the presets that have some)")
    for entry in entries:
        if entry.tag.lower() == tag.lower():
            return entry
    tags = [e.tag for e in entries]
    hits = closest(tag, tags)
    hint = f"; did you mean {', '.join(repr(h) for h in hits)}?" if hits else f"; it has {', '.join(tags)}"
    raise UnknownNameError(f"unknown published tag {tag!r} for {preset}{hint} "
                           f"(`resnets models --pretrained {preset}` lists them)")


def offline() -> bool:
    """The Hub's offline mode (HF_HUB_OFFLINE=1), which this module also applies to torchvision downloads."""
    return _hub().constants.is_offline_mode()


def cached_path(entry: Published) -> Path | None:
    """The file in the local cache, without touching the network; None when it is not there."""
    if entry.source == "timm":
        hub = _hub()
        for filename in TIMM_FILES:
            found = hub.try_to_load_from_cache(entry.repo_id, filename)
            if isinstance(found, str):
                return Path(found)
        return None
    path = torchvision_dir() / entry.file
    return path if path.is_file() else None


def torchvision_dir() -> Path:
    """torch.hub's checkpoint directory ($TORCH_HOME/hub/checkpoints), where torchvision caches weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch(entry: Published) -> Fetched:
    """The weight file from the cache, else downloaded (unless offline); torchvision's is checked against the
    sha256 prefix in its name, as torch.hub checks it."""
    path = cached_path(entry) or (_download_timm(entry) if entry.source == "timm" else _download_torchvision(entry))
    if entry.source == "torchvision":
        _check_hash(entry, path)
    return Fetched(entry, path)


def read_published(preset: str, tag: str) -> tuple[dict[str, torch.Tensor], Fetched]:
    """The state dict (in the peer's names) of a published weight file, and where it came from."""
    fetched = fetch(find_published(preset, tag))
    try:
        state_dict, _ = read_state_dict(fetched.path)
    except ResnetsError as exc:
        raise ResnetsError(f"{exc}; it is the cached copy of {fetched.origin}: {_redownload(fetched)}") from None
    return state_dict, fetched


def _hub():
    try:
        import huggingface_hub
        import huggingface_hub.constants  # noqa: F401 - a lazy package: the submodule is no attribute until imported
    except ImportError:
        raise ResnetsError("published weights need huggingface_hub: pip install huggingface_hub") from None
    return huggingface_hub


def _download_timm(entry: Published) -> Path:
    hub = _hub()
    command = f"`hf download {entry.repo_id} {TIMM_FILES[0]}`"
    if offline():
        raise ResnetsError(
            f"{entry.model} {entry.tag} is not in the local Hugging Face cache ({hub.constants.HF_HUB_CACHE}) and "
            f"the Hub is offline (HF_HUB_OFFLINE=1): it comes from {entry.url} ({TIMM_FILES[0]}); run {command} "
            "on a machine online and copy that cache here, or unset HF_HUB_OFFLINE")
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    for filename in TIMM_FILES:
        try:
            return Path(hub.hf_hub_download(entry.repo_id, filename))
        except LocalEntryNotFoundError as exc:  # not cached and the Hub cannot be reached
            raise ResnetsError(f"cannot download {entry.url} ({filename}): {_first_line(exc)}; retry online, or "
                               f"run {command} elsewhere and copy the cache ({hub.constants.HF_HUB_CACHE})") from None
        except EntryNotFoundError:
            continue  # this repo holds only the other file
        except (HfHubHTTPError, OSError) as exc:
            raise ResnetsError(f"cannot download {entry.url} ({filename}): {_first_line(exc)}") from None
    raise ResnetsError(f"{entry.url} holds none of {', '.join(TIMM_FILES)}")


def _download_torchvision(entry: Published) -> Path:
    folder = torchvision_dir()
    target = folder / entry.file
    if offline():
        raise ResnetsError(
            f"{entry.model} {entry.tag} is not in torch's hub cache ({folder}) and downloads are off "
            f"(HF_HUB_OFFLINE=1): torchvision publishes it at {entry.url}; put that file there, e.g. "
            f"`curl -L -o {target} {entry.url}`, or unset HF_HUB_OFFLINE")
    folder.mkdir(parents=True, exist_ok=True)
    try:  # writes a temporary file and renames it only once the sha256 prefix matched
        torch.hub.download_url_to_file(entry.url, str(target), hash_prefix=_hash_prefix(entry), progress=True)
    except Exception as exc:  # noqa: BLE001 - URL, socket and hash errors: all mean "no file", said in one line
        raise ResnetsError(f"cannot download {entry.url}: {_first_line(exc)}; retry online, or put the file at "
                           f"{target}") from None
    return target


def _hash_prefix(entry: Published) -> str:
    found = _HASH_IN_NAME.search(entry.file)
    if not found:
        raise AssertionError(f"torchvision file name without a hash: {entry.file}")
    return found.group(1)


def _check_hash(entry: Published, path: Path) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    expected = _hash_prefix(entry)
    if not digest.hexdigest().startswith(expected):
        raise ResnetsError(f"the cached torchvision file {path} is corrupt: its sha256 starts with "
                           f"{digest.hexdigest()[:len(expected)]}, its name promises {expected}; delete it (it is "
                           f"downloaded again from {entry.url} when online)")


def _redownload(fetched: Fetched) -> str:
    entry = fetched.entry
    if entry.source == "timm":
        return f"download it again with `hf download {entry.repo_id} {fetched.path.name} --force-download`"
    return f"delete it and download {entry.url} again"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__
