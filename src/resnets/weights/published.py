"""The weights timm and torchvision publish for our presets, by tag, with their published top-1 and the
evaluation settings that top-1 was measured at.

Sources (docs/reference.md §6):
* timm: every pretrained ImageNet-1k tag whose architecture is one of our presets, as timm 1.0.31 registers
  it (`timm.models.get_pretrained_cfg("<model>.<tag>")`: Hub repo `timm/<model>.<tag>`, training size
  `input_size`, evaluation size `test_input_size`, `test_crop_pct`, interpolation, mean/std); top-1 is the row
  of huggingface/pytorch-image-models `results/results-imagenet.csv` at that evaluation size and crop.
  `resnet50.bamboo` is left out: it has no classifier (num_classes 0) and no top-1.
* torchvision: the weight enums of torchvision 0.29.1 (`ResNet50_Weights.IMAGENET1K_V2` ...): the file name of
  `url`, `meta["_metrics"]["ImageNet-1K"]["acc@1"]`, and the `crop_size` / `resize_size` of `transforms`
  (resize 256 where it names none, bilinear interpolation: `ImageClassification`'s defaults).
tests/test_published_weights.py checks every row against the installed timm and torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models.config import IMAGENET_MEAN, IMAGENET_STD

HF_HUB = "https://huggingface.co"
TORCHVISION_URL = "https://download.pytorch.org/models"
TIMM_FILES = ("model.safetensors", "pytorch_model.bin")
"""What a timm Hub repo holds, in the order timm itself prefers them."""
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
"""The mean/std of timm's 'inception' normalisation (the ra4 and resnetv2 weights)."""

# Presets that carry another name in the peers' zoo: the PaddleClas names of timm architectures (the parity
# tests check each pair, tests/test_parity.py PADDLE_TO_TIMM). Every other preset is named as timm names it.
PEER_NAMES = {
    "resnet50_vd": "resnet50d", "resnet101_vd": "resnet101d", "resnet152_vd": "resnet152d",
    "resnet50_vc": "resnet50c", "resnext50_vd_32x4d": "resnext50d_32x4d",
    "se_resnext50_32x4d": "seresnext50_32x4d", "se_resnext101_32x4d": "seresnext101_32x4d",
}


@dataclass(frozen=True)
class Published:
    """One published weight file: where it lives, what it scores and how it must be evaluated."""

    model: str
    """The peer's model name (timm's or torchvision's)."""
    tag: str
    source: str
    """'timm' (Hugging Face Hub) or 'torchvision' (download.pytorch.org, cached in torch's hub directory)."""
    top1: float
    test_size: int
    crop_pct: float
    interpolation: str
    train_size: int | None = None
    """timm's training resolution; None where the publisher gives none (torchvision)."""
    mean_std: tuple[tuple[float, float, float], tuple[float, float, float]] = (IMAGENET_MEAN, IMAGENET_STD)
    file: str | None = None
    """torchvision: the file name it publishes (its sha256 prefix after the last '-')."""

    @property
    def repo_id(self) -> str:
        return f"timm/{self.model}.{self.tag}"

    @property
    def url(self) -> str:
        """Where the weights come from: the Hub repo's page, or torchvision's file."""
        return f"{HF_HUB}/{self.repo_id}" if self.source == "timm" else f"{TORCHVISION_URL}/{self.file}"

    def preprocessing(self) -> dict[str, object]:
        """ResNetConfig fields for the resolution, crop and normalisation of the published top-1."""
        fields: dict[str, object] = {"test_input_size": self.test_size, "crop_pct": self.crop_pct,
                                     "interpolation": self.interpolation, "mean": self.mean_std[0],
                                     "std": self.mean_std[1]}
        if self.train_size is not None:
            fields["input_size"] = self.train_size
        return fields


def _timm(model: str, tag: str, top1: float, train: int, test: int, crop: float, interp: str,
      mean_std: tuple = (IMAGENET_MEAN, IMAGENET_STD)) -> Published:
    return Published(model, tag, "timm", top1, test, float(crop), interp, train_size=train, mean_std=mean_std)


def _tv(model: str, tag: str, top1: float, crop: int, resize: int, file: str) -> Published:
    return Published(model, tag, "torchvision", top1, crop, round(crop / resize, 4), "bilinear", file=file)


