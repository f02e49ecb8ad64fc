"""Parameters and multiply-accumulates, per stage and in total (conv + linear MACs: torchvision's convention).

Counted by running the real module on the meta device (no memory, no arithmetic), so the numbers always
describe the code that runs, not a formula that could drift from it. FLOPs, where shown, are 2 x MACs.

`config_cost` is the fast path (all presets in ~2 s on one core, was ~30 s): it builds each stage with at most two
blocks, because every block after a stage's first has the same input, output and stride and therefore the
same parameters and MACs; the stage total is first + (n - 1) x second. (With the stride on a stage's last
block, Keras ResNetV2, it keeps three: first + (n - 2) x middle + last.) Tests check this equals counting
the full network for every preset.
"""

from __future__ import annotations

import copy
import functools
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import ResnetsError
from .config import ResNetConfig
from .resnet import MIN_INPUT_SIZE, ResNet


@dataclass
class StageCost:
    name: str
    blocks: int
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass
class ModelCost:
    model: str
    img_size: int
    params: int
    macs: int
    stages: list[StageCost]

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def gflops(self) -> float:
        return 2 * self.macs / 1e9

    def to_dict(self) -> dict:
        data = asdict(self)
        data["gmacs"] = self.gmacs
        data["gflops"] = self.gflops
        return data


# --- shape-only execution on the meta device ------------------------------------------------------------
_INIT_OPS = {
    torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.fill_, torch.Tensor.zero_, nn.init.kaiming_uniform_,
    nn.init.kaiming_normal_, nn.init.uniform_, nn.init.normal_, nn.init.ones_, nn.init.zeros_, nn.init.constant_,
}
_SHAPE_KEEPING = {F.batch_norm, torch.Tensor.sigmoid, torch.sigmoid}
_BROADCASTING = {torch.Tensor.add, torch.Tensor.__add__, torch.add, torch.Tensor.mul, torch.Tensor.__mul__, torch.mul}


