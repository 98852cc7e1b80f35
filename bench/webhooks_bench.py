#!/usr/bin/env python3
"""Webhook delivery under load (issue 14), against a running control plane and the real receiver
(deploy/webhook-receiver.py: every request verified with the Standard Webhooks reference library).

    webhooks_bench.py BASE TOKEN RESULT_JSON --python VENV_PYTHON [--n 1000] [--outage 60]

Setup through the API: a webhook endpoint for `consent.withdrawn` pointing at the receiver, and
persons with one consent each (2 x N + outage_n agreements). Each withdrawal (POST
/api/v1/agreements/{id}/withdraw) records one `consent.withdrawn` event whose ordering key is the
agreement (data.subject.id), so every withdrawal is one delivery, identified at the receiver by
its agreement.

1. Throughput: N withdrawals from 8 client threads as fast as the API takes them; measured:
   withdrawals per second, webhooks verified per second (first to last arrival), the time from
   the last withdrawal to the last arrival, and per event the time from the withdrawal's answer
   to its verified arrival (p50/p95/p99).
2. Backlog: the receiver answers 503 while N withdrawals are made, then 204: the queued
   deliveries drain (the endpoint's backoff first has to end): drain rate.
3. Outage: the receiver process is stopped for OUTAGE seconds; OUTAGE_N withdrawals are made in
   its first half; it is started again. Measured: lost (a withdrawal whose event never arrived
   verified within the wait), duplicates (an event verified more than once: at-least-once
   delivery), attempts while down (connection refused), time from the restart to the last
   arrival.

Exits non-zero when an event is lost or a request fails verification.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Api:
    def __init__(self, base, token):
        self.base, self.token = base, token

    def json(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, method=method, data=data, headers={
            "authorization": f"Bearer {self.token}", "content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            raw = r.read()
            return json.loads(raw) if raw else None


class Receiver:
    """deploy/webhook-receiver.py as a child process (stoppable), recording to a JSON lines file."""

    def __init__(self, python, out):
        self.python, self.out = python, out
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.proc = None
        self.secret = None
        self.status = 204

    def url(self):
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self):
        cmd = [self.python, os.path.join(ROOT, "deploy/webhook-receiver.py"), "--port", str(self.port),
               "--out", self.out, "--status", str(self.status)]
        if self.secret:
            cmd += ["--secret", self.secret]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening"):
            raise SystemExit(f"receiver did not start: {line!r}")

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def config(self, **change):
        if "secret" in change:
            self.secret = change["secret"]
        if "status" in change:
            self.status = change["status"]
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/_control/config", method="POST",
                                     data=json.dumps(change).encode(),
                                     headers={"content-type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()

    def records(self):
        out = []
        try:
            with open(self.out, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        out.append(json.loads(line))
        except FileNotFoundError:
            pass
        return out


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))], 1)


def summary(xs):
    return {"n": len(xs), "p50_ms": pct(xs, 50), "p95_ms": pct(xs, 95), "p99_ms": pct(xs, 99),
            "max_ms": round(max(xs), 1) if xs else None,
            "mean_ms": round(statistics.fmean(xs), 1) if xs else None}


def make_agreements(api, n, label):
    today = time.strftime("%Y-%m-%d", time.gmtime())

    def one(i):
        p = api.json("POST", "/api/v1/persons", {"name": f"Bench {label} {i}"})
        a = api.json("POST", f"/api/v1/persons/{p['id']}/agreements",
                     {"channels": ["web"], "valid_from": today, "source": "digital"})
        return a["id"]

    with ThreadPoolExecutor(8) as ex:
        return list(ex.map(one, range(n)))


def withdraw_all(api, ids, threads=8, spread_s=None):
    """Withdraws each agreement; returns {agreement: time the answer came}."""
    done = {}
    lock = threading.Lock()
    t0 = time.time()

    def one(i_aid):
        i, aid = i_aid
        if spread_s:
            wait = t0 + spread_s * i / len(ids) - time.time()
            if wait > 0:
                time.sleep(wait)
        api.json("POST", f"/api/v1/agreements/{aid}/withdraw", {"reason": "bench"})
        with lock:
            done[aid] = time.time()

    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, enumerate(ids)))
    return done


def arrivals(rx, ids):
    """{agreement: [arrival times of verified, 2xx-answered requests]} for these agreements."""
    want = set(ids)
    got = {}
    for r in rx.records():
        if not r.get("verified") or r.get("answered", 500) >= 300:
            continue
        aid = ((r.get("data") or {}).get("subject") or {}).get("id")
        if aid in want:
            got.setdefault(aid, []).append(r["at"])
    return got


def wait_all(rx, ids, timeout):
    end = time.time() + timeout
    while time.time() < end:
        got = arrivals(rx, ids)
        if len(got) == len(ids):
            return got
        time.sleep(0.2)
    return arrivals(rx, ids)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("token")
    ap.add_argument("result")
    ap.add_argument("--python", required=True, help="a python that imports standardwebhooks")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--outage", type=int, default=60)
    ap.add_argument("--outage-n", type=int, default=500)
    ap.add_argument("--wait", type=int, default=600, help="longest wait for arrivals, per phase")
    a = ap.parse_args()

    api = Api(a.base, a.token)
    tmp = tempfile.mkdtemp(prefix="webhooks-bench-")
    rx = Receiver(a.python, os.path.join(tmp, "received.jsonl"))
    rx.start()
    ep = api.json("POST", "/api/v1/webhooks", {"url": rx.url(), "description": "bench",
                                               "event_types": ["consent.withdrawn"]})
    endpoint_id = ep["endpoint"]["id"]
    rx.config(secret=ep["secret"])
    result = {"n": a.n, "outage_s": a.outage, "outage_n": a.outage_n, "client_threads": 8}
    lost_total = 0
    try:
        t = time.time()
        ids1 = make_agreements(api, a.n, "t")
        ids2 = make_agreements(api, a.n, "b")
        ids3 = make_agreements(api, a.outage_n, "o")
        result["setup_s"] = round(time.time() - t, 1)
        print(f"setup: {len(ids1) + len(ids2) + len(ids3)} consents in {result['setup_s']} s", file=sys.stderr)

        # 1. Throughput.
        t0 = time.time()
        answered = withdraw_all(api, ids1)
        t_last_withdrawal = max(answered.values())
        got = wait_all(rx, ids1, a.wait)
        firsts = {aid: min(ts) for aid, ts in got.items()}
        lat = [(firsts[aid] - answered[aid]) * 1000 for aid in firsts if aid in answered]
        first_arrival, last_arrival = min(firsts.values()), max(firsts.values())
        lost = len(ids1) - len(got)
        lost_total += lost
        result["throughput"] = {
            "withdrawals": len(ids1),
            "withdrawals_per_s": round(len(ids1) / (t_last_withdrawal - t0), 1),
            "webhooks_verified": len(got),
            "webhooks_per_s": round(len(got) / max(last_arrival - t0, 1e-9), 1),
            "last_withdrawal_to_last_arrival_ms": round((last_arrival - t_last_withdrawal) * 1000, 1),
            "withdrawal_answered_to_verified": summary(lat),
            "lost": lost,
            "duplicates": sum(len(ts) - 1 for ts in got.values()),
        }
        print("throughput:", json.dumps(result["throughput"]), file=sys.stderr)

        # 2. Backlog: 503 while the withdrawals are made, then 204.
        rx.config(status=503)
        withdraw_all(api, ids2)
        time.sleep(2)
        rx.config(status=204)
        t_ok = time.time()
        got = wait_all(rx, ids2, a.wait)
        firsts = sorted(min(ts) for ts in got.values())
        lost = len(ids2) - len(got)
        lost_total += lost
        failed = sum(1 for r in rx.records() if r.get("answered") == 503)
        result["backlog"] = {
            "queued": len(ids2),
            "answered_503": failed,
            "receiver_ok_to_first_arrival_ms": round((firsts[0] - t_ok) * 1000, 1) if firsts else None,
            "drain_per_s": round(len(firsts) / max(firsts[-1] - firsts[0], 1e-9), 1) if len(firsts) > 1 else None,
            "receiver_ok_to_all_delivered_s": round(firsts[-1] - t_ok, 2) if firsts else None,
            "lost": lost,
            "duplicates": sum(len(ts) - 1 for ts in got.values()),
        }
        print("backlog:", json.dumps(result["backlog"]), file=sys.stderr)

        # 3. The receiver down for OUTAGE seconds.
        before = len(rx.records())
        rx.stop()
        t_down = time.time()
        withdraw_all(api, ids3, spread_s=a.outage / 2)
        time.sleep(max(0.0, t_down + a.outage - time.time()))
        rx.start()
        t_up = time.time()
        got = wait_all(rx, ids3, a.wait)
        firsts = sorted(min(ts) for ts in got.values())
        lost = len(ids3) - len(got)
        lost_total += lost
        ep_now = api.json("GET", f"/api/v1/webhooks/{endpoint_id}")
        result["outage"] = {
            "down_s": round(t_up - t_down, 1),
            "withdrawals_while_down": len(ids3),
            "delivered": len(got),
            "lost": lost,
            "duplicates": sum(len(ts) - 1 for ts in got.values()),
            "restart_to_first_arrival_s": round(firsts[0] - t_up, 2) if firsts else None,
            "restart_to_all_delivered_s": round(firsts[-1] - t_up, 2) if firsts else None,
            "requests_received_after_restart": len(rx.records()) - before,
            "endpoint_after": {"enabled": ep_now["enabled"],
                               "consecutive_failures": ep_now["consecutive_failures"],
                               "deliveries": ep_now["deliveries"]},
        }
        print("outage:", json.dumps(result["outage"]), file=sys.stderr)
        # Attempts made while the receiver was down (no answer), from the delivery log.
        page = api.json("GET", f"/api/v1/webhooks/{endpoint_id}/deliveries?per_page=500")
        result["outage"]["max_attempts_of_a_delivery"] = max((d["attempts"] for d in page["items"]), default=0)
        recs = rx.records()
        result["failed_verification"] = sum(1 for r in recs if not r.get("verified"))
        result["requests_received"] = len(recs)
    finally:
        rx.stop()
    with open(a.result, "w") as f:
        json.dump(result, f, indent=2)
    if lost_total or result.get("failed_verification"):
        raise SystemExit(f"lost {lost_total}, failed verification {result.get('failed_verification')}")


if __name__ == "__main__":
    main()
