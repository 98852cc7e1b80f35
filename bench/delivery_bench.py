#!/usr/bin/env python3
"""The delivery endpoint vs nginx (driven by bench/delivery.sh).

Uploads photos to a running Likeness, makes them allowed (legal basis legitimate_interest), waits
until their delivery URLs serve, fetches each rendition once through Likeness and writes the same
bytes under the nginx root at the same path, starts nginx, then runs wrk against both in turn
(alternating which goes first) over the same URL list. Writes a JSON result.

Usage: delivery_bench.py BASE TOKEN TENANT WWW_ROOT NGINX_BASE OUT [options]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

LUA = r"""
local paths = {}
for line in io.lines(os.getenv("DELIVERY_PATHS")) do paths[#paths + 1] = line end
local i = 0
function setup(thread)
  thread:set("offset", math.random(#paths))
end
function init(args)
  i = tonumber(offset) or 0
end
function request()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
"""


def call(base, token, method, path, body=None, ctype="application/json"):
    data = None
    headers = {"authorization": f"Bearer {token}"}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["content-type"] = ctype
    req = urllib.request.Request(base + path, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def to_ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    if not m:
        return None
    n, u = float(m.group(1)), m.group(2)
    return {"us": n / 1000, "ms": n, "s": n * 1000, "m": n * 60000}[u]


def run_wrk(url, paths_file, args):
    env = dict(os.environ, DELIVERY_PATHS=paths_file)
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", args.duration,
           "--latency", "-s", args.lua, url]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    out = p.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:(.*)", out)
    reqs = re.search(r"(\d+) requests in", out)
    transfer = re.search(r"Transfer/sec:\s+(\S+)", out)
    if not rps:
        print(out, p.stderr, file=sys.stderr)
        raise SystemExit("wrk gave no result")
    return {
        "rps": float(rps.group(1)),
        "requests": int(reqs.group(1)) if reqs else None,
        "p50_ms": to_ms(lat.get("50", "")),
        "p90_ms": to_ms(lat.get("90", "")),
        "p99_ms": to_ms(lat.get("99", "")),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else None,
        "transfer_per_sec": transfer.group(1) if transfer else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("token")
    ap.add_argument("tenant")
    ap.add_argument("www")
    ap.add_argument("nginx_base")
    ap.add_argument("out")
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--renditions", default="thumb.jpg small.webp medium.jpg")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--duration", default="15s")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--nginx-cmd", required=True)
    ap.add_argument("--photos", default="../shared/data/photos")
    ap.add_argument("--channel", default="web")
    args = ap.parse_args()

    photos = sorted(f for f in os.listdir(args.photos) if f.lower().endswith((".jpg", ".jpeg", ".png")))
    photos = photos[: args.files]
    if not photos:
        raise SystemExit(f"no photos in {args.photos}")
    names = args.renditions.split()

    # Upload, allow, wait until served.
    t0 = time.time()
    assets = []
    for f in photos:
        with open(os.path.join(args.photos, f), "rb") as fh:
            data = fh.read()
        st, body, _ = call(args.base, args.token, "POST", f"/api/v1/assets?filename={f}", data,
                           "application/octet-stream")
        if st != 201:
            raise SystemExit(f"upload {f}: {st} {body[:300]!r}")
        a = json.loads(body)["asset"]["id"]
        st, body, _ = call(args.base, args.token, "PUT", f"/api/v1/assets/{a}/legal-basis",
                           {"legal_basis": "legitimate_interest"})
        if st != 200:
            raise SystemExit(f"legal basis {a}: {st} {body[:300]!r}")
        assets.append(a)
    urls = {}
    deadline = time.time() + 30
    for a in assets:
        while True:
            st, body, _ = call(args.base, args.token, "GET", f"/api/v1/assets/{a}/delivery")
            d = json.loads(body)
            ch = next(c for c in d["channels"] if c["channel"] == args.channel)
            if ch["served"]:
                urls[a] = {r["name"]: r["url"] for r in ch["renditions"]}
                break
            if time.time() > deadline:
                raise SystemExit(f"{a} not served on {args.channel}: {d}")
            time.sleep(0.1)
    setup_s = time.time() - t0

    # One request each through Likeness (generates, stores, keeps in memory); the same bytes
    # for nginx at the same path.
    t0 = time.time()
    paths = []
    total_bytes = 0
    for a in assets:
        for n in names:
            path = f"/d/{args.tenant}/{a}/{args.channel}/{n}"
            st, body, headers = call(args.base, args.token, "GET", path)
            if st != 200:
                raise SystemExit(f"{path}: {st} {body[:300]!r}")
            dest = os.path.join(args.www, path.lstrip("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "wb") as fh:
                fh.write(body)
            paths.append(path)
            total_bytes += len(body)
    generate_s = time.time() - t0
    paths_file = os.path.join(os.path.dirname(args.out) or ".", "paths.txt")
    with open(paths_file, "w") as fh:
        fh.write("\n".join(paths) + "\n")
    args.lua = os.path.join(os.path.dirname(args.out) or ".", "paths.lua")
    with open(args.lua, "w") as fh:
        fh.write(LUA)

    subprocess.run(args.nginx_cmd, shell=True, check=True)
    for _ in range(50):
        try:
            with urllib.request.urlopen(args.nginx_base + paths[0], timeout=5) as r:
                same = r.read() == open(os.path.join(args.www, paths[0].lstrip("/")), "rb").read()
                if not same:
                    raise SystemExit("nginx serves other bytes")
                break
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    # Check: a hidden-file request through Likeness answers 451 (the check is really on).
    st, _, _ = call(args.base, args.token, "PUT", f"/api/v1/assets/{assets[-1]}/legal-basis",
                    {"legal_basis": None})
    deadline = time.time() + 10
    hidden = f"/d/{args.tenant}/{assets[-1]}/{args.channel}/{names[0]}"
    while True:
        st451, _, _ = call(args.base, args.token, "GET", hidden)
        if st451 == 451 or time.time() > deadline:
            break
        time.sleep(0.05)
    # The hidden file's paths leave the list (nginx would serve them; Likeness answers 451).
    paths = [p for p in paths if f"/{assets[-1]}/" not in p]
    with open(paths_file, "w") as fh:
        fh.write("\n".join(paths) + "\n")

    rounds = []
    for i in range(args.passes):
        order = ["nginx", "likeness"] if i % 2 == 0 else ["likeness", "nginx"]
        for who in order:
            url = args.nginx_base if who == "nginx" else args.base
            r = run_wrk(url, paths_file, args)
            r.update({"server": who, "round": i + 1})
            print(f"round {i + 1} {who}: {r['rps']:.0f} req/s, p50 {r['p50_ms']} ms, "
                  f"p99 {r['p99_ms']} ms, non-2xx {r['non_2xx']}", file=sys.stderr)
            rounds.append(r)

    def med(who, key):
        return statistics.median(r[key] for r in rounds if r["server"] == who)

    summary = {w: {k: med(w, k) for k in ("rps", "p50_ms", "p99_ms")} for w in ("likeness", "nginx")}
    ratio = summary["likeness"]["rps"] / summary["nginx"]["rps"]
    res = {
        "files": len(assets),
        "renditions": names,
        "urls": len(paths),
        "bytes_of_renditions": total_bytes,
        "mean_bytes_per_url": round(total_bytes / max(1, len(assets) * len(names))),
        "wrk": {"threads": args.threads, "connections": args.connections, "duration": args.duration,
                "passes": args.passes, "keep_alive": True, "urls": "round-robin over the list"},
        "setup_seconds": round(setup_s, 2),
        "first_requests_seconds": round(generate_s, 2),
        "compliance_check": {"on": True, "hidden_file_status": st451},
        "median": summary,
        "likeness_over_nginx_rps": round(ratio, 3),
        "target": ">= 0.5",
        "rounds": rounds,
    }
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=2)
    print(f"likeness {summary['likeness']['rps']:.0f} req/s (p99 {summary['likeness']['p99_ms']} ms), "
          f"nginx {summary['nginx']['rps']:.0f} req/s (p99 {summary['nginx']['p99_ms']} ms): "
          f"{ratio:.2f}x", file=sys.stderr)
    if any(r["non_2xx"] for r in rounds):
        raise SystemExit("some answers were not 2xx")


if __name__ == "__main__":
    main()