class _ShapeOnly(TorchFunctionMode):
    """Meta tensors hold no data, so only shapes matter: skip weight initialisation, and give BN, sigmoid,
    add, mul, mean, global pooling and linear their (trivial) output shapes directly instead of through
    PyTorch's Python meta decompositions (whose first use also imports torch._dynamo): together these
    made listing the presets take ~30 s instead of ~2 s. Convs and the stem/shortcut pools still run their
    real meta kernels, so strides, padding and ceil_mode are PyTorch's own."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _INIT_OPS:
            return args[0] if args else kwargs.get("tensor")
        if func in _SHAPE_KEEPING:
            return args[0]
        if func in _BROADCASTING and len(args) == 2 and all(isinstance(a, torch.Tensor) for a in args):
            return args[0].new_empty(torch.broadcast_shapes(args[0].shape, args[1].shape))
        if func is torch.Tensor.mean and len(args) >= 2 and not kwargs.get("dtype"):
            x, dims = args[0], args[1]
            dims = {d % x.ndim for d in ((dims,) if isinstance(dims, int) else dims)}
            keepdim = kwargs.get("keepdim", args[2] if len(args) > 2 else False)
            shape = [1 if i in dims else s for i, s in enumerate(x.shape) if keepdim or i not in dims]
            return x.new_empty(shape)
        if func is F.adaptive_avg_pool2d and len(args) == 2 and args[1] in (1, (1, 1)):
            return args[0].new_empty((*args[0].shape[:-2], 1, 1))
        if func is F.linear and len(args) >= 2:
            return args[0].new_empty((*args[0].shape[:-1], args[1].shape[0]))
        return func(*args, **kwargs)


def meta_model(config: ResNetConfig) -> ResNet:
    """The full network on the meta device, built without spending time on (meaningless) initialisation."""
    with torch.device("meta"), _ShapeOnly():
        return ResNet(config)


# --- counting -------------------------------------------------------------------------------------------
def _layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        per_output = (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
        return output[0].numel() * per_output
    if isinstance(module, nn.Linear):
        return output[0].numel() * module.in_features
    return 0


def _check_size(size: int) -> None:
    if size < MIN_INPUT_SIZE:
        raise ResnetsError(f"image size {size} is too small: use at least {MIN_INPUT_SIZE} (the total stride)")


def _trace(model: ResNet, size: int) -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
    """One forward pass of a 1-image batch: MACs of every conv/linear by qualified name, and the output
    shape (without batch) of every cost group: that of the group's module that finishes last (hooks fire
    after a module's children, so that is the group's output, also where the model calls a group's
    children one by one)."""
    macs: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            hooks.append(module.register_forward_hook(
                lambda mod, _inp, out, n=name: macs.__setitem__(n, macs.get(n, 0) + _layer_macs(mod, out))))
    for group, children in model.cost_groups().items():
        for child in children:
            for module in model.get_submodule(child).modules():
                hooks.append(module.register_forward_hook(
                    lambda _mod, _inp, out, g=group: shapes.__setitem__(g, tuple(out.shape[1:]))))
    device = next(model.parameters()).device
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), (_ShapeOnly() if device.type == "meta" else nullcontext()):
            model(torch.zeros(1, model.config.in_chans, size, size, device=device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return macs, shapes


# Blocks a compact stage keeps, per stride placement. Block 1 is the one that repeats: with the stride on a
# stage's first block every later block is the same ([first, repeated...]); with it on the last (Keras V2)
# the middle ones are ([first, repeated..., last]).
_KEPT_BLOCKS = {"first": 2, "last": 3}


def _stage(model: ResNet, group: str) -> nn.Sequential:
    """The blocks of report group 'layerN'."""
    return model.get_submodule(model.stage_paths[int(group[5:]) - 1])


def _macs_under(macs: dict[str, int], prefix: str) -> int:
    return sum(v for k, v in macs.items() if k == prefix or k.startswith(prefix + "."))


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_cost(model: ResNet, img_size: int | None = None) -> ModelCost:
    """Parameters and MACs of `model` for one `img_size` x `img_size` image, grouped by stage."""
    config: ResNetConfig = model.config
    size = img_size or config.input_size
    _check_size(size)
    macs, shapes = _trace(model, size)
    stages = []
    for group, children in model.cost_groups().items():
        params = sum(_params(model.get_submodule(c)) for c in children)
        blocks = len(_stage(model, group)) if group.startswith("layer") else 0
        shape = shapes.get(group, ())
        stages.append(StageCost(group, blocks, shape, params, sum(_macs_under(macs, c) for c in children)))
    return ModelCost(config.name, size, _params(model), sum(macs.values()), stages)


def config_cost(config: ResNetConfig, img_size: int | None = None) -> ModelCost:
    """The cost of a config without allocating its weights (see the module docstring for how)."""
    size = img_size or config.input_size
    _check_size(size)
    return copy.deepcopy(_config_cost(config, size))


@functools.lru_cache(maxsize=512)
def _config_cost(config: ResNetConfig, size: int) -> ModelCost:
    kept = _KEPT_BLOCKS[config.stride_block]
    compact = meta_model(config.replace(layers=tuple(min(n, kept) for n in config.layers)))
    macs, shapes = _trace(compact, size)
    stages, total_params = [], 0
    groups = compact.cost_groups()
    for group, children in groups.items():
        if group.startswith("layer"):
            index = int(group[5:]) - 1
            n, path, stage = config.layers[index], compact.stage_paths[index], _stage(compact, group)
            costs = [(_params(block), _macs_under(macs, f"{path}.{i}")) for i, block in enumerate(stage)]
            repeats = n - len(stage)  # the blocks not built are copies of the repeated one
            repeated = costs[1] if repeats else (0, 0)
            params = sum(c[0] for c in costs) + repeats * repeated[0]
            stage_macs, blocks = sum(c[1] for c in costs) + repeats * repeated[1], n
        else:
            params = sum(_params(compact.get_submodule(c)) for c in children)
            stage_macs, blocks = sum(_macs_under(macs, c) for c in children), 0
        total_params += params
        stages.append(StageCost(group, blocks, shapes.get(group, ()), params, stage_macs))
    grouped = sum(_params(compact.get_submodule(c)) for children in groups.values() for c in children)
    if grouped != _params(compact):  # a parameterised child outside the groups would be silently dropped
        raise RuntimeError("cost groups do not cover every parameter of the model")
    return ModelCost(config.name, size, total_params, sum(s.macs for s in stages), stages)
