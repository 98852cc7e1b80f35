#!/usr/bin/env python3
"""The client of bench/console_pages.sh: logs in, checks that the seeded rows read back through the
REST API, then times the console pages.

    bench/console_pages.py BASE TENANT EMAIL PASSWORD TARGETS.json BACKEND OUT.json

Each page is requested WARMUP times (default 20), then N times (default 200) one after the other
on one keep-alive connection (http.client, loopback). The time of a request is from sending it to
having read the whole body. Reported per page: status codes, p50 / p95 / max in ms, body size,
and the server's own figures when it sends a `Server-Timing` header. A page that answers 404
(not built yet) is reported as such after one request and not timed; any 5xx fails the run (exit
1) after the table is printed.
"""

import http.client
import json
import math
import os
import re
import sys
import time
import urllib.parse

N = 200
WARMUP = 20


def pct(sorted_ms, p):
    """Nearest-rank percentile of a sorted list."""
    if not sorted_ms:
        return None
    k = max(0, min(len(sorted_ms) - 1, math.ceil(p / 100.0 * len(sorted_ms)) - 1))
    return sorted_ms[k]


class Client:
    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.cookie = None

    def request(self, method, path, body=None, headers=None):
        h = {"accept": "text/html,application/json"}
        if self.cookie:
            h["cookie"] = self.cookie
        h.update(headers or {})
        for attempt in range(2):
            try:
                t0 = time.perf_counter()
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                ms = (time.perf_counter() - t0) * 1000.0
                return r, data, ms
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if attempt:
                    raise
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        raise RuntimeError("unreachable")

    def login(self, tenant, email, password):
        body = json.dumps({"tenant": tenant, "email": email, "password": password})
        r, data, _ = self.request("POST", "/api/v1/auth/login", body,
                                  {"content-type": "application/json"})
        if r.status != 200:
            sys.exit(f"console_pages.py: login answered {r.status}: {data[:300]!r}")
        cookie = r.getheader("set-cookie") or ""
        self.cookie = cookie.split(";", 1)[0]
        if not self.cookie.startswith("lk_session="):
            sys.exit(f"console_pages.py: login set no lk_session cookie: {cookie!r}")


def check_api(c, t):
    """The seeded rows must read back through the services (bad JSON or enums answer 500)."""
    f, p = t["file_with_faces"], t["person_with_faces"]
    paths = [
        f"/api/v1/assets/{f}", f"/api/v1/assets/{f}/faces", f"/api/v1/assets/{f}/compliance",
        f"/api/v1/assets/{f}/versions", f"/api/v1/assets/{f}/duplicates",
        f"/api/v1/assets/{f}/legal-basis", "/api/v1/assets?per_page=100",
        f"/api/v1/persons?q={urllib.parse.quote(t['person_search'])}", f"/api/v1/persons/{p}",
        f"/api/v1/persons/{p}/agreements", f"/api/v1/persons/{p}/compliance",
        "/api/v1/compliance/assets?limit=100", "/api/v1/compliance/persons?limit=100",
        "/api/v1/jobs?status=failed", "/api/v1/jobs/stats", "/api/v1/settings",
        "/api/v1/users", "/api/v1/audit?limit=50",
    ]
    bad = []
    for path in paths:
        r, data, ms = c.request("GET", path, headers={"accept": "application/json"})
        if r.status != 200:
            bad.append(f"{path}: {r.status} {data[:300]!r}")
        else:
            print(f"  api check {r.status} {ms:7.1f} ms  {path}", file=sys.stderr)
    faces = c.request("GET", f"/api/v1/assets/{f}/faces", headers={"accept": "application/json"})
    if faces[0].status == 200:
        statuses = sorted(x["status"] for x in json.loads(faces[1]))
        print(f"  file {f}: faces {statuses}", file=sys.stderr)
    if bad:
        sys.exit("console_pages.py: the seeded data does not read back through the API:\n  "
                 + "\n  ".join(bad))


def parse_server_timing(v):
    """`name;dur=12.3, other;dur=4` -> {name: 12.3, ...}."""
    out = {}
    for part in (v or "").split(","):
        bits = [b.strip() for b in part.split(";")]
        if not bits[0]:
            continue
        for b in bits[1:]:
            m = re.match(r"dur=([0-9.]+)", b)
            if m:
                out[bits[0]] = float(m.group(1))
    return out


