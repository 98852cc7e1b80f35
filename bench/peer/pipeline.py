#!/usr/bin/env python3
"""Reference Python face pipeline: the same stages, models and parameters as the Rust
pipeline in models/src (pipeline.rs, detect.rs, align.rs), written the way a competent
Python engineer would write it with onnxruntime + numpy + OpenCV.

decode (cv2.imdecode, IMREAD_COLOR: BGR, EXIF orientation applied; optionally on a second
thread that decodes ahead, as the Rust matcher's decode thread) -> views (ported from
detect::plan_views: the whole image scaled to a long side of 640 and, for photos whose long
side capped at 1920 exceeds 960, the whole image scaled to a long side of at most 1920; each
padded at the right and bottom to multiples of 32) -> cv2.resize INTER_LINEAR (the detail
image is resized once from the photo, the 640 view from the detail image) -> YuNet-s dynamic,
one view per call -> vectorised output decoding (score = sqrt(cls*obj) >= 0.7) -> map back
-> greedy NMS (IoU 0.3 + containment) -> closed-form least-squares similarity (Umeyama, 2-D)
-> cv2.warpAffine bilinear, zero border -> Laplacian variance sharpness -> MobileFaceNet, up to
64 faces per call -> L2 normalisation.

Used by `cargo run --release -p likeness-bench --bin speed` (see bench/speed.sh); run alone:

    python bench/peer/pipeline.py --set .cache/bench-images/set.json --reps 1 --json-out r.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import sys
import threading
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


def round32(x: int) -> int:
    return -(-x // 32) * 32


class View:
    """detect::View (dynamic plan): input pixel (u, v) shows image pixel (u/scale, v/scale);
    content cw x ch at the top-left of an iw x ih input (zero padding)."""

    __slots__ = ("scale", "cw", "ch", "iw", "ih")

    def __init__(self, scale, cw, ch):
        self.scale = scale
        self.cw, self.ch = cw, ch
        self.iw, self.ih = round32(cw), round32(ch)


def plan_views(w: int, h: int, p=Params):
    """A port of detect::plan_views (and DetectParams::detail_scale), in f32 arithmetic like
    the Rust code: [whole view] or [whole view, detail view]."""
    side = F32(p.input_size)
    long = F32(max(w, h))
    scale = side / long
    cw = min(max(round_half_away(F32(w) * scale), 1), p.input_size)
    ch = min(max(round_half_away(F32(h) * scale), 1), p.input_size)
    views = [View(scale, cw, ch)]
    if p.tile_max_side == 0:
        return views
    detail_long = min(long, F32(p.tile_max_side))
    if detail_long <= side * F32(p.tile_min_factor):
        return views
    ds = detail_long / long
    views.append(
        View(ds, max(round_half_away(F32(w) * ds), 1), max(round_half_away(F32(h) * ds), 1))
    )
    return views


class Peer:
    def __init__(
        self, models_dir: str, threads: int, interp: int, opt_level: str, spinning: bool = False
    ):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # As the Rust side (runtime::open_session): idle intra-op threads sleep, not spin.
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
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
        # Grid of every level per input size: (col, row) per cell.
        self.grids = {}
        # Detector input, reused (grown when a larger view comes).
        self.input = np.zeros(0, dtype=F32)

    # -- decode ----------------------------------------------------------------------------

    @staticmethod
    def decode(data: bytes) -> np.ndarray:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("cannot decode image")
        return img

    # -- detect ----------------------------------------------------------------------------

    def grid(self, s, iw, ih):
        key = (s, iw, ih)
        g = self.grids.get(key)
        if g is None:
            cols = iw // s
            idx = np.arange(cols * (ih // s))
            g = self.grids[key] = (F32(idx % cols), F32(idx // cols))
        return g

    def detect(self, images, detail=None):
        """Per image: (boxes [k,4], landmarks [k,5,2], scores [k]) after NMS. `detail`, if
        given, accumulates seconds spent in view preparation, inference and post-processing."""
        p = Params
        t_start = time.perf_counter()
        t_infer = 0.0
        t_prep = 0.0
        n_views = 0
        n_px = 0
        out = []
        for img in images:
            h, w = img.shape[:2]
            t0 = time.perf_counter()
            views = plan_views(w, h)
            found = []
            src = img
            if len(views) == 2:
                d = views[1]
                # The detail image, resized once (the photo itself at scale 1); the whole view
                # is resampled from it.
                if (d.cw, d.ch) != (w, h):
                    src = cv2.resize(img, (d.cw, d.ch), interpolation=self.interp)
            t_prep += time.perf_counter() - t0
            for v in views:
                t0 = time.perf_counter()
                pix = src if (v.cw, v.ch) == src.shape[1::-1] else cv2.resize(
                    src, (v.cw, v.ch), interpolation=self.interp
                )
                size = 3 * v.ih * v.iw
                if self.input.size < size:
                    self.input = np.zeros(size, dtype=F32)
                buf = self.input[:size].reshape(1, 3, v.ih, v.iw)
                # YuNet: BGR planar, raw 0..255; zero padding right and bottom.
                buf[0, :, : v.ch, : v.cw] = pix.transpose(2, 0, 1)
                buf[0, :, : v.ch, v.cw :] = 0
                buf[0, :, v.ch :, :] = 0
                t1 = time.perf_counter()
                outs = self.det.run(self.det_out, {self.det_in: buf})
                t2 = time.perf_counter()
                t_prep += t1 - t0
                t_infer += t2 - t1
                n_views += 1
                n_px += v.iw * v.ih
                dets = self.decode_yunet(outs, v.iw, v.ih, p.score_threshold)
                dets = map_to_image(dets, v, w, h)
                if dets[0].shape[0]:
                    found.append(dets)
            if not found:
                out.append(
                    (np.zeros((0, 4), F32), np.zeros((0, 5, 2), F32), np.zeros((0,), F32))
                )
                continue
            boxes = np.concatenate([d[0] for d in found])
            lms = np.concatenate([d[1] for d in found])
            scores = np.concatenate([d[2] for d in found])
            keep = nms(boxes, scores, p.nms_iou, p.max_faces)
            out.append((boxes[keep], lms[keep], scores[keep]))
        if detail is not None:
            total = time.perf_counter() - t_start
            detail["detect_views"] += n_views
            detail["detect_input_mpix"] += n_px / 1e6
            detail["detect_prep"] += t_prep
            detail["detect_infer"] += t_infer
            detail["detect_post"] += total - t_prep - t_infer
        return out

    def decode_yunet(self, outs, iw, ih, threshold):
        """Vectorised decode_yunet of one view: (boxes, lms, scores) in input pixels."""
        parts = []
        for li, s in enumerate(STRIDES):
            cls, obj, bbox, kps = outs[li][0], outs[3 + li][0], outs[6 + li][0], outs[9 + li][0]
            score = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
            (c_idx,) = np.nonzero(score >= threshold)
            if c_idx.size == 0:
                continue
            gc, gr = self.grid(s, iw, ih)
            col = gc[c_idx]
            row = gr[c_idx]
            bb = bbox[c_idx]
            kp = kps[c_idx].reshape(-1, 5, 2)
            sf = F32(s)
            cx = (col + bb[:, 0]) * sf
            cy = (row + bb[:, 1]) * sf
            w = np.exp(bb[:, 2]) * sf
            h = np.exp(bb[:, 3]) * sf
            boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
            lms = np.empty_like(kp)
            lms[:, :, 0] = (col[:, None] + kp[:, :, 0]) * sf
            lms[:, :, 1] = (row[:, None] + kp[:, :, 1]) * sf
            parts.append((boxes, lms, score[c_idx]))
        if not parts:
            return (np.zeros((0, 4), F32), np.zeros((0, 5, 2), F32), np.zeros((0,), F32))
        return tuple(np.concatenate(x) for x in zip(*parts))

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
    """detect::map_to_image for one view of the dynamic plan (no tiles, so nothing is cut)."""
    boxes, lms, scores = dets
    if boxes.shape[0] == 0:
        return dets
    inv = F32(1.0) / v.scale
    boxes = boxes * inv
    np.clip(boxes[:, 0::2], 0, F32(img_w), out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, F32(img_h), out=boxes[:, 1::2])
    lms = lms * inv
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


def decode_ahead(peer: Peer, blobs, depth: int):
    """Decoded images in order, decoded by a second thread up to `depth` ahead (cv2.imdecode
    releases the GIL); an exception is re-raised on the consuming side."""
    q = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work():
        for b in blobs:
            if stop.is_set():
                return
            try:
                item = (peer.decode(b), None)
            except Exception as e:  # handed to the consumer
                item = (None, e)
            q.put(item)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        for _ in blobs:
            img, err = q.get()
            if err is not None:
                raise err
            yield img
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.01)


def one_pass(peer: Peer, blobs, batch: int, keep_results: bool, prefetch: bool = False) -> dict:
    """Processes every image once, `batch` images per detect/align/embed round (with
    `prefetch`, a second thread decodes ahead and the decode stage is the time spent waiting
    for it); wall time, faces, per-stage seconds and (if asked) per-image faces."""
    results = [] if keep_results else None
    stages = {"decode": 0.0, "detect": 0.0, "align": 0.0, "embed": 0.0}
    detail = {"detect_views": 0, "detect_input_mpix": 0.0, "detect_prep": 0.0, "detect_infer": 0.0, "detect_post": 0.0}
    faces = 0
    start_wall = time.perf_counter()
    ahead = decode_ahead(peer, blobs, 2 * batch) if prefetch else None
    for start in range(0, len(blobs), batch):
        t0 = time.perf_counter()
        chunk = blobs[start : start + batch]
        if ahead is not None:
            imgs = [next(ahead) for _ in chunk]
        else:
            imgs = [peer.decode(b) for b in chunk]
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
    -> {"cmd": "pass", "batch": 1, "prefetch": false, "detections": false}
    <- one_pass() result
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
            res = one_pass(
                peer,
                blobs,
                int(cmd.get("batch", 1)),
                bool(cmd.get("detections")),
                bool(cmd.get("prefetch")),
            )
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
        "--prefetch", action="store_true", help="decode on a second thread, ahead"
    )
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
    ap.add_argument(
        "--spinning",
        action="store_true",
        help="let idle ONNX Runtime intra-op threads spin (its default; the Rust side and "
        "this peer's default: no)",
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
    peer = Peer(args.models_dir, args.threads, interp, args.opt_level, args.spinning)
    if args.serve:
        serve(peer, blobs)
        return

    for _ in range(args.warmup):
        one_pass(peer, blobs, args.batch, False, args.prefetch)
    passes = [
        one_pass(peer, blobs, args.batch, args.detections and r == 0, args.prefetch)
        for r in range(args.reps)
    ]
    wall = sum(p["wall_s"] for p in passes)
    images = sum(p["images"] for p in passes)
    faces = sum(p["faces"] for p in passes)
    stages = {k: sum(p["stages_s"][k] for p in passes) * 1e3 / images for k in passes[0]["stages_s"]}
    summary = {
        "impl": "python",
        "versions": versions(),
        "threads": args.threads,
        "batch": args.batch,
        "prefetch": args.prefetch,
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
