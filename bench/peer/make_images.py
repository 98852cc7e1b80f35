#!/usr/bin/env python3
"""Builds the speed-benchmark image set, deterministically, from the shared data folder.

The set (written to --out, default .cache/bench-images/, never to the repository):

- every `photos/*.jpg` of at least 0.3 MP, read in place (the deepface test photos; the two
  that duplicate a group photo byte for byte, couple.jpg and selfie-many-people.jpg, are left
  out and taken from group/ instead);
- the four `group/` photos, read in place (Solvay 1927 is a 6.5 MP greyscale PNG, 29 people);
- generated JPEGs (quality 90, 4:2:0, OpenCV/libjpeg-turbo), upscaled with INTER_CUBIC where
  needed so that the set reaches about 6 and 12 MP with group photos in it:
  solvay_6mp.jpg (re-encoded at its own size), solvay_12mp.jpg, insightface_t1_6mp.jpg,
  insightface_t1_12mp.jpg, couple_12mp.jpg.

With `--small` it builds the set of small ordinary photos instead (issue 16): every
`photos/*.jpg` of 0.3-1.2 MP, read in place, nothing generated (default --out
.cache/bench-photos/).

It writes `set.json`: a list of {name, path, width, height, megapixels, bytes, sha256, source},
in the order the benchmark processes them. Re-running it rewrites only what is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys

import cv2
import numpy as np

MIN_MP = 0.3
SMALL_MAX_MP = 1.2
DUPLICATES = {"couple.jpg", "selfie-many-people.jpg"}
GROUP = [
    "solvay_conference_1927.png",
    "insightface_t1.jpg",
    "deepface_selfie-many-people.jpg",
    "deepface_couple.jpg",
]
# (output name, source in group/, target megapixels or None for the source size)
GENERATED = [
    ("solvay_6mp.jpg", "solvay_conference_1927.png", None),
    ("solvay_12mp.jpg", "solvay_conference_1927.png", 12.0),
    ("insightface_t1_6mp.jpg", "insightface_t1.jpg", 6.0),
    ("insightface_t1_12mp.jpg", "insightface_t1.jpg", 12.0),
    ("couple_12mp.jpg", "deepface_couple.jpg", 12.0),
]
JPEG_QUALITY = 90


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def entry(name: str, path: str, source: str) -> dict:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        sys.exit(f"cannot read {path}")
    h, w = img.shape[:2]
    return {
        "name": name,
        "path": os.path.abspath(path),
        "width": w,
        "height": h,
        "megapixels": round(w * h / 1e6, 2),
        "bytes": os.path.getsize(path),
        "sha256": sha256(path),
        "source": source,
    }


def photo_key(name: str) -> tuple:
    stem = os.path.splitext(name)[0]
    digits = "".join(c for c in stem if c.isdigit())
    return (int(digits) if digits else 0, stem)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data", help="the shared data folder")
    ap.add_argument("--out", help="output folder (git-ignored; default .cache/bench-images, "
                    "with --small .cache/bench-photos)")
    ap.add_argument("--small", action="store_true",
                    help=f"only photos/*.jpg of {MIN_MP}-{SMALL_MAX_MP} MP (small ordinary photos)")
    args = ap.parse_args()
    if args.out is None:
        args.out = ".cache/bench-photos" if args.small else ".cache/bench-images"

    os.makedirs(args.out, exist_ok=True)
    cv2.setNumThreads(1)  # deterministic and cheap enough
    items = []

    photos = os.path.join(args.data, "photos")
    for name in sorted(os.listdir(photos), key=photo_key):
        if not name.endswith(".jpg") or (name in DUPLICATES and not args.small):
            continue
        e = entry(name, os.path.join(photos, name), "photos")
        if e["megapixels"] >= MIN_MP and (not args.small or e["megapixels"] <= SMALL_MAX_MP):
            items.append(e)

    for name in [] if args.small else GROUP:
        items.append(entry(name, os.path.join(args.data, "group", name), "group"))

    for out_name, src_name, target_mp in [] if args.small else GENERATED:
        out = os.path.join(args.out, out_name)
        if not os.path.isfile(out):
            src = cv2.imread(os.path.join(args.data, "group", src_name), cv2.IMREAD_COLOR)
            if src is None:
                sys.exit(f"cannot read group/{src_name}")
            h, w = src.shape[:2]
            if target_mp is not None:
                f = math.sqrt(target_mp * 1e6 / (w * h))
                size = (int(round(w * f)), int(round(h * f)))
                src = cv2.resize(src, size, interpolation=cv2.INTER_CUBIC)
            ok, buf = cv2.imencode(
                ".jpg",
                src,
                [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                 cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420],
            )
            if not ok:
                sys.exit(f"cannot encode {out_name}")
            tmp = out + ".part"
            np.asarray(buf).tofile(tmp)
            os.replace(tmp, out)
        items.append(entry(out_name, out, f"generated from group/{src_name}"))

    with open(os.path.join(args.out, "set.json.part"), "w") as f:
        json.dump(items, f, indent=1)
    os.replace(os.path.join(args.out, "set.json.part"), os.path.join(args.out, "set.json"))
    mp = [e["megapixels"] for e in items]
    print(
        f"{len(items)} images, {min(mp)}-{max(mp)} MP, {sum(mp):.1f} MP in all -> "
        f"{os.path.join(args.out, 'set.json')}"
    )


if __name__ == "__main__":
    main()
