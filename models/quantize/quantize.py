#!/usr/bin/env python3
"""Makes the 8-bit (int8) versions of the default detector and embedder, reproducibly.

    python models/quantize/quantize.py [--models ../shared/models] [--data ../shared/data]
                                       [--out .cache/derived-models]

(`bash deploy/quantize-models.sh` creates the pinned virtual environment and runs this.)

From the fp32 files in the models directory (their sha256 checked against
models/src/manifest.rs first) it writes, with onnxruntime.quantization (pinned:
requirements.txt), static QDQ models with per-channel int8 weights and uint8 activations
(the variants tried and their figures: models/README.md, "8-bit models"):

- (only with --detector, an experiment that did not pay: slower than fp32 in ONNX Runtime and
  it loses large faces) yunet_s_int8.onnx from yunet_s_dynamic.onnx, calibrated on every image of data/photos and
  data/group, fed as the pipeline feeds the detector (models/README.md, "Views"): the whole image
  at a long side of 640 and, when its long side (capped at 1920) exceeds 960, the detail view at
  a long side of at most 1920; BGR, raw 0..255, zero padding right and bottom to multiples of 32.
  The Conv layers that produce the 12 outputs (cls/obj/bbox/kps per stride) stay fp32.
- mobilefacenet_128d_int8.onnx from mobilefacenet_128d_dynamic.onnx, calibrated on the aligned
  112x112 crops (ArcFace template, similarity transform, bilinear, zero border; RGB,
  (x-127.5)/127.5) of the largest face that the fp32 detector finds in each data/faces_dev image
  of the alphabetically first half of the identities. The last Conv (the 128-d output) stays
  fp32.

Reproducibility: the same bytes on any x86 machine. File lists are sorted, image sizes fixed,
resizing uses OpenCV's bit-exact bilinear (INTER_LINEAR_EXACT), landmarks are rounded to
1/100 px before alignment, and every calibration range (per tensor min/max, MinMax method) is
rounded outward to 3 significant decimal digits before the quantizer sees it, so that float
differences in the last bits between CPUs do not reach the file. The calibrator computes the
ranges into a cache file, the ranges are rounded, and the quantizer runs from the rounded cache.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import re
import sys
import tempfile
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnx.version_converter
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.calibrate import TensorData, TensorsData, load_tensors_data, save_tensors_data

REPO = Path(__file__).resolve().parents[2]
F32 = np.float32
CROP = 112
TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
STRIDES = (8, 16, 32)
INPUT_SIZE = 640
DETAIL_MAX = 1920
DETAIL_MIN_FACTOR = 1.5
SCORE_THRESHOLD = 0.7

# (source file, output file, what it is) of each derived model.
DETECTOR = ("yunet_s_dynamic.onnx", "yunet_s_int8.onnx")
EMBEDDER = ("mobilefacenet_128d_dynamic.onnx", "mobilefacenet_128d_int8.onnx")

# The variant kept (see models/README.md, "8-bit models", for the ones tried).
VARIANT = {
    "quant_format": QuantFormat.QDQ,
    "per_channel": True,
    "activation_type": QuantType.QUInt8,
    "weight_type": QuantType.QInt8,
    "reduce_range": False,
}
SIGNIFICANT_DIGITS = 3


def log(msg: str) -> None:
    print(f"quantize: {msg}", file=sys.stderr, flush=True)


# -- manifest ---------------------------------------------------------------------------------


def manifest_hashes() -> dict[str, str]:
    """file -> sha256 of every entry of models/src/manifest.rs."""
    text = (REPO / "models/src/manifest.rs").read_text()
    pairs = re.findall(r'file:\s*"([^"]+)",\s*sha256:\s*"([0-9a-f]{64})"', text)
    if not pairs:
        sys.exit("quantize: no entries found in models/src/manifest.rs")
    return dict(pairs)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def verify_source(models: Path, file: str, hashes: dict[str, str]) -> Path:
    path = models / file
    want = hashes.get(file)
    if want is None:
        sys.exit(f"quantize: {file} has no entry in models/src/manifest.rs")
    if not path.is_file():
        sys.exit(
            f"quantize: the fp32 model {file} is missing from {models} (expected sha256 {want}; "
            "see models/README.md for where to download it, or set LIKENESS_MODELS_DIR)"
        )
    got = sha256(path)
    if got != want:
        sys.exit(f"quantize: {path} has sha256 {got}, the manifest expects {want}")
    return path


# -- images -----------------------------------------------------------------------------------


def round_half_away(x: float) -> int:
    r = math.floor(x)
    return r + 1 if x - r >= 0.5 else r


def round32(x: int) -> int:
    return -(-x // 32) * 32


def plan_views(w: int, h: int) -> list[tuple[float, int, int]]:
    """detect::plan_views: (scale, content width, content height) of the whole view and, for
    large photos, the detail view (f32 arithmetic, as the Rust code)."""
    long = F32(max(w, h))
    scale = F32(INPUT_SIZE) / long
    views = [
        (
            float(scale),
            min(max(round_half_away(float(F32(w) * scale)), 1), INPUT_SIZE),
            min(max(round_half_away(float(F32(h) * scale)), 1), INPUT_SIZE),
        )
    ]
    detail_long = min(long, F32(DETAIL_MAX))
    if detail_long > F32(INPUT_SIZE) * F32(DETAIL_MIN_FACTOR):
        ds = detail_long / long
        views.append(
            (
                float(ds),
                max(round_half_away(float(F32(w) * ds)), 1),
                max(round_half_away(float(F32(h) * ds)), 1),
            )
        )
    return views


def read_bgr(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        sys.exit(f"quantize: cannot decode {path}")
    return img


def detector_inputs(img: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """(scale, 1x3xHxW float32 BGR 0..255 input) of each view of one image: the detail image
    resized once from the photo, the whole view from the detail image."""
    h, w = img.shape[:2]
    views = plan_views(w, h)
    src = img
    if len(views) == 2:
        _, cw, ch = views[1]
        if (cw, ch) != (w, h):
            src = cv2.resize(img, (cw, ch), interpolation=cv2.INTER_LINEAR_EXACT)
    out = []
    for scale, cw, ch in views:
        pix = src if (cw, ch) == (src.shape[1], src.shape[0]) else cv2.resize(
            src, (cw, ch), interpolation=cv2.INTER_LINEAR_EXACT
        )
        x = np.zeros((1, 3, round32(ch), round32(cw)), F32)
        x[0, :, :ch, :cw] = pix.transpose(2, 0, 1)
        out.append((scale, x))
    return out


def image_files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


# -- detection and alignment (for the embedder's calibration crops) ---------------------------


def decode_yunet(outs, iw: int, ih: int):
    """Boxes [k,4], landmarks [k,5,2], scores [k] of one view (input pixels)."""
    boxes, lms, scores = [], [], []
    for li, s in enumerate(STRIDES):
        cls, obj, bbox, kps = outs[li][0], outs[3 + li][0], outs[6 + li][0], outs[9 + li][0]
        score = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
        (idx,) = np.nonzero(score >= SCORE_THRESHOLD)
        cols = iw // s
        col = (idx % cols).astype(np.float64)
        row = (idx // cols).astype(np.float64)
        bb = bbox[idx].astype(np.float64)
        kp = kps[idx].astype(np.float64).reshape(-1, 5, 2)
        cx, cy = (col + bb[:, 0]) * s, (row + bb[:, 1]) * s
        bw, bh = np.exp(bb[:, 2]) * s, np.exp(bb[:, 3]) * s
        boxes.append(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1))
        lm = np.empty_like(kp)
        lm[:, :, 0] = (col[:, None] + kp[:, :, 0]) * s
        lm[:, :, 1] = (row[:, None] + kp[:, :, 1]) * s
        lms.append(lm)
        scores.append(score[idx])
    return np.concatenate(boxes), np.concatenate(lms), np.concatenate(scores)


def largest_face(sess: ort.InferenceSession, img: np.ndarray):
    """Landmarks [5,2] (image pixels) of the largest face the detector finds, or None."""
    names = [f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in STRIDES]
    best = None
    for scale, x in detector_inputs(img):
        outs = sess.run(names, {sess.get_inputs()[0].name: x})
        boxes, lms, _ = decode_yunet(outs, x.shape[3], x.shape[2])
        for b, lm in zip(boxes / scale, lms / scale):
            area = (b[2] - b[0]) * (b[3] - b[1])
            if best is None or area > best[0]:
                best = (area, lm)
    return None if best is None else best[1]


def similarity(lm: np.ndarray) -> np.ndarray:
    """Least-squares similarity (no reflection) of 5 landmarks onto the template (2x3)."""
    ms, md = lm.mean(axis=0), TEMPLATE.mean(axis=0)
    s, d = lm - ms, TEMPLATE - md
    den = (s * s).sum()
    a = (s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum() / den
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / den
    tx = md[0] - (a * ms[0] - b * ms[1])
    ty = md[1] - (b * ms[0] + a * ms[1])
    return np.array([[a, -b, tx], [b, a, ty]], np.float64)


def embedder_input(img: np.ndarray, lm: np.ndarray) -> np.ndarray:
    crop = cv2.warpAffine(
        img,
        similarity(np.round(lm, 2)),
        (CROP, CROP),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    x = crop[:, :, ::-1].transpose(2, 0, 1).astype(F32)[None]
    return (x - F32(127.5)) / F32(127.5)


def identity(file: str) -> str | None:
    m = re.fullmatch(r"(.+)_(\d+)_crop\.jpg", file)
    return m.group(1) if m else None


# -- calibration and quantization -------------------------------------------------------------


class Reader(CalibrationDataReader):
    def __init__(self, name: str, inputs: list[np.ndarray]):
        self.name = name
        self.inputs = inputs
        self.i = 0

    def get_next(self):
        if self.i >= len(self.inputs):
            return None
        self.i += 1
        return {self.name: self.inputs[self.i - 1]}

    def rewind(self):
        self.i = 0

    def __len__(self):
        return len(self.inputs)


def round_outward(v: float, up: bool) -> float:
    """v rounded to SIGNIFICANT_DIGITS significant decimal digits, away from the range's
    inside (down for a minimum, up for a maximum)."""
    if v == 0 or not math.isfinite(v):
        return float(v)
    d = Decimal(float(v))
    q = Decimal(1).scaleb(d.adjusted() - SIGNIFICANT_DIGITS + 1)
    return float(d.quantize(q, rounding=ROUND_CEILING if up else ROUND_FLOOR))


def rounded(ranges: TensorsData, method: CalibrationMethod) -> TensorsData:
    out = {}
    for name in sorted(ranges.keys()):
        td = ranges[name]
        lo, hi = (np.asarray(v, np.float32) for v in td.range_value)
        lo = np.array([round_outward(float(x), False) for x in lo.reshape(-1)], F32).reshape(lo.shape)
        hi = np.array([round_outward(float(x), True) for x in hi.reshape(-1)], F32).reshape(hi.shape)
        out[name] = TensorData(lowest=lo, highest=hi)
    return TensorsData(method, out)


def last_convs(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv nodes whose output reaches a graph output through shape-only ops."""
    shape_ops = {"Reshape", "Transpose", "Flatten", "Sigmoid", "Squeeze", "Unsqueeze", "Identity"}
    producer = {o: n for n in model.graph.node for o in n.output}
    found = []
    for out in model.graph.output:
        n = producer.get(out.name)
        while n is not None and n.op_type in shape_ops:
            n = producer.get(n.input[0])
        if n is not None and n.op_type == "Conv" and n.name not in found:
            found.append(n.name)
    return sorted(found)


