#!/usr/bin/env python3
"""Reference Python face pipeline: the same stages, models and parameters as the Rust
pipeline in models/src (pipeline.rs, detect.rs, align.rs), written the way a competent
Python engineer would write it with onnxruntime + numpy + OpenCV.

decode (cv2.imdecode, IMREAD_COLOR: BGR, EXIF orientation applied) -> views (the whole image
letterboxed to 640x640 at the top-left + overlapping 640x640 tiles of the image scaled to a
long side of at most 1920, ported from detect::plan_views) -> cv2.resize INTER_LINEAR (the
tile-scale image is resized once and the tiles are slices of it) -> YuNet-s dynamic, up to 8
views per call -> vectorised output decoding (score = sqrt(cls*obj) >= 0.7) -> drop detections
cut by interior tile edges, map back -> greedy NMS (IoU 0.3 + containment) -> closed-form
least-squares similarity (Umeyama, 2-D) -> cv2.warpAffine bilinear, zero border -> Laplacian
variance sharpness -> MobileFaceNet, up to 64 faces per call -> L2 normalisation.

Used by `cargo run --release -p likeness-bench --bin speed` (see bench/speed.sh); run alone:

    python bench/peer/pipeline.py --set .cache/bench-images/set.json --reps 1 --json-out r.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

# OpenCV reads OMP/thread settings at import; the thread count is set explicitly below.
import cv2
import onnxruntime as ort

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
    dtype=np.float32,
)
STRIDES = (8, 16, 32)


class Params:
    """detect::DetectParams and the pipeline defaults."""

    input_size = 640
    score_threshold = 0.7
    nms_iou = 0.3
    tile_max_side = 1920
    tile_min_factor = 1.5
    tile_overlap = 160
    max_faces = 500
    max_detect_batch = 8
    max_embed_batch = 64
    min_face_size = 32.0
    min_sharpness = 20.0


def round_half_away(x) -> int:
    """Rust's f32::round for non-negative values (Python's round() rounds half to even)."""
    x = float(x)
    r = math.floor(x)
    return r + 1 if x - r >= 0.5 else r


class View:
    """detect::View: input pixel (u, v) shows image pixel (x0 + u/scale, y0 + v/scale)."""

    __slots__ = ("x0", "y0", "scale", "cw", "ch", "interior", "tile")

    def __init__(self, x0, y0, scale, cw, ch, interior, tile):
        self.x0, self.y0, self.scale = x0, y0, scale
        self.cw, self.ch = cw, ch
        self.interior = interior
        # For tiles: (tx, ty) in the tile-scale image; None for the whole-image view.
        self.tile = tile


def plan_views(w: int, h: int, p=Params):
    """A port of detect::plan_views, in f32 arithmetic like the Rust code."""
    side = F32(p.input_size)
    long = F32(max(w, h))
    scale = side / long
    cw = min(max(round_half_away(F32(w) * scale), 1), p.input_size)
    ch = min(max(round_half_away(F32(h) * scale), 1), p.input_size)
    views = [View(F32(0), F32(0), scale, cw, ch, (False,) * 4, None)]
    if p.tile_max_side == 0:
        return views, None
    tile_long = min(long, F32(p.tile_max_side))
    if tile_long <= side * F32(p.tile_min_factor):
        return views, None
    ts = tile_long / long
    sw = round_half_away(F32(w) * ts)
    sh = round_half_away(F32(h) * ts)
    stride = p.input_size - p.tile_overlap

    def starts(length):
        if length <= p.input_size:
            return [0]
        n = -(-(length - p.input_size) // stride) + 1
        span = length - p.input_size
        return [(span * i) // max(n - 1, 1) for i in range(n)]

    for ty in starts(sh):
        for tx in starts(sw):
            tcw = min(sw - tx, p.input_size)
            tch = min(sh - ty, p.input_size)
            views.append(
                View(
                    F32(tx) / ts,
                    F32(ty) / ts,
                    ts,
                    tcw,
                    tch,
                    (tx > 0, ty > 0, tx + tcw < sw, ty + tch < sh),
                    (tx, ty),
                )
            )
    return views, (sw, sh)


class Peer:
    def __init__(self, models_dir: str, threads: int, interp: int, opt_level: str):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, opt_level)
        prov = ["CPUExecutionProvider"]
        self.det = ort.InferenceSession(
            os.path.join(models_dir, "yunet_s_dynamic.onnx"), so, providers=prov
        )
        self.emb = ort.InferenceSession(
            os.path.join(models_dir, "mobilefacenet_128d_dynamic.onnx"), so, providers=prov
        )
        self.det_in = self.det.get_inputs()[0].name
        names = {o.name for o in self.det.get_outputs()}
        self.det_out = [f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in STRIDES]
        missing = [n for n in self.det_out if n not in names]
        if missing:
            sys.exit(f"detector outputs {missing} not found (has {sorted(names)})")
        self.emb_in = self.emb.get_inputs()[0].name
        self.interp = interp
        side = Params.input_size
        # Grid of every level, shared by all calls: (col, row) per cell.
        self.grid = {}
        for s in STRIDES:
            cols = side // s
            idx = np.arange(cols * cols)
            self.grid[s] = (F32(idx % cols), F32(idx // cols))
        self.input = np.zeros((Params.max_detect_batch, 3, side, side), dtype=F32)

    # -- decode ----------------------------------------------------------------------------

    @staticmethod
    def decode(data: bytes) -> np.ndarray:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("cannot decode image")
        return img

    # -- detect ----------------------------------------------------------------------------

    def detect(self, images, detail=None):
        """Per image: (boxes [k,4], landmarks [k,5,2], scores [k]) after NMS. `detail`, if
        given, accumulates seconds spent in view preparation, inference and post-processing."""
        p = Params
        side = p.input_size
        t_start = time.perf_counter()
        t_infer = 0.0
        t_prep = 0.0
        jobs = []  # (image index, view, tile-scale image or None)
        for i, img in enumerate(images):
            h, w = img.shape[:2]
            views, tile_size = plan_views(w, h)
            scaled = None
            if tile_size is not None:
                scaled = cv2.resize(img, tile_size, interpolation=self.interp)
            jobs.extend((i, v, scaled) for v in views)
        t_prep += time.perf_counter() - t_start
        found = [[] for _ in images]
        for start in range(0, len(jobs), p.max_detect_batch):
            t0 = time.perf_counter()
            chunk = jobs[start : start + p.max_detect_batch]
            n = len(chunk)
            buf = self.input[:n]
            buf.fill(0.0)
            for k, (i, v, scaled) in enumerate(chunk):
                if v.tile is None:
                    pix = cv2.resize(images[i], (v.cw, v.ch), interpolation=self.interp)
                else:
                    tx, ty = v.tile
                    pix = scaled[ty : ty + v.ch, tx : tx + v.cw]
                # YuNet: BGR planar, raw 0..255; zero padding right and bottom.
                buf[k, :, : v.ch, : v.cw] = pix.transpose(2, 0, 1)
            t1 = time.perf_counter()
            outs = self.det.run(self.det_out, {self.det_in: buf})
            t2 = time.perf_counter()
            t_prep += t1 - t0
            t_infer += t2 - t1
            for k, dets in enumerate(self.decode_yunet(outs, n, p.score_threshold)):
                i, v, _ = chunk[k]
                h, w = images[i].shape[:2]
                dets = map_to_image(dets, v, w, h)
                if dets[0].shape[0]:
                    found[i].append(dets)
        out = []
        for per in found:
            if not per:
                out.append(
                    (np.zeros((0, 4), F32), np.zeros((0, 5, 2), F32), np.zeros((0,), F32))
                )
                continue
            boxes = np.concatenate([d[0] for d in per])
            lms = np.concatenate([d[1] for d in per])
            scores = np.concatenate([d[2] for d in per])
            keep = nms(boxes, scores, p.nms_iou, p.max_faces)
            out.append((boxes[keep], lms[keep], scores[keep]))
        if detail is not None:
            total = time.perf_counter() - t_start
            detail["detect_views"] += len(jobs)
            detail["detect_input_mpix"] += len(jobs) * side * side / 1e6
            detail["detect_prep"] += t_prep
            detail["detect_infer"] += t_infer
            detail["detect_post"] += total - t_prep - t_infer
        return out

    def decode_yunet(self, outs, n, threshold):
        """Vectorised decode_yunet over the whole batch; one (boxes, lms, scores) per view."""
        parts = []
        for li, s in enumerate(STRIDES):
            cls, obj, bbox, kps = outs[li], outs[3 + li], outs[6 + li], outs[9 + li]
            score = np.sqrt(np.clip(cls[..., 0], 0, 1) * np.clip(obj[..., 0], 0, 1))
            b_idx, c_idx = np.nonzero(score >= threshold)
            if b_idx.size == 0:
                continue
            col = self.grid[s][0][c_idx]
            row = self.grid[s][1][c_idx]
            bb = bbox[b_idx, c_idx]
            kp = kps[b_idx, c_idx].reshape(-1, 5, 2)
            sf = F32(s)
            cx = (col + bb[:, 0]) * sf
            cy = (row + bb[:, 1]) * sf
            w = np.exp(bb[:, 2]) * sf
            h = np.exp(bb[:, 3]) * sf
            boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
            lms = np.empty_like(kp)
            lms[:, :, 0] = (col[:, None] + kp[:, :, 0]) * sf
            lms[:, :, 1] = (row[:, None] + kp[:, :, 1]) * sf
            parts.append((b_idx, boxes, lms, score[b_idx, c_idx]))
        res = []
        for b in range(n):
            sel = [(bx[bi == b], lm[bi == b], sc[bi == b]) for bi, bx, lm, sc in parts]
            if sel:
                res.append(tuple(np.concatenate(x) for x in zip(*sel)))
            else:
                res.append(
                    (np.zeros((0, 4), F32), np.zeros((0, 5, 2), F32), np.zeros((0,), F32))
                )
        return res

    # -- align + embed ---------------------------------------------------------------------

    def align(self, images, dets):
        """Aligned BGR crops [n,112,112,3], sharpness [n], embedder input [n,3,112,112]."""
        crops = []
        for img, (_, lms, _) in zip(images, dets):
            if lms.shape[0] == 0:
                continue
            for m in similarity(lms):
                crops.append(
                    cv2.warpAffine(
                        img,
                        m,
                        (CROP, CROP),
                        flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT,
                        borderValue=0,
                    )
                )
        if not crops:
            return np.zeros((0, CROP, CROP, 3), np.uint8), np.zeros(0), None
        crops = np.stack(crops)
        sharp = sharpness(crops)
        # RGB planar, (x - 127.5) / 127.5
        x = crops[..., ::-1].transpose(0, 3, 1, 2).astype(F32)
        x -= F32(127.5)
        x /= F32(127.5)
        return crops, sharp, np.ascontiguousarray(x)

    def embed(self, x):
        if x is None:
            return np.zeros((0, 128), F32)
        outs = []
        for s in range(0, x.shape[0], Params.max_embed_batch):
            outs.append(self.emb.run(None, {self.emb_in: x[s : s + Params.max_embed_batch]})[0])
        e = np.concatenate(outs)
        norm = np.linalg.norm(e, axis=1, keepdims=True)
        return e / np.where(norm > 0, norm, 1)


def map_to_image(dets, v: View, img_w: int, img_h: int):
    """detect::map_to_image for one view."""
    boxes, lms, scores = dets
    if boxes.shape[0] == 0:
        return dets
    m = F32(2.0)
    cw, ch = F32(v.cw), F32(v.ch)
    drop = np.zeros(boxes.shape[0], bool)
    if v.interior[0]:
        drop |= boxes[:, 0] <= m
    if v.interior[1]:
        drop |= boxes[:, 1] <= m
    if v.interior[2]:
        drop |= boxes[:, 2] >= cw - m
    if v.interior[3]:
        drop |= boxes[:, 3] >= ch - m
    keep = ~drop
    boxes, lms, scores = boxes[keep], lms[keep], scores[keep]
    inv = F32(1.0) / v.scale
    off = np.array([v.x0, v.y0], F32)
    boxes = boxes * inv + np.tile(off, 2)
    np.clip(boxes[:, 0::2], 0, F32(img_w), out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, F32(img_h), out=boxes[:, 1::2])
    lms = lms * inv + off
    ok = ((boxes[:, 2] - boxes[:, 0]) > 1) & ((boxes[:, 3] - boxes[:, 1]) > 1)
    return boxes[ok], lms[ok], scores[ok]


def nms(boxes, scores, iou_thr, max_keep):
    """detect::nms: greedy, best first, also suppressing a box 80 % inside a kept one."""
    order = np.argsort(-scores, kind="stable")
    b = boxes[order].astype(F32)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    ix = np.maximum(np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]), 0)
    iy = np.maximum(np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]), 0)
    inter = ix * iy
    union = area[:, None] + area[None, :] - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
    # contained[k, j]: box j lies mostly inside box k
    contained = (area[None, :] > 0) & (inter / np.where(area > 0, area, 1)[None, :] > 0.8)
    sup = (iou > iou_thr) | contained
    keep = []
    for j in range(len(order)):
        if len(keep) >= max_keep:
            break
        if not keep or not sup[keep, j].any():
            keep.append(j)
    return order[keep]


def similarity(lms):
    """Least-squares similarity (no reflection) of each face's landmarks onto the template,
    closed form (align::Similarity::estimate), as 2x3 matrices image -> crop. lms: [n,5,2]."""
    src = lms.astype(np.float64)
    dst = TEMPLATE.astype(np.float64)
    ms = src.mean(axis=1)  # [n,2]
    md = dst.mean(axis=0)  # [2]
    s = src - ms[:, None, :]
    d = dst - md
    x, y = s[..., 0], s[..., 1]
    u, v = d[:, 0], d[:, 1]
    num_a = (x * u + y * v).sum(axis=1)
    num_b = (x * v - y * u).sum(axis=1)
    den = (x * x + y * y).sum(axis=1)
    ok = den > 1e-12
    a = np.where(ok, num_a / np.where(ok, den, 1), 1.0)
    b = np.where(ok, num_b / np.where(ok, den, 1), 0.0)
    tx = md[0] - (a * ms[:, 0] - b * ms[:, 1])
    ty = md[1] - (b * ms[:, 0] + a * ms[:, 1])
    m = np.empty((lms.shape[0], 2, 3), np.float64)
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = a, -b, tx
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = b, a, ty
    return m


def sharpness(crops):
    """align::sharpness for BGR crops [n,112,112,3]: variance of the 4-neighbour Laplacian of
    the grey values over rows and columns 16..96."""
    c = crops.astype(F32)
    g = F32(0.299) * c[..., 2] + F32(0.587) * c[..., 1] + F32(0.114) * c[..., 0]
    lap = (
        g[:, 16:96, 15:95]
        + g[:, 16:96, 17:97]
        + g[:, 15:95, 16:96]
        + g[:, 17:97, 16:96]
        - 4 * g[:, 16:96, 16:96]
    ).astype(np.float64)
    return lap.reshape(lap.shape[0], -1).var(axis=1)


def one_pass(peer: Peer, blobs, batch: int, keep_results: bool) -> dict:
    """Processes every image once, `batch` images per detect/align/embed round; wall time,
    faces, per-stage seconds and (if asked) per-image faces."""
    results = [] if keep_results else None
    stages = {"decode": 0.0, "detect": 0.0, "align": 0.0, "embed": 0.0}
    detail = {"detect_views": 0, "detect_input_mpix": 0.0, "detect_prep": 0.0, "detect_infer": 0.0, "detect_post": 0.0}
    faces = 0
    start_wall = time.perf_counter()
    for start in range(0, len(blobs), batch):
        t0 = time.perf_counter()
        imgs = [peer.decode(b) for b in blobs[start : start + batch]]
        t1 = time.perf_counter()
        dets = peer.detect(imgs, detail)
        t2 = time.perf_counter()
        _, sharp, x = peer.align(imgs, dets)
        t3 = time.perf_counter()
        emb = peer.embed(x)
        t4 = time.perf_counter()
        stages["decode"] += t1 - t0
        stages["detect"] += t2 - t1
        stages["align"] += t3 - t2
        stages["embed"] += t4 - t3
        faces += sum(d[0].shape[0] for d in dets)
        if keep_results:
            j = 0
            for img, (boxes, lms, scores) in zip(imgs, dets):
                out = []
                for k in range(boxes.shape[0]):
                    out.append(
                        {
                            "bbox": [float(t) for t in boxes[k]],
                            "landmarks": [[float(t) for t in p] for p in lms[k]],
                            "score": float(scores[k]),
                            "sharpness": float(sharp[j]),
                            "embedding": [float(t) for t in emb[j]],
                        }
                    )
                    j += 1
                results.append({"width": img.shape[1], "height": img.shape[0], "faces": out})
    wall = time.perf_counter() - start_wall
    res = {
        "wall_s": wall,
        "images": len(blobs),
        "faces": faces,
        "stages_s": stages,
        "detail_s": detail,
    }
    if keep_results:
        res["per_image"] = results
    return res


def versions() -> dict:
    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "onnxruntime": ort.__version__,
    }


def serve(peer: Peer, blobs) -> None:
    """Line protocol on stdin/stdout, so that the Rust benchmark can interleave its passes
    with ours: one JSON object per line in each direction.
    -> {"cmd": "pass", "batch": 1, "detections": false}   <- one_pass() result
    -> {"cmd": "quit"}"""
    out = sys.stdout
    out.write(json.dumps({"ready": True, "images": len(blobs), "versions": versions()}) + "\n")
    out.flush()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
            if cmd.get("cmd") == "quit":
                break
            if cmd.get("cmd") != "pass":
                raise ValueError(f"unknown command {line!r}")
            res = one_pass(peer, blobs, int(cmd.get("batch", 1)), bool(cmd.get("detections")))
        except Exception as e:  # report, keep serving
            res = {"error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(res) + "\n")
        out.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description="Reference Python face pipeline (speed peer).")
    ap.add_argument("--set", default=".cache/bench-images/set.json", help="set.json of the images")
    ap.add_argument(
        "--models-dir", default=os.environ.get("LIKENESS_MODELS_DIR", "../shared/models")
    )
    ap.add_argument("--threads", type=int, default=2, help="ORT intra-op and OpenCV threads")
    ap.add_argument("--reps", type=int, default=3, help="timed passes over the set")
    ap.add_argument("--warmup", type=int, default=1, help="untimed passes first")
    ap.add_argument("--batch", type=int, default=1, help="images per detect/embed round")
    ap.add_argument(
        "--interp",
        choices=["linear", "area"],
        default="linear",
        help="cv2.resize interpolation for the detector views",
    )
    ap.add_argument(
        "--opt-level",
        default="ORT_ENABLE_LAYOUT",
        choices=list(ort.GraphOptimizationLevel.__members__),
        help="ONNX Runtime graph optimisation level (the Rust side's ort Level3 is "
        "ORT_ENABLE_LAYOUT; Python's own default is ORT_ENABLE_ALL)",
    )
    ap.add_argument(
        "--tile-max-side", type=int, default=Params.tile_max_side, help="0 disables tiling"
    )
    ap.add_argument("--serve", action="store_true", help="line protocol on stdin/stdout")
    ap.add_argument("--json-out", help="write the timing summary here")
    ap.add_argument(
        "--detections", action="store_true", help="include per-image faces in --json-out"
    )
    args = ap.parse_args()

    cv2.setNumThreads(args.threads)
    Params.tile_max_side = args.tile_max_side
    with open(args.set) as f:
        items = json.load(f)
    blobs = []
    for it in items:
        with open(it["path"], "rb") as f:
            blobs.append(f.read())
    interp = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}[args.interp]
    peer = Peer(args.models_dir, args.threads, interp, args.opt_level)
    if args.serve:
        serve(peer, blobs)
        return

    for _ in range(args.warmup):
        one_pass(peer, blobs, args.batch, False)
    passes = [one_pass(peer, blobs, args.batch, args.detections and r == 0) for r in range(args.reps)]
    wall = sum(p["wall_s"] for p in passes)
    images = sum(p["images"] for p in passes)
    faces = sum(p["faces"] for p in passes)
    stages = {k: sum(p["stages_s"][k] for p in passes) * 1e3 / images for k in passes[0]["stages_s"]}
    summary = {
        "impl": "python",
        "versions": versions(),
        "threads": args.threads,
        "batch": args.batch,
        "interp": args.interp,
        "opt_level": args.opt_level,
        "reps": args.reps,
        "images": images,
        "faces": faces,
        "wall_s": wall,
        "images_per_s": images / wall if wall > 0 else 0.0,
        "faces_per_s": faces / wall if wall > 0 else 0.0,
        "stage_ms_per_image": stages,
    }
    if args.detections and passes:
        summary["per_image"] = [
            dict(name=it["name"], **res) for it, res in zip(items, passes[0]["per_image"])
        ]
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(summary, f, indent=1)
    print(
        f"python: {images} images, {faces} faces in {wall:.2f} s: "
        f"{summary['images_per_s']:.2f} images/s, {summary['faces_per_s']:.1f} faces/s; "
        f"ms/image decode {stages['decode']:.1f} detect {stages['detect']:.1f} "
        f"align {stages['align']:.1f} embed {stages['embed']:.1f}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
