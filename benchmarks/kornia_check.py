"""Why the batched crop is ours and not kornia's: pixels and time of RandomResizedCrop, same boxes.

Real photos (imagenette-mini, 224 px) are cropped with boxes drawn by our batched rule and resized to
--size by (a) the per-sample reference ``transforms.resized_crop`` (torch's antialiased uint8 resize,
what the worker path and PIL-based peers compute), (b) our batched ``batch_ops.resized_crop``, (c) kornia
0.9's ``RandomResizedCrop`` given the same boxes (its "resample" warp and its "slice" crop-and-resize).
Prints mean/max absolute differences to the reference and the time per batch.

    python benchmarks/kornia_check.py --size 160 --batch-size 32
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "imagenette-mini" / "train"


def main(argv: list[str] | None = None) -> int:
    import kornia.augmentation as KA

    from resnets.data import batch_ops as K
    from resnets.data.batch_augment import crop_params, seeded_uniforms
    from resnets.data.preprocess import load_image
    from resnets.data.transforms import resized_crop

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    paths = sorted(p for d in sorted(DATA.iterdir()) for p in sorted(d.iterdir())[:4])[:args.batch_size]
    images = torch.stack([load_image(p).contiguous() for p in paths])  # all 224 x 224 here
    n, _, height, width = images.shape
    boxes = crop_params(torch.tensor([[height, width]] * n), seeded_uniforms(range(n), 1, 41), (0.08, 1.0),
                        (3 / 4, 4 / 3))
    modes = torch.zeros(n, dtype=torch.long)  # bilinear: the mode kornia and ours share

    def timed(fn):
        fn()
        start = time.perf_counter()
        out = fn()
        return out, (time.perf_counter() - start) * 1000

    reference, t_ref = timed(lambda: torch.stack([resized_crop(images[i], *boxes[i].tolist(), args.size, "bilinear")
                                                  for i in range(n)]))
    canvas = images.permute(0, 2, 3, 1).contiguous()
    ours, t_ours = timed(lambda: K.resized_crop(canvas, boxes, args.size, modes, method="taps"))
    kernel, t_kernel = timed(lambda: K.resized_crop(canvas, boxes, args.size, modes, method="kernel"))
    top, left, h, w = boxes.T.float()
    corners = torch.stack([torch.stack([left, top], 1), torch.stack([left + w - 1, top], 1),
                           torch.stack([left + w - 1, top + h - 1], 1), torch.stack([left, top + h - 1], 1)], 1)
    rows = [("per-sample reference (torch antialiased)", reference, t_ref),
            ("ours, batched taps (the GPU method)", ours, t_ours), ("ours, kernel per image (the CPU method)", kernel, t_kernel)]
    for mode in ("resample", "slice"):
        crop = KA.RandomResizedCrop((args.size, args.size), cropping_mode=mode, align_corners=False)
        params = crop.forward_parameters(images.shape)
        params["src"] = corners
        out, t = timed(lambda crop=crop, params=params: crop(images.float(), params=params))
        rows.append((f"kornia RandomResizedCrop ({mode})", out.round().clamp(0, 255).to(torch.uint8), t))
    print(f"{n} photos 224 px -> {args.size} px, bilinear, same boxes; differences to the per-sample reference")
    print("| crop | mean abs diff | max abs diff | ms per batch |\n|---|---:|---:|---:|")
    for name, out, t in rows:
        diff = (out.int() - reference.int()).abs()
        print(f"| {name} | {diff.float().mean():.3f} | {int(diff.max())} | {t:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
