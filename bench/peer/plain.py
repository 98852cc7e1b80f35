#!/usr/bin/env python3
"""The "plain" Python face pipeline: what a competent user writes around onnxruntime and
OpenCV, without porting Likeness's detection plan (issue 16's peer).

Per image, one at a time: cv2.imdecode (IMREAD_COLOR, full size) -> one YuNet-s pass with the
long side resized to 640 (cv2.resize INTER_LINEAR, padded right/bottom to a multiple of 32)
-> YuNet outputs decoded (score = sqrt(cls * obj)) -> cv2.dnn.NMSBoxes -> each face aligned
onto the ArcFace 112x112 template (least-squares similarity, Umeyama) with cv2.warpAffine ->
MobileFaceNet, all the faces of the image in one call -> L2 normalisation. onnxruntime
sessions with intra_op_num_threads (default 2) and everything else left at its default
(graph optimisation ORT_ENABLE_ALL, spinning intra-op threads); cv2.setNumThreads likewise.
`--prefetch` (or the protocol's "prefetch") decodes the next images on a second thread.

Model paths are arguments: fp32 files by default, `--detector/--embedder` for others (the
8-bit models). Used by `target/release/speed` through the line protocol of pipeline.py
(`--serve`); run alone:

    python bench/peer/plain.py --set .cache/bench-images/set.json --reps 1
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time

import cv2
import numpy as np
import onnxruntime as ort

TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
     [70.7299, 92.2041]],
    dtype=np.float64,
)
STRIDES = (8, 16, 32)


class Plain:
    def __init__(self, detector, embedder, threads, score=0.7, nms=0.3, spinning=True):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        if not spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.det = ort.InferenceSession(detector, so, providers=["CPUExecutionProvider"])
        self.emb = ort.InferenceSession(embedder, so, providers=["CPUExecutionProvider"])
        self.det_in = self.det.get_inputs()[0].name
        self.det_out = [f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in STRIDES]
        self.emb_in = self.emb.get_inputs()[0].name
        self.score, self.nms = score, nms

    @staticmethod
    def decode(data):
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("cannot decode image")
        return img

    def detect(self, img):
        """Boxes [k,4] (x1,y1,x2,y2), landmarks [k,5,2], scores [k], in image pixels."""
        h, w = img.shape[:2]
        scale = 640 / max(w, h)
        rw, rh = max(round(w * scale), 1), max(round(h * scale), 1)
        small = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR)
        pw, ph = -(-rw // 32) * 32, -(-rh // 32) * 32
        small = cv2.copyMakeBorder(small, 0, ph - rh, 0, pw - rw, cv2.BORDER_CONSTANT, value=0)
        blob = cv2.dnn.blobFromImage(small)  # BGR, 0..255, NCHW float32
        outs = self.det.run(self.det_out, {self.det_in: blob})
        boxes, lms, scores = [], [], []
        for i, s in enumerate(STRIDES):
            cls, obj, bbox, kps = (outs[i][0], outs[3 + i][0], outs[6 + i][0], outs[9 + i][0])
            sc = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
            idx = np.nonzero(sc >= self.score)[0]
            cols = pw // s
            cx = (idx % cols + bbox[idx, 0]) * s
            cy = (idx // cols + bbox[idx, 1]) * s
            bw, bh = np.exp(bbox[idx, 2]) * s, np.exp(bbox[idx, 3]) * s
            boxes.append(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1))
            k = kps[idx].reshape(-1, 5, 2)
            lms.append(np.stack([(idx[:, None] % cols + k[..., 0]) * s,
                                 (idx[:, None] // cols + k[..., 1]) * s], -1))
            scores.append(sc[idx])
        boxes = np.concatenate(boxes) / scale
        lms = np.concatenate(lms) / scale
        scores = np.concatenate(scores)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
        keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.score, self.nms)
        keep = np.array(keep, dtype=np.int64).reshape(-1)
        return boxes[keep], lms[keep], scores[keep]

    @staticmethod
    def align(img, lms):
        """The 112x112 crop of each face (BGR)."""
        return [cv2.warpAffine(img, umeyama(p), (112, 112), flags=cv2.INTER_LINEAR) for p in lms]

    def embed(self, crops):
        """L2-normalised embeddings [k,128] of the aligned crops, in one call."""
        if not crops:
            return np.zeros((0, 128), np.float32)
        blob = cv2.dnn.blobFromImages(crops, 1 / 127.5, (112, 112), (127.5, 127.5, 127.5),
                                      swapRB=True)
        e = self.emb.run(None, {self.emb_in: blob})[0]
        return e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-12)


def umeyama(src):
    """2x3 least-squares similarity (no reflection) mapping the 5 landmarks onto TEMPLATE."""
    src = np.asarray(src, np.float64)
    ms, md = src.mean(0), TEMPLATE.mean(0)
    s, d = src - ms, TEMPLATE - md
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    r = u @ sign @ vt
    c = (sig * np.diag(sign)).sum() / (s ** 2).sum(1).mean()
    return np.hstack([c * r, (md - c * r @ ms)[:, None]])


def decoded(model, blobs, prefetch):
    """(seconds waited, image) per blob; with prefetch a second thread decodes ahead."""
    if not prefetch:
        for b in blobs:
            t0 = time.perf_counter()
            img = model.decode(b)
            yield time.perf_counter() - t0, img
        return
    q = queue.Queue(maxsize=2)
    stop = threading.Event()

    def work():
        for b in blobs:
            if stop.is_set():
                return
            try:
                q.put((model.decode(b), None))
            except Exception as e:  # handed to the consumer
                q.put((None, e))

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        for _ in blobs:
            t0 = time.perf_counter()
            img, err = q.get()
            if err is not None:
                raise err
            yield time.perf_counter() - t0, img
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.01)


def one_pass(model, blobs, keep=False, prefetch=False):
    """Every image once, one at a time; the result dict of pipeline.py's one_pass."""
    stages = {"decode": 0.0, "detect": 0.0, "align": 0.0, "embed": 0.0}
    faces, per_image = 0, []
    start = time.perf_counter()
    for waited, img in decoded(model, blobs, prefetch):
        t1 = time.perf_counter()
        boxes, lms, scores = model.detect(img)
        t2 = time.perf_counter()
        crops = model.align(img, lms)
        t3 = time.perf_counter()
        emb = model.embed(crops)
        t4 = time.perf_counter()
        stages["decode"] += waited
        stages["detect"] += t2 - t1
        stages["align"] += t3 - t2
        stages["embed"] += t4 - t3
        faces += len(boxes)
        if keep:
            per_image.append({"faces": [
                {"bbox": b.tolist(), "landmarks": l.tolist(), "score": float(s),
                 "embedding": e.tolist()}
                for b, l, s, e in zip(boxes, lms, scores, emb)]})
    res = {"wall_s": time.perf_counter() - start, "images": len(blobs), "faces": faces,
           "stages_s": stages}
    if keep:
        res["per_image"] = per_image
    return res


