"""`FeatureInfo`: what a backbone's feature maps are (channels, stride, module), in timm's vocabulary."""

from __future__ import annotations


class FeatureInfo(list):
    """A list of {"index", "module", "num_chs", "reduction"} dicts, one per feature map, in output order.

    timm's FeatureInfo accessors are here too (`channels()`, `reduction()`, `module_name()`), so code written
    for a timm backbone (FPN necks ask `feature_info.channels()`) works unchanged.
    """

    def channels(self) -> list[int]:
        return [info["num_chs"] for info in self]

    def reduction(self) -> list[int]:
        return [info["reduction"] for info in self]

    def module_name(self) -> list[str]:
        return [info["module"] for info in self]

    def get_dicts(self) -> list[dict]:
        return [dict(info) for info in self]