# (timm model, tag, top-1, train size, test size, test crop, interpolation[, mean/std])
TIMM = (
    _timm("resnet101", "a1_in1k", 82.326, 224, 288, 1, "bicubic"),
    _timm("resnet101", "a1h_in1k", 82.796, 224, 288, 1, "bicubic"),
    _timm("resnet101", "a2_in1k", 82.218, 224, 288, 1, "bicubic"),
    _timm("resnet101", "a3_in1k", 79.836, 160, 224, 0.95, "bicubic"),
    _timm("resnet101", "gluon_in1k", 79.306, 224, 224, 0.875, "bicubic"),
    _timm("resnet101", "tv2_in1k", 81.906, 176, 224, 0.965, "bilinear"),
    _timm("resnet101", "tv_in1k", 77.404, 224, 224, 0.875, "bilinear"),
    _timm("resnet101c", "gluon_in1k", 79.542, 224, 224, 0.875, "bicubic"),
    _timm("resnet101d", "gluon_in1k", 80.466, 224, 224, 0.875, "bicubic"),
    _timm("resnet101d", "ra2_in1k", 83.020, 256, 320, 1, "bicubic"),
    _timm("resnet101s", "gluon_in1k", 80.278, 224, 224, 0.875, "bicubic"),
    _timm("resnet10t", "c3_in1k", 68.354, 176, 224, 0.95, "bicubic"),
    _timm("resnet14t", "c3_in1k", 72.242, 176, 224, 0.95, "bicubic"),
    _timm("resnet152", "a1_in1k", 82.742, 224, 288, 1, "bicubic"),
    _timm("resnet152", "a1h_in1k", 83.494, 224, 288, 1, "bicubic"),
    _timm("resnet152", "a2_in1k", 82.614, 224, 288, 1, "bicubic"),
    _timm("resnet152", "a3_in1k", 80.548, 160, 224, 0.95, "bicubic"),
    _timm("resnet152", "gluon_in1k", 79.712, 224, 224, 0.875, "bicubic"),
    _timm("resnet152", "tv2_in1k", 82.294, 176, 224, 0.965, "bilinear"),
    _timm("resnet152", "tv_in1k", 78.330, 224, 224, 0.875, "bilinear"),
    _timm("resnet152c", "gluon_in1k", 79.904, 224, 224, 0.875, "bicubic"),
    _timm("resnet152d", "gluon_in1k", 80.476, 224, 224, 0.875, "bicubic"),
    _timm("resnet152d", "ra2_in1k", 83.684, 256, 320, 1, "bicubic"),
    _timm("resnet152s", "gluon_in1k", 81.048, 224, 224, 0.875, "bicubic"),
    _timm("resnet18", "a1_in1k", 73.164, 224, 288, 1, "bicubic"),
    _timm("resnet18", "a2_in1k", 72.364, 224, 288, 1, "bicubic"),
    _timm("resnet18", "a3_in1k", 68.250, 160, 224, 0.95, "bicubic"),
    _timm("resnet18", "fb_ssl_yfcc100m_ft_in1k", 72.636, 224, 224, 0.875, "bilinear"),
    _timm("resnet18", "fb_swsl_ig1b_ft_in1k", 73.286, 224, 224, 0.875, "bilinear"),
    _timm("resnet18", "gluon_in1k", 70.844, 224, 224, 0.875, "bicubic"),
    _timm("resnet18", "tv_in1k", 69.752, 224, 224, 0.875, "bilinear"),
    _timm("resnet18d", "ra2_in1k", 73.790, 224, 288, 0.95, "bicubic"),
    _timm("resnet18d", "ra4_e3600_r224_in1k", 76.012, 224, 288, 1, "bicubic", HALF),
    _timm("resnet200d", "ra2_in1k", 83.976, 256, 320, 1, "bicubic"),
    _timm("resnet26", "bt_in1k", 76.384, 224, 288, 0.95, "bicubic"),
    _timm("resnet26d", "bt_in1k", 77.422, 224, 288, 0.95, "bicubic"),
    _timm("resnet26t", "ra2_in1k", 78.330, 256, 320, 1, "bicubic"),
    _timm("resnet34", "a1_in1k", 77.930, 224, 288, 1, "bicubic"),
    _timm("resnet34", "a2_in1k", 77.150, 224, 288, 1, "bicubic"),
    _timm("resnet34", "a3_in1k", 72.996, 160, 224, 0.95, "bicubic"),
    _timm("resnet34", "bt_in1k", 76.506, 224, 288, 0.95, "bicubic"),
    _timm("resnet34", "gluon_in1k", 74.574, 224, 224, 0.875, "bicubic"),
    _timm("resnet34", "ra4_e3600_r224_in1k", 78.972, 224, 288, 1, "bicubic", HALF),
    _timm("resnet34", "tv_in1k", 73.298, 224, 224, 0.875, "bilinear"),
    _timm("resnet34d", "ra2_in1k", 78.440, 224, 288, 0.95, "bicubic"),
    _timm("resnet50", "a1_in1k", 81.240, 224, 288, 1, "bicubic"),
    _timm("resnet50", "a1h_in1k", 80.654, 176, 224, 1, "bicubic"),
    _timm("resnet50", "a2_in1k", 80.774, 224, 288, 1, "bicubic"),
    _timm("resnet50", "a3_in1k", 78.052, 160, 224, 0.95, "bicubic"),
    _timm("resnet50", "am_in1k", 79.004, 224, 224, 0.875, "bicubic"),
    _timm("resnet50", "b1k_in1k", 80.708, 224, 288, 1, "bicubic"),
    _timm("resnet50", "b2k_in1k", 80.466, 224, 288, 1, "bicubic"),
    _timm("resnet50", "bt_in1k", 79.652, 224, 288, 0.95, "bicubic"),
    _timm("resnet50", "c1_in1k", 80.928, 224, 288, 1, "bicubic"),
    _timm("resnet50", "c2_in1k", 80.862, 224, 288, 1, "bicubic"),
    _timm("resnet50", "d_in1k", 81.012, 224, 288, 1, "bicubic"),
    _timm("resnet50", "fb_ssl_yfcc100m_ft_in1k", 79.252, 224, 224, 0.875, "bilinear"),
    _timm("resnet50", "fb_swsl_ig1b_ft_in1k", 81.146, 224, 224, 0.875, "bilinear"),
    _timm("resnet50", "gluon_in1k", 77.580, 224, 224, 0.875, "bicubic"),
    _timm("resnet50", "ra_in1k", 79.864, 224, 288, 0.95, "bicubic"),
    _timm("resnet50", "ram_in1k", 79.982, 224, 288, 0.95, "bicubic"),
    _timm("resnet50", "tv2_in1k", 80.846, 176, 224, 0.965, "bilinear"),
    _timm("resnet50", "tv_in1k", 76.156, 224, 224, 0.875, "bilinear"),
    _timm("resnet50c", "gluon_in1k", 78.016, 224, 224, 0.875, "bicubic"),
    _timm("resnet50d", "a1_in1k", 81.466, 224, 288, 1, "bicubic"),
    _timm("resnet50d", "a2_in1k", 81.164, 224, 288, 1, "bicubic"),
    _timm("resnet50d", "a3_in1k", 78.742, 160, 224, 0.95, "bicubic"),
    _timm("resnet50d", "gluon_in1k", 79.080, 224, 224, 0.875, "bicubic"),
    _timm("resnet50d", "ra2_in1k", 81.354, 224, 288, 0.95, "bicubic"),
    _timm("resnet50d", "ra4_e3600_r224_in1k", 81.840, 224, 288, 1, "bicubic", HALF),
    _timm("resnet50s", "gluon_in1k", 78.710, 224, 224, 0.875, "bicubic"),
    _timm("resnetrs101", "tf_in1k", 82.288, 192, 288, 0.94, "bicubic"),
    _timm("resnetrs152", "tf_in1k", 83.710, 256, 320, 1, "bicubic"),
    _timm("resnetrs200", "tf_in1k", 84.448, 256, 320, 1, "bicubic"),
    _timm("resnetrs270", "tf_in1k", 84.438, 256, 352, 1, "bicubic"),
    _timm("resnetrs350", "tf_in1k", 84.710, 288, 384, 1, "bicubic"),
    _timm("resnetrs420", "tf_in1k", 85.010, 320, 416, 1, "bicubic"),
    _timm("resnetrs50", "tf_in1k", 79.934, 160, 224, 0.91, "bicubic"),
    _timm("resnetv2_101", "a1h_in1k", 83.002, 224, 288, 1, "bicubic", HALF),
    _timm("resnetv2_18", "ra4_e3600_r224_in1k", 75.364, 224, 288, 1, "bicubic", HALF),
    _timm("resnetv2_18d", "ra4_e3600_r224_in1k", 76.058, 224, 288, 1, "bicubic", HALF),
    _timm("resnetv2_34", "ra4_e3600_r224_in1k", 79.070, 224, 288, 1, "bicubic", HALF),
    _timm("resnetv2_34d", "ra4_e3600_r224_in1k", 79.614, 224, 288, 1, "bicubic", HALF),
    _timm("resnetv2_34d", "ra4_e3600_r384_in1k", 80.430, 384, 448, 1, "bicubic", HALF),
    _timm("resnetv2_50", "a1h_in1k", 81.406, 224, 288, 1, "bicubic", HALF),
    _timm("resnetv2_50d_gn", "ah_in1k", 81.960, 224, 288, 1, "bicubic", HALF),
    _timm("resnext101_32x16d", "fb_ssl_yfcc100m_ft_in1k", 81.856, 224, 224, 0.875, "bilinear"),
    _timm("resnext101_32x16d", "fb_swsl_ig1b_ft_in1k", 83.340, 224, 224, 0.875, "bilinear"),
    _timm("resnext101_32x16d", "fb_wsl_ig1b_ft_in1k", 84.166, 224, 224, 0.875, "bilinear"),
    _timm("resnext101_32x32d", "fb_wsl_ig1b_ft_in1k", 85.090, 224, 224, 0.875, "bilinear"),
    _timm("resnext101_32x4d", "fb_ssl_yfcc100m_ft_in1k", 80.936, 224, 224, 0.875, "bilinear"),
    _timm("resnext101_32x4d", "fb_swsl_ig1b_ft_in1k", 83.268, 224, 224, 0.875, "bilinear"),
    _timm("resnext101_32x4d", "gluon_in1k", 80.336, 224, 224, 0.875, "bicubic"),
    _timm("resnext101_32x8d", "fb_ssl_yfcc100m_ft_in1k", 81.620, 224, 224, 0.875, "bilinear"),
    _timm("resnext101_32x8d", "fb_swsl_ig1b_ft_in1k", 84.276, 224, 224, 0.875, "bilinear"),
    _timm("resnext101_32x8d", "fb_wsl_ig1b_ft_in1k", 82.720, 224, 224, 0.875, "bilinear"),
    _timm("resnext101_32x8d", "tv2_in1k", 82.832, 176, 224, 0.965, "bilinear"),
    _timm("resnext101_32x8d", "tv_in1k", 79.308, 224, 224, 0.875, "bilinear"),
    _timm("resnext101_64x4d", "c1_in1k", 83.158, 224, 288, 1, "bicubic"),
    _timm("resnext101_64x4d", "gluon_in1k", 80.640, 224, 224, 0.875, "bicubic"),
    _timm("resnext101_64x4d", "tv_in1k", 82.978, 224, 224, 0.875, "bilinear"),
    _timm("resnext50_32x4d", "a1_in1k", 81.480, 224, 288, 1, "bicubic"),
    _timm("resnext50_32x4d", "a1h_in1k", 82.016, 224, 288, 1, "bicubic"),
    _timm("resnext50_32x4d", "a2_in1k", 81.304, 224, 288, 1, "bicubic"),
    _timm("resnext50_32x4d", "a3_in1k", 79.258, 160, 224, 0.95, "bicubic"),
    _timm("resnext50_32x4d", "fb_ssl_yfcc100m_ft_in1k", 80.316, 224, 224, 0.875, "bilinear"),
    _timm("resnext50_32x4d", "fb_swsl_ig1b_ft_in1k", 82.162, 224, 224, 0.875, "bilinear"),
    _timm("resnext50_32x4d", "gluon_in1k", 79.354, 224, 224, 0.875, "bicubic"),
    _timm("resnext50_32x4d", "ra_in1k", 80.720, 224, 288, 0.95, "bicubic"),
    _timm("resnext50_32x4d", "tv2_in1k", 81.190, 176, 224, 0.965, "bilinear"),
    _timm("resnext50_32x4d", "tv_in1k", 77.632, 224, 224, 0.875, "bilinear"),
    _timm("resnext50d_32x4d", "bt_in1k", 80.676, 224, 288, 0.95, "bicubic"),
    _timm("seresnet152d", "ra2_in1k", 84.344, 256, 320, 1, "bicubic"),
    _timm("seresnet50", "a1_in1k", 81.114, 224, 288, 1, "bicubic"),
    _timm("seresnet50", "a2_in1k", 81.094, 224, 288, 1, "bicubic"),
    _timm("seresnet50", "a3_in1k", 77.036, 160, 224, 0.95, "bicubic"),
    _timm("seresnet50", "ra2_in1k", 81.288, 224, 288, 0.95, "bicubic"),
    _timm("seresnext101_32x4d", "gluon_in1k", 80.886, 224, 224, 0.875, "bicubic"),
    _timm("seresnext101_32x8d", "ah_in1k", 84.192, 224, 288, 1, "bicubic"),
    _timm("seresnext101_64x4d", "gluon_in1k", 80.884, 224, 224, 0.875, "bicubic"),
    _timm("seresnext101d_32x8d", "ah_in1k", 84.380, 224, 288, 1, "bicubic"),
    _timm("seresnext26d_32x4d", "bt_in1k", 78.816, 224, 288, 0.95, "bicubic"),
    _timm("seresnext26t_32x4d", "bt_in1k", 78.736, 224, 288, 0.95, "bicubic"),
    _timm("seresnext50_32x4d", "gluon_in1k", 79.916, 224, 224, 0.875, "bicubic"),
    _timm("seresnext50_32x4d", "racm_in1k", 82.186, 224, 288, 0.95, "bicubic"),
    _timm("wide_resnet101_2", "tv2_in1k", 82.514, 176, 224, 0.965, "bilinear"),
    _timm("wide_resnet101_2", "tv_in1k", 78.862, 224, 224, 0.875, "bilinear"),
    _timm("wide_resnet50_2", "racm_in1k", 82.260, 224, 288, 0.95, "bicubic"),
    _timm("wide_resnet50_2", "tv2_in1k", 81.612, 176, 224, 0.965, "bilinear"),
    _timm("wide_resnet50_2", "tv_in1k", 78.486, 224, 224, 0.875, "bilinear"),
)