def serve(model, blobs, info):
    """pipeline.py's line protocol: {"cmd": "pass", "prefetch": b, "detections": b} ->
    one_pass() result ("batch" is ignored: always one image at a time); {"cmd": "quit"}."""
    print(json.dumps({"ready": True, "images": len(blobs), "versions": info}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            cmd = json.loads(line)
            if cmd.get("cmd") == "quit":
                break
            if cmd.get("cmd") != "pass":
                raise ValueError(f"unknown command {line!r}")
            res = one_pass(model, blobs, bool(cmd.get("detections")), bool(cmd.get("prefetch")))
        except Exception as e:  # report, keep serving
            res = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(res), flush=True)


def main():
    models = os.environ.get("LIKENESS_MODELS_DIR", "../shared/models")
    ap = argparse.ArgumentParser(description="Plain Python face pipeline (speed peer).")
    ap.add_argument("--set", default=".cache/bench-images/set.json", help="set.json of the images")
    ap.add_argument("--detector", default=os.path.join(models, "yunet_s_dynamic.onnx"))
    ap.add_argument("--embedder", default=os.path.join(models, "mobilefacenet_128d_dynamic.onnx"))
    ap.add_argument("--threads", type=int, default=2, help="ORT intra-op and OpenCV threads")
    ap.add_argument("--score", type=float, default=0.7, help="detector score threshold")
    ap.add_argument("--nms", type=float, default=0.3, help="NMS IoU threshold")
    ap.add_argument("--no-spinning", action="store_true",
                    help="idle ORT intra-op threads sleep (ORT's default: they spin)")
    ap.add_argument("--prefetch", action="store_true", help="decode on a second thread, ahead")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--serve", action="store_true", help="line protocol on stdin/stdout")
    args = ap.parse_args()

    cv2.setNumThreads(args.threads)
    with open(args.set) as f:
        blobs = [open(it["path"], "rb").read() for it in json.load(f)]
    model = Plain(args.detector, args.embedder, args.threads, args.score, args.nms,
                  not args.no_spinning)
    info = {"python": sys.version.split()[0], "numpy": np.__version__,
            "opencv": cv2.__version__, "onnxruntime": ort.__version__,
            "detector": os.path.abspath(args.detector),
            "embedder": os.path.abspath(args.embedder), "spinning": not args.no_spinning}
    if args.serve:
        serve(model, blobs, info)
        return
    for _ in range(args.warmup):
        one_pass(model, blobs, prefetch=args.prefetch)
    for _ in range(args.reps):
        r = one_pass(model, blobs, prefetch=args.prefetch)
        ms = {k: v * 1e3 / r["images"] for k, v in r["stages_s"].items()}
        print(f"{r['images']} images, {r['faces']} faces in {r['wall_s']:.2f} s: "
              f"{r['images'] / r['wall_s']:.2f} images/s; ms/image "
              + " ".join(f"{k} {v:.1f}" for k, v in ms.items()), file=sys.stderr)


if __name__ == "__main__":
    main()
