#!/usr/bin/env python3
"""The hnswlib side of bench/ann.sh (called by `target/release/ann run`, one fresh process
per configuration so resident memory is clean).

Reads the data set that `ann` wrote (base.npy, queries.npy, gt.npy under --dir), builds an
hnswlib index (space='ip', same M / ef_construction as ours) with --threads threads and, with
--search, measures recall@10 against the exact ground truth and queries/s with 1 and 2
threads for every ef. With --exact N,... it instead measures numpy brute-force queries/s
(one query at a time: a matrix-vector product and argpartition) on the first N rows.
Prints one line `RESULT {json}` on stdout.
"""

import argparse
import json
import os
import sys
import time


def rss_kb():
    """VmRSS and VmHWM of this process in kB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0])
    return out["VmRSS"], out["VmHWM"]


def cpu_ticks():
    """utime + stime of this process in clock ticks (as the Rust side reports them)."""
    with open("/proc/self/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def recalls(found, gt, gt_sims, k, threshold):
    """Recall@k against the exact top k, and the recall of the exact neighbours with cosine
    >= threshold (the matches an Identify would report)."""
    hits = matches = match_hits = 0
    for row, truth, sims in zip(found, gt, gt_sims):
        got = set(int(x) for x in row[:k])
        for t, s in zip(truth[:k], sims[:k]):
            h = int(t) in got
            hits += h
            if s >= threshold:
                matches += 1
                match_hits += h
    return hits / (len(gt) * k), match_hits / max(matches, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--efs", default="64,128,256,512,1024")
    ap.add_argument("--threshold", type=float, default=0.45)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--search", action="store_true")
    ap.add_argument("--exact", default="")
    a = ap.parse_args()

    import numpy as np

    base = np.load(os.path.join(a.dir, "base.npy"))
    queries = np.load(os.path.join(a.dir, "queries.npy"))
    gt = np.load(os.path.join(a.dir, "gt.npy"))
    n, dim = base.shape

    if a.exact:
        out = {"impl": "numpy", "dim": dim, "exact": []}
        for size in [int(s) for s in a.exact.split(",")]:
            sub = np.ascontiguousarray(base[:size])
            nq = min(len(queries), max(200, 20_000_000 // size))
            qs = queries[:nq]
            for q in qs[:20]:
                s = sub @ q
                np.argpartition(-s, 10)[:10]
            t = time.perf_counter()
            for q in qs:
                s = sub @ q
                top = np.argpartition(-s, 10)[:10]
                top[np.argsort(-s[top])]
            dt = time.perf_counter() - t
            out["exact"].append({"n": size, "queries": nq, "qps_1t": nq / dt})
        out["cpu_ticks"] = cpu_ticks()
        print("RESULT " + json.dumps(out))
        return

    import hnswlib

    rss0, _ = rss_kb()
    index = hnswlib.Index(space="ip", dim=dim)
    t = time.perf_counter()
    index.init_index(max_elements=n, ef_construction=a.ef_construction, M=a.m, random_seed=100)
    index.set_num_threads(a.threads)
    index.add_items(base, np.arange(n), num_threads=a.threads)
    build_s = time.perf_counter() - t
    rss1, hwm1 = rss_kb()
    out = {
        "impl": "hnswlib",
        "version": getattr(hnswlib, "__version__", "0.8.0"),
        "dim": dim,
        "n": n,
        "threads": a.threads,
        "m": a.m,
        "ef_construction": a.ef_construction,
        "build_s": build_s,
        "rss_before_kb": rss0,
        "rss_after_kb": rss1,
        "hwm_kb": hwm1,
        "index_bytes": (rss1 - rss0) * 1024,
        "search": [],
    }
    if a.search:
        nq = len(queries)
        gt_sims = np.einsum("qkd,qd->qk", base[gt], queries)
        index.set_ef(a.k)
        index.knn_query(queries[:50], k=a.k, num_threads=1)
        for ef in [int(e) for e in a.efs.split(",")]:
            index.set_ef(ef)
            t = time.perf_counter()
            labels, _ = index.knn_query(queries, k=a.k, num_threads=1)
            qps1 = nq / (time.perf_counter() - t)
            rec, match_rec = recalls(labels, gt, gt_sims, a.k, a.threshold)
            row = {"ef": ef, "recall": rec, "match_recall": match_rec, "qps_1t": qps1}
            t = time.perf_counter()
            index.knn_query(queries, k=a.k, num_threads=2)
            row["qps_2t"] = nq / (time.perf_counter() - t)
            out["search"].append(row)
            print(f"  hnswlib n={n} d={dim} ef={ef}: recall {rec:.4f}, "
                  f"{row['qps_1t']:.0f} q/s 1t, {row['qps_2t']:.0f} q/s 2t", file=sys.stderr)
            if rec >= 0.995:
                break
    out["cpu_ticks"] = cpu_ticks()
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
