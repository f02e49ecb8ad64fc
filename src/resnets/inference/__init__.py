"""Fast inference: BN folding, channels_last, torch.compile, ONNX Runtime and OpenVINO in fp32 or the reduced
precisions the hardware has, behind one `prepare` call; `best` measures and checks them; plus the benchmark
and plot that measure them."""

from ..hardware import PRECISIONS, capabilities
from .fuse import count_batchnorms, fuse_conv_bn, fuse_model
from .modes import BEST_CANDIDATES, MODES, InferenceRunner, prepare

__all__ = ["BEST_CANDIDATES", "MODES", "PRECISIONS", "InferenceRunner", "capabilities", "count_batchnorms",
           "fuse_conv_bn", "fuse_model", "prepare"]
