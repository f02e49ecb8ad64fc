"""Published weights by tag (create_model(NAME, pretrained=TAG), --pretrained, `resnets models --pretrained`).

Nothing is downloaded: each test lays out a Hugging Face Hub cache (models--timm--<model>.<tag>/refs/main,
snapshots/<revision>/<file> -> blobs/<sha256>) and torch's hub cache (hub/checkpoints/<file>) as those libraries
write them, with random-weight files from timm's and torchvision's own models, and runs with the Hub offline.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import huggingface_hub
import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file
from timm.models import get_pretrained_cfg
from torchvision.models import get_weight

from resnets import ResnetsError, UnknownNameError, create_model, load_model, save_model
from resnets.cli import main
from resnets.models.config import IMAGENET_MEAN
from resnets.models.registry import list_models
from resnets.weights import published
from resnets.weights.hub import find_published
from resnets.weights.published import HALF, PEER_NAMES, TIMM, TORCHVISION, published_for
from tests.helpers import randomize_bn

REPO = Path(__file__).resolve().parents[1]
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """Empty caches, the Hub offline; huggingface_hub reads its settings at import, so they are set there too."""
    hf, torch_home = tmp_path / "hf", tmp_path / "torch"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(hf))
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf))
    return hf, torch_home / "hub" / "checkpoints"


def lay_out_hf(cache: Path, repo_id: str, filename: str, source: Path) -> Path:
    """Put `source` into the cache as `hf_hub_download` leaves a file: a blob named by its hash, a snapshot
    link to it, and refs/main naming the snapshot."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, repo / "blobs" / digest)
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / filename).symlink_to(Path("..", "..", "blobs", digest))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot / filename


def _images() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(_images())


@pytest.fixture(scope="module")
def timm_files(tmp_path_factory):
    """timm's resnet10t with random weights and BN statistics, as model.safetensors and pytorch_model.bin."""
    torch.manual_seed(0)
    model = randomize_bn(timm.create_model("resnet10t"), seed=1).eval()
    folder = tmp_path_factory.mktemp("timm")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "model.safetensors")
    torch.save(state, folder / "pytorch_model.bin")
    return folder, _logits(model)


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    """torchvision's resnet18 with random weights, saved as torch.hub caches it (a .pth state dict)."""
    torch.manual_seed(0)
    model = randomize_bn(torchvision.models.resnet18(), seed=2).eval()
    path = tmp_path_factory.mktemp("torchvision") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest(), _logits(model)


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


# --- the table against the peers' own registries ----------------------------------------------------------
def test_timm_rows_are_what_timm_registers():
    assert len(TIMM) >= 120
    for row in TIMM:
        cfg = get_pretrained_cfg(f"{row.model}.{row.tag}").to_dict()
        assert cfg["hf_hub_id"] == row.repo_id and cfg["num_classes"] == 1000, row
        test_size = (cfg.get("test_input_size") or cfg["input_size"])[-1]
        assert (row.train_size, row.test_size) == (cfg["input_size"][-1], test_size), row
        assert row.crop_pct == pytest.approx(cfg.get("test_crop_pct") or cfg["crop_pct"]), row
        assert row.interpolation == cfg["interpolation"], row
        assert row.mean_std == (tuple(cfg["mean"]), tuple(cfg["std"])), row
        assert 60 < row.top1 < 90


def test_every_timm_imagenet_tag_of_our_presets_is_listed():
    listed = {(r.model, r.tag) for r in TIMM}
    ours = set(list_models())
    for name in timm.list_models(pretrained=True):
        model, tag = name.split(".", 1)
        if model in ours and get_pretrained_cfg(name).num_classes == 1000:
            assert (model, tag) in listed, name


def test_torchvision_rows_are_torchvision_metadata():
    assert len(TORCHVISION) == 17
    for row in TORCHVISION:
        weights = get_weight(f"{torchvision.models.get_model_weights(row.model).__name__}.{row.tag}")
        assert weights.url.rsplit("/", 1)[1] == row.file and weights.url == row.url
        assert weights.meta["_metrics"]["ImageNet-1K"]["acc@1"] == pytest.approx(row.top1)
        keywords = weights.transforms.keywords
        assert row.test_size == keywords["crop_size"]
        assert row.crop_pct == pytest.approx(keywords["crop_size"] / keywords.get("resize_size", 256), abs=1e-4)


