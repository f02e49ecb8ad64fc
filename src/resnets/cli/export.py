"""`resnets export --weights W --format onnx|openvino|torchscript --out F`: a deployable file, checked against
PyTorch (fp32: max |difference| of logits; int8: accuracy against fp32 eager on an image folder).

Exit status: 0 when the exported file matches eager PyTorch (see export.PARITY_TOLERANCE) or, for int8,
when its top-1 on a labelled folder drops by at most export.INT8_MAX_TOP1_DROP points; 1 when it was
written but fails that check; 2 for a usage error (missing packages, bad weights, format or precision).
"""

from __future__ import annotations

import argparse

from ..export import FORMATS, check_request, export_model
from ..hardware import normalise_precision
from .inference_options import add_weights_arguments
from .predict import model_from_weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_weights_arguments(parser)
    parser.add_argument("--format", required=True, help=f"one of: {', '.join(FORMATS)}")
    parser.add_argument("--out", required=True, help="file to write (.onnx, .xml for OpenVINO IR, or .pt)")
    parser.add_argument("--img-size", type=int, default=None, help="example input size (default: model's eval size)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's, 17)")
    parser.add_argument("--dynamic-size", action="store_true",
                        help="dynamic height and width as well as batch (onnx, openvino); checked at two sizes")
    parser.add_argument("--precision", default="fp32", help="fp32 (default) or int8 (onnx, openvino; needs --calib)")
    parser.add_argument("--calib", metavar="DIR", default=None, help="int8: calibration images")
    parser.add_argument("--int8-val", metavar="DIR", default=None,
                        help="int8: images for the accuracy report, labelled by class folders named like the "
                             "model's classes (default: the --calib folder)")


def run(args: argparse.Namespace) -> int:
    precision = normalise_precision(args.precision)
    # every usage error before the weights are loaded: fail fast on a typo
    check_request(args.format, precision, opset=args.opset, dynamic_size=args.dynamic_size, calib=args.calib,
                  out=args.out)
    model = model_from_weights(args.weights, args.model, pretrained=args.pretrained)
    report = export_model(model, args.out, args.format, img_size=args.img_size, opset=args.opset,
                          precision=precision, dynamic_size=args.dynamic_size, calib=args.calib, val=args.int8_val)
    for line in report.summary():
        print(line)
    return 0 if report.parity_ok else 1