# (torchvision model, weights, acc@1, crop size, resize size, file)
TORCHVISION = (
    _tv("resnet18", "IMAGENET1K_V1", 69.758, 224, 256, "resnet18-f37072fd.pth"),
    _tv("resnet34", "IMAGENET1K_V1", 73.314, 224, 256, "resnet34-b627a593.pth"),
    _tv("resnet50", "IMAGENET1K_V1", 76.130, 224, 256, "resnet50-0676ba61.pth"),
    _tv("resnet50", "IMAGENET1K_V2", 80.858, 224, 232, "resnet50-11ad3fa6.pth"),
    _tv("resnet101", "IMAGENET1K_V1", 77.374, 224, 256, "resnet101-63fe2227.pth"),
    _tv("resnet101", "IMAGENET1K_V2", 81.886, 224, 232, "resnet101-cd907fc2.pth"),
    _tv("resnet152", "IMAGENET1K_V1", 78.312, 224, 256, "resnet152-394f9c45.pth"),
    _tv("resnet152", "IMAGENET1K_V2", 82.284, 224, 232, "resnet152-f82ba261.pth"),
    _tv("resnext50_32x4d", "IMAGENET1K_V1", 77.618, 224, 256, "resnext50_32x4d-7cdf4587.pth"),
    _tv("resnext50_32x4d", "IMAGENET1K_V2", 81.198, 224, 232, "resnext50_32x4d-1a0047aa.pth"),
    _tv("resnext101_32x8d", "IMAGENET1K_V1", 79.312, 224, 256, "resnext101_32x8d-8ba56ff5.pth"),
    _tv("resnext101_32x8d", "IMAGENET1K_V2", 82.834, 224, 232, "resnext101_32x8d-110c445d.pth"),
    _tv("resnext101_64x4d", "IMAGENET1K_V1", 83.246, 224, 232, "resnext101_64x4d-173b62eb.pth"),
    _tv("wide_resnet50_2", "IMAGENET1K_V1", 78.468, 224, 256, "wide_resnet50_2-95faca4d.pth"),
    _tv("wide_resnet50_2", "IMAGENET1K_V2", 81.602, 224, 232, "wide_resnet50_2-9ba9bcbe.pth"),
    _tv("wide_resnet101_2", "IMAGENET1K_V1", 78.848, 224, 256, "wide_resnet101_2-32ee1156.pth"),
    _tv("wide_resnet101_2", "IMAGENET1K_V2", 82.510, 224, 232, "wide_resnet101_2-d733dc28.pth"),
)

ALL: tuple[Published, ...] = TIMM + TORCHVISION


def peer_name(preset: str) -> str:
    """The name timm and torchvision give our preset."""
    return PEER_NAMES.get(preset, preset)


def published_for(preset: str) -> list[Published]:
    """Every published weight file for a preset (timm's tags first, then torchvision's)."""
    name = peer_name(preset)
    return [p for p in ALL if p.model == name]