def test_published_architectures_fit_our_presets():
    """A preset with published weights is the peer's architecture: either timm names it so (and
    tests/test_parity.py checks the pair output for output), or it is an alias whose state dict has the peer's
    keys and shapes (built on the meta device: no memory spent)."""
    from tests.test_parity import PADDLE_TO_TIMM

    assert PEER_NAMES == PADDLE_TO_TIMM  # every alias is a pair the parity tests check output for output
    presets = [p for p in list_models() if published_for(p)]
    assert set(PEER_NAMES) <= set(presets) and len(presets) >= 60
    timm_names = set(timm.list_models())
    assert all(p in timm_names for p in presets if p not in PEER_NAMES)
    for preset, peer in PEER_NAMES.items():
        with torch.device("meta"):
            ours = create_model(preset).state_dict()
            theirs = timm.create_model(peer).state_dict()
        assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}, preset


def test_reference_page_lists_the_table():
    """docs/reference.md §6 carries the table `resnets models --pretrained --markdown` prints."""
    from resnets.cli.models import format_pretrained_markdown, pretrained_records

    page = (REPO / "docs" / "reference.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- pretrained-table -->\n(.*?)\n<!-- /pretrained-table -->", page, re.S)
    assert found, "docs/reference.md lacks the <!-- pretrained-table --> block"
    expected = format_pretrained_markdown(pretrained_records(list_models()))
    assert found.group(1) == expected, "regenerate it: resnets models --pretrained --markdown"


# --- loading from the caches ------------------------------------------------------------------------------
@pytest.mark.parametrize("filename", ["model.safetensors", "pytorch_model.bin"])
def test_timm_tag_from_the_hub_cache_gives_timms_outputs(hub, timm_files, filename):
    folder, expected = timm_files
    lay_out_hf(hub[0], "timm/resnet10t.c3_in1k", filename, folder / filename)
    model = create_model("resnet10t", pretrained="c3_in1k")
    torch.testing.assert_close(_logits(model), expected, rtol=0, atol=1e-5)
    config = model.config
    assert (config.input_size, config.eval_size, config.crop_pct, config.interpolation) == (176, 224, 0.95, "bicubic")
    # the peers' MODEL.TAG spelling and any case name the same weights; what the caller sets wins
    again = create_model("resnet10t", pretrained="resnet10t.C3_IN1K", crop_pct=0.9)
    assert again.config.crop_pct == 0.9 and torch.equal(_logits(again), _logits(model))


def test_alias_finds_the_peers_tag(hub):
    """A preset the peers name differently (PaddleClas' resnet50_vd is timm's resnet50d) finds their tags."""
    assert find_published("resnet50_vd", "ra2_in1k").repo_id == "timm/resnet50d.ra2_in1k"
    with pytest.raises(ResnetsError, match="huggingface.co/timm/resnet50d.ra2_in1k"):
        create_model("resnet50_vd", pretrained="resnet50d.ra2_in1k")


def _with_torchvision_file(monkeypatch, file: str) -> None:
    """Point resnet18's IMAGENET1K_V1 row at `file` (a random-weight file cannot carry the real file's hash)."""
    rows = tuple(replace(r, file=file) if (r.model, r.tag) == ("resnet18", "IMAGENET1K_V1") else r
                 for r in published.ALL)
    monkeypatch.setattr(published, "ALL", rows)


def test_torchvision_tag_from_the_torch_hub_cache_gives_torchvisions_outputs(hub, monkeypatch, torchvision_file):
    path, digest, expected = torchvision_file
    name = f"resnet18-{digest[:8]}.pth"
    _with_torchvision_file(monkeypatch, name)
    hub[1].mkdir(parents=True)
    shutil.copyfile(path, hub[1] / name)
    model = create_model("resnet18", pretrained="IMAGENET1K_V1")
    torch.testing.assert_close(_logits(model), expected, rtol=0, atol=1e-5)
    assert (model.config.eval_size, model.config.crop_pct, model.config.interpolation) == (224, 0.875, "bilinear")
    assert model.config.mean == IMAGENET_MEAN


