"""resnets: every ResNet-family image classifier from one definition.

    >>> import resnets
    >>> model = resnets.create_model("resnet50d", num_classes=10)
    >>> loss = resnets.distill.kd_loss(student_logits, teacher_logits, temperature=4.0)  # or ssld_loss
"""

from __future__ import annotations

from . import distill
from .errors import ResnetsError, UnknownNameError
from .host_memory import retain_freed_memory
from .models.config import ResNetConfig
from .models.cost import ModelCost, config_cost, count_cost
from .models.registry import get_config, list_models, register
from .models.resnet import ResNet
from .version import __version__
from .weights.factory import create_model, load_model, load_weights, save_model

__all__ = [
    "ModelCost", "ResNet", "ResNetConfig", "ResnetsError", "UnknownNameError", "config_cost", "count_cost",
    "create_model", "distill", "get_config", "list_models", "load_model", "load_weights", "register",
    "retain_freed_memory", "save_model", "__version__",
]