def time_page(c, name, path, n, warmup):
    row = {"page": name, "path": path, "n": 0, "statuses": {}}
    r, data, ms = c.request("GET", path)
    row["first_status"] = r.status
    row["first_ms"] = round(ms, 1)
    if r.status == 404:
        row["note"] = "404: page not there yet"
        row["statuses"] = {"404": 1}
        return row
    if r.status >= 500:
        row["statuses"] = {str(r.status): 1}
        row["error"] = data[:500].decode("utf-8", "replace")
        return row
    for _ in range(warmup - 1):
        c.request("GET", path)
    times, st = [], {}
    statuses = {}
    size = len(data)
    t_run = time.perf_counter()
    for _ in range(n):
        r, data, ms = c.request("GET", path)
        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
        if r.status >= 500 and "error" not in row:
            row["error"] = data[:500].decode("utf-8", "replace")
        times.append(ms)
        size = len(data)
        for k, v in parse_server_timing(r.getheader("server-timing")).items():
            st.setdefault(k, []).append(v)
    times.sort()
    row.update({
        "n": n, "statuses": statuses, "bytes": size,
        "p50_ms": round(pct(times, 50), 2), "p95_ms": round(pct(times, 95), 2),
        "max_ms": round(times[-1], 2), "mean_ms": round(sum(times) / len(times), 2),
        "run_seconds": round(time.perf_counter() - t_run, 1),
    })
    if st:
        row["server_timing"] = {
            k: {"p50": round(pct(sorted(v), 50), 2), "p95": round(pct(sorted(v), 95), 2),
                "max": round(max(v), 2)} for k, v in st.items()}
    return row


def main():
    global N, WARMUP
    base, tenant, email, password, targets_path, backend, out_path = sys.argv[1:8]
    N = int(os.environ.get("N", N))
    WARMUP = max(1, int(os.environ.get("WARMUP", WARMUP)))
    with open(targets_path, encoding="utf-8") as f:
        t = json.load(f)
    c = Client(base)
    c.login(tenant, email, password)
    check_api(c, t)

    q = urllib.parse.quote
    # Paths may name {keys} of the targets file; PERSONS_DEEP, REVIEW_DEEP and FILES_DEEP in the
    # environment replace the deep pages' paths (e.g. FILES_DEEP='/admin/files?page=1800');
    # PAGES=overview,review times only the pages whose names contain one of those words.
    pages = [
        ("overview", "/admin", None),
        ("persons, first page", "/admin/persons", None),
        ("persons, deep page", "/admin/persons?after={persons_deep_after_name}", "PERSONS_DEEP"),
        ("persons, search", "/admin/persons?q={person_search}", None),
        ("persons, no consent", "/admin/persons?show=no_consent", None),
        ("persons, expiring", "/admin/persons?show=expiring", None),
        ("person, typical", "/admin/persons/{person_typical}", None),
        ("person with most faces", "/admin/persons/{person_with_faces}", None),
        ("file with faces", "/admin/files/{file_with_faces}", None),
        ("file, near duplicates", "/admin/files/{file_with_faces}?near=1", None),
        ("review queue", "/admin/review", None),
        ("review queue, deep page", "/admin/review?after={review_deep_cursor}", "REVIEW_DEEP"),
        ("files, first page", "/admin/files", None),
        ("files, deep page", "/admin/files?after={files_deep_after_id_desc}", "FILES_DEEP"),
        ("files, missing consent", "/admin/files?status=missing_consent", None),
    ]
    only = [x for x in os.environ.get("PAGES", "").split(",") if x]
    fill = {k: q(str(v), safe="") for k, v in t.items() if not isinstance(v, (dict, list))}
    resolved = []
    for name, path, env in pages:
        if only and not any(o in name for o in only):
            continue
        path = os.environ.get(env, path) if env else path
        resolved.append((name, path.format(**fill)))
    pages = resolved
    rows = []
    for name, path in pages:
        row = time_page(c, name, path, N, WARMUP)
        with open("/proc/loadavg", encoding="ascii") as f:
            row["loadavg_after"] = " ".join(f.read().split()[:3])
        rows.append(row)
        print(f"  {backend}: {name}: {row.get('statuses')} p95 {row.get('p95_ms')} ms",
              file=sys.stderr)
    result = {"backend": backend, "n": N, "warmup": WARMUP, "pages": rows}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"\n{backend}: {N} sequential requests per page after {WARMUP} warm-up, keep-alive, "
          "loopback; ms from request to last byte")
    print("| page | path | status | p50 ms | p95 ms | max ms | first (cold) ms | bytes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["n"] == 0:
            print(f"| {r['page']} | `{r['path']}` | {r.get('note') or r['statuses']} | – | – | – | – | – |")
        else:
            st = ", ".join(f"{k}×{v}" for k, v in sorted(r["statuses"].items()))
            print(f"| {r['page']} | `{r['path']}` | {st} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} "
                  f"| {r['max_ms']:.1f} | {r['first_ms']:.0f} | {r['bytes']} |")
        if "server_timing" in r:
            print(f"|   Server-Timing | | | "
                  + " ".join(f"{k} {v['p50']}/{v['p95']}/{v['max']}"
                             for k, v in r["server_timing"].items()) + " | | | | |")
    errors = [r for r in rows if any(int(s) >= 500 for s in r["statuses"])]
    for r in errors:
        print(f"console_pages.py: {backend}: {r['page']} ({r['path']}) answered "
              f"{r['statuses']}: {r.get('error', '')[:500]}", file=sys.stderr)
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