def test_torchvision_file_failing_its_hash_is_one_line(hub, capsys, torchvision_file):
    path, _, _ = torchvision_file
    hub[1].mkdir(parents=True)
    shutil.copyfile(path, hub[1] / "resnet18-f37072fd.pth")  # the real name, random content
    err = _one_line_error(capsys, ["export", "--model", "resnet18", "--pretrained", "IMAGENET1K_V1", "--format",
                                   "torchscript", "--out", str(hub[1].parent / "x.pt")])
    assert "corrupt" in err and "f37072fd" in err and "resnet18-f37072fd.pth" in err
    assert not (hub[1].parent / "x.pt").exists()


def test_corrupt_hub_file_is_one_line(hub, capsys, tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    lay_out_hf(hub[0], "timm/resnet10t.c3_in1k", "model.safetensors", bad)
    err = _one_line_error(capsys, ["predict", "--pretrained", "resnet10t.c3_in1k", str(tmp_path)])
    assert "corrupt" in err and "timm/resnet10t.c3_in1k" in err
    assert "hf download timm/resnet10t.c3_in1k model.safetensors --force-download" in err


def test_weights_that_do_not_fit_the_preset_say_where_they_came_from(hub, tmp_path):
    state = timm.create_model("resnet14t").state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors")
    lay_out_hf(hub[0], "timm/resnet10t.c3_in1k", "model.safetensors", tmp_path / "model.safetensors")
    with pytest.raises(ResnetsError, match=r"do not fit resnet10t \(timm/resnet10t.c3_in1k model.safetensors\)"):
        create_model("resnet10t", pretrained="c3_in1k")


# --- downloading (the network replaced by a local copy) --------------------------------------------------
def test_online_timm_download_falls_back_to_pytorch_model_bin(hub, monkeypatch, timm_files):
    """A repo without model.safetensors: the Hub says so, and pytorch_model.bin is fetched instead."""
    from huggingface_hub.errors import EntryNotFoundError

    folder, expected = timm_files
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    asked = []

    def download(repo_id, filename, **_):
        asked.append(filename)
        if filename == "model.safetensors":
            raise EntryNotFoundError(f"{repo_id} has no {filename}")
        return str(lay_out_hf(hub[0], repo_id, filename, folder / filename))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    model = create_model("resnet10t", pretrained="c3_in1k")
    assert asked == ["model.safetensors", "pytorch_model.bin"]
    torch.testing.assert_close(_logits(model), expected, rtol=0, atol=1e-5)
    asked.clear()
    create_model("resnet10t", pretrained="c3_in1k")
    assert asked == []  # now cached: no network


def test_online_torchvision_download_is_hash_checked(hub, monkeypatch, torchvision_file):
    path, digest, expected = torchvision_file
    name = f"resnet18-{digest[:8]}.pth"
    _with_torchvision_file(monkeypatch, name)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    calls = []

    def download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        shutil.copyfile(path, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    model = create_model("resnet18", pretrained="IMAGENET1K_V1")
    assert calls == [(f"https://download.pytorch.org/models/{name}", digest[:8])]
    assert (hub[1] / name).is_file()
    torch.testing.assert_close(_logits(model), expected, rtol=0, atol=1e-5)

    def unreachable(url, dst, hash_prefix=None, progress=True):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    (hub[1] / name).unlink()
    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    with pytest.raises(ResnetsError, match=r"cannot download https://download.pytorch.org/models/resnet18-.*"
                                           r"Name or service not known>; retry online"):
        create_model("resnet18", pretrained="IMAGENET1K_V1")


# --- what is missing or wrong --------------------------------------------------------------------------
def test_missing_timm_tag_offline_says_where_it_comes_from(hub, capsys, tmp_path):
    err = _one_line_error(capsys, ["eval", "--model", "resnet50", "--pretrained", "a1_in1k", "--data", str(tmp_path)])
    assert "https://huggingface.co/timm/resnet50.a1_in1k" in err and "HF_HUB_OFFLINE=1" in err
    assert "`hf download timm/resnet50.a1_in1k model.safetensors`" in err and str(hub[0]) in err


def test_missing_torchvision_tag_offline_says_where_it_comes_from(hub):
    with pytest.raises(ResnetsError) as caught:
        create_model("resnet50", pretrained="IMAGENET1K_V2")
    text = str(caught.value)
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in text and str(hub[1]) in text
    assert "\n" not in text


def test_unknown_tag_suggests_the_published_ones(hub, capsys):
    with pytest.raises(UnknownNameError, match=r"'a1_in1'.*did you mean 'a1_in1k'"):
        create_model("resnet50", pretrained="a1_in1")
    err = _one_line_error(capsys, ["bench", "resnet50", "--pretrained", "tv3_in1k"])
    assert "did you mean" in err and "tv2_in1k" in err
    with pytest.raises(ResnetsError, match="no published weights for resnet200"):
        create_model("resnet200", pretrained="a1_in1k")
    with pytest.raises(ResnetsError, match="names resnet101, but the model is resnet50"):
        create_model("resnet50", pretrained="resnet101.a1_in1k")
    with pytest.raises(ResnetsError, match="not both"):
        create_model("resnet50", weights="x.safetensors", pretrained="a1_in1k")


def test_tag_without_a_model_is_a_usage_error(hub, capsys, tmp_path):
    err = _one_line_error(capsys, ["predict", "--pretrained", "a1_in1k", str(tmp_path)])
    assert "--model resnet50 --pretrained a1_in1k" in err


# --- the commands -----------------------------------------------------------------------------------------
def test_predict_and_bench_with_a_published_tag(hub, capsys, timm_files, shared_data, tmp_path):
    folder, _ = timm_files
    cached = lay_out_hf(hub[0], "timm/resnet10t.c3_in1k", "model.safetensors", folder / "model.safetensors")
    image = sorted((shared_data / "imagenette-mini" / "val").glob("*/*"))[0]
    assert main(["predict", "--model", "resnet10t", "--pretrained", "c3_in1k", str(image), "--json",
                 "--mode", "eager"]) == 0
    by_tag = json.loads(capsys.readouterr().out)
    # the same file and the table's preprocessing, put together without the hub code
    entry = find_published("resnet10t", "c3_in1k")
    save_model(create_model("resnet10t", weights=cached, source="timm", **entry.preprocessing()), tmp_path / "w.safetensors")
    assert main(["predict", "--weights", str(tmp_path / "w.safetensors"), str(image), "--json", "--mode", "eager"]) == 0
    assert json.loads(capsys.readouterr().out) == by_tag
    assert main(["bench", "resnet10t.c3_in1k", "--mode", "eager", "--batch-size", "1", "--warmup", "0",
                 "--reps", "1", "--img-size", "64", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records[0]["model"] == "resnet10t.c3_in1k" and not records[0].get("error")


def _tiny_folder(root: Path) -> Path:
    """train/ and val/ with two ImageNet classes (by WordNet id) of four 32 px images: two training steps."""
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for label in ("n01440764", "n02102040"):
            (root / split / label).mkdir(parents=True)
            for i in range(4):
                pixels = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8, generator=generator).numpy()
                Image.fromarray(pixels).save(root / split / label / f"{i}.png")
    return root


def test_train_starts_from_a_published_tag(hub, capsys, timm_files, tmp_path):
    folder, _ = timm_files
    cached = lay_out_hf(hub[0], "timm/resnet10t.c3_in1k", "model.safetensors", folder / "model.safetensors")
    out = tmp_path / "run"
    assert main(["train", "--data", str(_tiny_folder(tmp_path / "data")), "--pretrained", "resnet10t.c3_in1k",
                 "--reset-head", "--epochs", "1", "--batch-size", "4", "--workers", "0", "--img-size", "32",
                 "--out", str(out), "--no-progress", "--no-tensorboard",
                 "--set", "model.width_multiplier=1.0"]) == 0  # the demo recipe's 0.25 would not fit
    run = json.loads((out / "run.json").read_text())
    assert run["options"]["model"] == "resnet10t" and run["options"]["weights"] == str(cached)
    assert run["initial_weights"]["sha256"] == hashlib.sha256(cached.read_bytes()).hexdigest()
    capsys.readouterr()
    err = _one_line_error(capsys, ["train", "--resume", str(out), "--pretrained", "a1_in1k"])
    assert "--pretrained" in err


def test_eval_measures_at_the_published_settings(hub, capsys, timm_files, tmp_path):
    folder, _ = timm_files
    lay_out_hf(hub[0], "timm/resnet10t.c3_in1k", "model.safetensors", folder / "model.safetensors")
    data = _tiny_folder(tmp_path / "data")
    assert main(["eval", "--model", "resnet10t", "--pretrained", "c3_in1k", "--data", str(data), "--workers", "0",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["img_size"], result["crop_pct"], result["interpolation"]) == (224, 0.95, "bicubic")
    assert result["pretrained"] == "c3_in1k" and result["weights"] is None and result["n"] == 8
    assert list(result["per_class"]) == ["n01440764", "n02102040"]  # outputs 0 and 1 of 1000, named by folder
    assert main(["eval", "--pretrained", "resnet10t.c3_in1k", "--data", str(data), "--workers", "0"]) == 0
    assert capsys.readouterr().out.startswith("resnet10t.c3_in1k on ")
    assert main(["bench", str(data / "val" / "n01440764" / "0.png"), "--pretrained", "c3_in1k"]) == 2
    assert "is a file" in capsys.readouterr().err


def test_models_lists_the_published_tags(hub, capsys, timm_files):
    folder, _ = timm_files
    lay_out_hf(hub[0], "timm/resnet10t.c3_in1k", "model.safetensors", folder / "model.safetensors")
    assert main(["models", "--pretrained", "resnet10t"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"resnet10t\s+c3_in1k\s+68\.354\s+224\s+0\.950\s+bicubic\s+yes\s+hf\.co/timm/resnet10t\.c3_in1k",
                     out), out
    assert main(["models", "--pretrained", "resnet50", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    a1 = next(r for r in records if (r["model"], r["tag"]) == ("resnet50", "a1_in1k"))
    assert (a1["top1"], a1["img_size"], a1["crop_pct"], a1["cached"]) == (81.24, 288, 1.0, False)
    v2 = next(r for r in records if (r["model"], r["tag"]) == ("resnet50", "IMAGENET1K_V2"))
    assert v2["url"] == "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" and v2["top1"] == 80.858
    assert all(r["peer_model"] == "resnet50d" for r in records if r["model"] == "resnet50_vd")
    v2_50 = next(r for r in TIMM if (r.model, r.tag) == ("resnetv2_50", "a1h_in1k"))
    assert v2_50.mean_std == HALF and v2_50.preprocessing()["mean"] == (0.5, 0.5, 0.5)


def test_offline_mode_from_the_environment(tmp_path):
    """The real switches, read by a fresh process: HF_HUB_OFFLINE=1 and HF_HUB_CACHE, no patching."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf"),
           "TORCH_HOME": str(tmp_path / "torch"), "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-m", "resnets", "predict", "--pretrained", "resnet50.IMAGENET1K_V2",
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "HF_HUB_OFFLINE=1" in done.stderr and str(tmp_path / "torch" / "hub" / "checkpoints") in done.stderr


def test_imagenet_synsets_are_timms_and_sorted(shared_data):
    """The vendored synset list is timm's, in class-index (sorted) order, and names Imagenette's folders."""
    from resnets.data.imagenet_classes import imagenet_wnids
    from resnets.evaluate import label_map

    timm_file = Path(timm.__file__).parent / "data" / "_info" / "imagenet_synsets.txt"
    wnids = imagenet_wnids()
    assert list(wnids) == timm_file.read_text().split() == sorted(wnids)
    folders = sorted(p.name for p in (shared_data / "imagenette-mini" / "val").iterdir() if p.is_dir())
    assert label_map(folders, None, 1000).tolist() == [wnids.index(f) for f in folders]
    assert label_map(["cat", "dog"], ["dog", "cat"], 2).tolist() == [1, 0]  # stored names still win
    with pytest.raises(ResnetsError, match="no class names"):
        label_map(["cat", "dog"], None, 1000)


def test_convert_writes_a_published_tag_as_our_file(hub, capsys, timm_files, tmp_path):
    folder, expected = timm_files
    lay_out_hf(hub[0], "timm/resnet10t.c3_in1k", "model.safetensors", folder / "model.safetensors")
    out = tmp_path / "r10t.safetensors"
    assert main(["convert", "--pretrained", "resnet10t.c3_in1k", "--out", str(out)]) == 0
    assert "resnet10t.c3_in1k (timm)" in capsys.readouterr().out
    model = load_model(out)
    torch.testing.assert_close(_logits(model), expected, rtol=0, atol=1e-5)
    assert model.config.eval_size == 224 and model.config.crop_pct == 0.95  # the published settings travel along
    assert "not both" in _one_line_error(capsys, ["convert", "x.pth", "--pretrained", "c3_in1k", "--model",
                                                  "resnet10t", "--out", str(out)])
    assert "nothing to convert" in _one_line_error(capsys, ["convert", "--out", str(out)])