def opset(model: onnx.ModelProto) -> int:
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def quantize(
    src: Path,
    dst: Path,
    inputs: list[np.ndarray],
    work: Path,
    exclude_last: bool,
    variant: dict,
    method: CalibrationMethod,
    exclude_more: list[str],
) -> None:
    model = onnx.load(str(src))
    if opset(model) < 13:
        # Per-channel QuantizeLinear/DequantizeLinear (their axis attribute) need opset 13.
        model = onnx.version_converter.convert_version(model, 13)
    # Node names are needed to exclude nodes; give unnamed nodes stable names.
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"
    named = work / f"{src.stem}.named.onnx"
    onnx.save(model, str(named))
    exclude = (last_convs(model) if exclude_last else []) + exclude_more
    if variant.get("first_convs"):
        variant = dict(variant)
        convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
        variant["nodes_to_quantize"] = convs[: variant.pop("first_convs")]
    log(f"{src.name}: {len(inputs)} calibration inputs; kept fp32: {', '.join(exclude) or 'none'}")
    raw_cache = work / f"{src.stem}.ranges.raw.json"
    round_cache = work / f"{src.stem}.ranges.json"
    opts = dict(
        nodes_to_exclude=exclude,
        calibrate_method=method,
        extra_options={"CalibMaxIntermediateOutputs": 16} if method == CalibrationMethod.MinMax else {},
        **variant,
    )
    # 1. calibrate (the model it writes is discarded), 2. round the ranges, 3. quantize from
    # the rounded ranges only.
    quantize_static(
        str(named),
        str(work / "discard.onnx"),
        Reader(ort.InferenceSession(str(named)).get_inputs()[0].name, inputs),
        calibration_cache_path=str(raw_cache),
        **opts,
    )
    save_tensors_data(rounded(load_tensors_data(raw_cache), method), round_cache)
    tmp = dst.with_suffix(".tmp")
    quantize_static(str(named), str(tmp), None, calibration_cache_path=str(round_cache), **opts)
    os.replace(tmp, dst)
    log(f"wrote {dst} ({dst.stat().st_size} bytes, sha256 {sha256(dst)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=Path(os.environ.get("LIKENESS_MODELS_DIR", "../shared/models")))
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("LIKENESS_DATA_DIR", "../shared/data")))
    ap.add_argument(
        "--out", type=Path, default=Path(os.environ.get("LIKENESS_DERIVED_MODELS_DIR", ".cache/derived-models"))
    )
    ap.add_argument(
        "--detector",
        action="store_true",
        help="also make yunet_s_int8.onnx (an experiment: slower than fp32 and it loses large faces, see models/README.md)",
    )
    ap.add_argument("--keep-last", action="store_true", help="quantize the output layers too (experiment)")
    ap.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="minmax", help="(experiment)")
    ap.add_argument("--act", choices=("uint8", "int8"), default="uint8", help="activation type (experiment)")
    ap.add_argument("--format", choices=("qdq", "qoperator"), default="qdq", help="(experiment)")
    ap.add_argument("--first-convs", type=int, default=0, help="quantize only the first N Conv nodes (experiment)")
    ap.add_argument("--ops", default="", help="comma-separated op types to quantize (experiment)")
    ap.add_argument("--exclude", default="", help="comma-separated node names kept fp32 (experiment)")
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    cv2.setNumThreads(1)

    variant = dict(VARIANT)
    variant["activation_type"] = QuantType.QUInt8 if args.act == "uint8" else QuantType.QInt8
    variant["quant_format"] = QuantFormat.QDQ if args.format == "qdq" else QuantFormat.QOperator
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[args.method]
    more = [n for n in args.exclude.split(",") if n]
    if args.first_convs:
        variant["first_convs"] = args.first_convs
    if args.ops:
        variant["op_types_to_quantize"] = args.ops.split(",")
    hashes = manifest_hashes()
    det_src = verify_source(args.models, DETECTOR[0], hashes)
    emb_src = verify_source(args.models, EMBEDDER[0], hashes)
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="likeness-quantize.") as tmp:
        work = Path(tmp)
        if args.detector:
            files = image_files(args.data / "photos") + image_files(args.data / "group")
            inputs = [x for f in files for _, x in detector_inputs(read_bgr(f))]
            quantize(det_src, args.out / DETECTOR[1], inputs, work, not args.keep_last, variant, method, more)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(det_src), so, providers=["CPUExecutionProvider"])
        faces = sorted(f.name for f in (args.data / "faces_dev").glob("*_crop.jpg"))
        ids = sorted({i for f in faces if (i := identity(f))})
        calib_ids = set(ids[: len(ids) // 2])
        inputs = []
        for f in faces:
            if identity(f) not in calib_ids:
                continue
            img = read_bgr(args.data / "faces_dev" / f)
            lm = largest_face(sess, img)
            if lm is not None:
                inputs.append(embedder_input(img, lm))
        log(f"embedder calibration: {len(calib_ids)} of {len(ids)} identities (first half by name)")
        quantize(emb_src, args.out / EMBEDDER[1], inputs, work, not args.keep_last, variant, method, more)


if __name__ == "__main__":
    main()
