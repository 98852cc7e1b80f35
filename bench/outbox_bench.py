#!/usr/bin/env python3
"""The outbox under load, against a running `likeness-control serve` and a real SMTP server
(driven by bench/outbox.sh, which starts both).

Two runs, each with N fresh persons (with e-mail addresses, created through POST /api/v1/persons)
asked to sign one agreement template (POST /api/v1/consent-templates) through
POST /api/v1/signing-requests in batches: every request writes one e-mail to the outbox in its
transaction, and the job workers deliver it to the SMTP server (aiosmtpd writing a Maildir).

1. throughput: all requests sent at once; messages per second from the first request to the
   last mail in the Maildir (and the delivery-only rate, from the last request answered).
2. outage: the requests are sent in batches; once a share of the mails has arrived the SMTP
   server is stopped (bench/outbox.sh's stop command) for OUTAGE seconds while the remaining
   batches are sent, then started again. Every outbox message of the run is then looked for in the
   Maildir by its Message-ID (<id@likeness>): none may be missing, none may be there twice; the
   outbox's own status (GET /api/v1/outbox) must say sent for each, none dead.

    outbox_bench.py BASE TOKEN MAILDIR RESULT.json --stop-cmd CMD --start-cmd CMD [--n 1000]
"""

import argparse
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse


class Api:
    def __init__(self, base, token):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.token = token
        self.conn = None

    def call(self, method, path, body=None, ok=(200, 201)):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                data = json.dumps(body).encode() if body is not None else None
                headers = {"authorization": "Bearer " + self.token}
                if data is not None:
                    headers["content-type"] = "application/json"
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                if resp.status not in ok:
                    raise RuntimeError(f"{method} {path}: {resp.status} {raw[:500]!r}")
                return json.loads(raw) if raw else None
            except (http.client.HTTPException, ConnectionError, OSError):
                self.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.2)


def maildir_ids(maildir):
    """Message-ID (the outbox id) -> number of files carrying it."""
    counts = {}
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            try:
                with open(os.path.join(d, name), "rb") as f:
                    head = f.read(8192).split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
            except FileNotFoundError:
                continue
            for line in head.decode("utf-8", "replace").splitlines():
                if line.lower().startswith("message-id:"):
                    mid = line.split(":", 1)[1].strip().strip("<>").split("@", 1)[0]
                    counts[mid] = counts.get(mid, 0) + 1
                    break
    return counts


def make_persons(api, n, run):
    ids = []
    for i in range(n):
        p = api.call("POST", "/api/v1/persons",
                     {"name": f"Bench {run} {i}", "email": f"p{i}.{run}@bench.test"})
        ids.append(p["id"])
    return ids


def send_requests(api, template_id, person_ids):
    out = api.call("POST", "/api/v1/signing-requests",
                   {"person_ids": person_ids, "template_id": template_id, "channel": "email"})
    if out.get("failed"):
        raise RuntimeError(f"signing requests failed: {out['failed'][:3]}")
    return [r["id"] for r in out["created"]]


def outbox_messages(api, request_ids):
    """The run's outbox messages (related to its requests), from GET /api/v1/outbox."""
    wanted = set(request_ids)
    found, page = [], 1
    while True:
        rows = api.call("GET", f"/api/v1/outbox?per_page=500&page={page}")
        found += [m for m in rows if m.get("related_id") in wanted]
        if len(rows) < 500:
            return found
        page += 1


def wait_delivered(maildir, ids, timeout, tick=None):
    """Waits until every id is in the Maildir; returns (time of the last arrival, counts)."""
    end = time.time() + timeout
    last_n, last_change = -1, time.time()
    while True:
        counts = maildir_ids(maildir)
        n = sum(1 for i in ids if i in counts)
        if n != last_n:
            last_n, last_change = n, time.time()
        if tick:
            tick(n)
        if n >= len(ids) or time.time() > end:
            return last_change, counts
        time.sleep(0.05)


def run_throughput(api, template_id, maildir, n, batch):
    persons = make_persons(api, n, "t")
    t0 = time.time()
    req_ids = []
    for i in range(0, n, batch):
        req_ids += send_requests(api, template_id, persons[i:i + batch])
    t_enqueued = time.time()
    msgs = outbox_messages(api, req_ids)
    ids = [m["id"] for m in msgs]
    t_last, counts = wait_delivered(maildir, ids, timeout=600)
    delivered = sum(1 for i in ids if i in counts)
    dup = sum(1 for i in ids if counts.get(i, 0) > 1)
    total_s = t_last - t0
    return {
        "requests": len(req_ids),
        "messages": len(ids),
        "delivered": delivered,
        "duplicates": dup,
        "enqueue_seconds": round(t_enqueued - t0, 3),
        "requests_per_second": round(len(req_ids) / (t_enqueued - t0), 1),
        "first_request_to_last_mail_seconds": round(total_s, 3),
        "messages_per_second": round(delivered / total_s, 1) if total_s > 0 else None,
    }


def run_outage(api, template_id, maildir, n, batch, outage, stop_cmd, start_cmd, stop_after):
    persons = make_persons(api, n, "o")
    req_ids, ids = [], []
    t0 = time.time()
    stopped_at, delivered_at_stop = None, 0

    def arrived():
        counts = maildir_ids(maildir)
        return sum(1 for i in ids if i in counts)

    def stop():
        subprocess.run(stop_cmd, shell=True, check=True)
        return time.time(), arrived()

    for b in (persons[i:i + batch] for i in range(0, n, batch)):
        req_ids += send_requests(api, template_id, b)
        if stopped_at is None:
            ids = [m["id"] for m in outbox_messages(api, req_ids)]
            if len(ids) > stop_after:
                # Stop the server while mails are still flowing: once stop_after have arrived.
                end = time.time() + 120
                while arrived() < stop_after and time.time() < end:
                    time.sleep(0.01)
                stopped_at, delivered_at_stop = stop()
    if stopped_at is None:
        stopped_at, delivered_at_stop = stop()
    requests_done = time.time()
    time.sleep(max(0.0, stopped_at + outage - time.time()))
    during = outbox_messages(api, req_ids)
    ids = [m["id"] for m in during]
    pending_during = sum(1 for m in during if m["status"] == "pending")
    attempts_during = sum(m["attempts"] for m in during if m["status"] == "pending")
    subprocess.run(start_cmd, shell=True, check=True)
    started_at = time.time()
    t_last, counts = wait_delivered(maildir, ids, timeout=900)
    time.sleep(2)  # a late duplicate would show here
    counts = maildir_ids(maildir)
    msgs = outbox_messages(api, req_ids)
    status = {}
    for m in msgs:
        status[m["status"]] = status.get(m["status"], 0) + 1
    lost = [i for i in ids if i not in counts]
    twice = {i: counts[i] for i in ids if counts.get(i, 0) > 1}
    return {
        "requests": len(req_ids),
        "messages": len(ids),
        "outage_seconds": round(started_at - stopped_at, 1),
        "delivered_before_stop": delivered_at_stop,
        "requests_answered_seconds_after_stop": round(requests_done - stopped_at, 1),
        "pending_at_restart": pending_during,
        "failed_attempts_at_restart": attempts_during,
        "delivered": sum(1 for i in ids if i in counts),
        "lost": len(lost),
        "lost_ids": lost[:20],
        "sent_twice": len(twice),
        "sent_twice_ids": list(twice.items())[:20],
        "outbox_status_after": status,
        "max_attempts_seen": max((m["attempts"] for m in msgs), default=0),
        "restart_to_last_mail_seconds": round(t_last - started_at, 1),
        "first_request_to_last_mail_seconds": round(t_last - t0, 1),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("token")
    ap.add_argument("maildir")
    ap.add_argument("result")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--outage", type=float, default=30.0)
    ap.add_argument("--stop-after", type=int, default=250,
                    help="stop the SMTP server once this many of the run's mails arrived")
    ap.add_argument("--stop-cmd", required=True)
    ap.add_argument("--start-cmd", required=True)
    ap.add_argument("--runs", default="throughput,outage")
    args = ap.parse_args()
    api = Api(args.base, args.token)

    tpl = api.call("POST", "/api/v1/consent-templates", {
        "name": "Bench consent",
        "title": "Consent to publish photographs",
        "body_markdown": "We would like to publish **photographs** in which you appear.",
        "language": "en",
        "scopes": [{"channel": "web", "mandatory": True}, {"channel": "print", "mandatory": False}],
        "validity_days": 365,
        "legal_character": "gdpr_consent",
        "after_signing_text": "Thank you.",
    })
    res = {"n": args.n, "batch": args.batch}
    if "throughput" in args.runs:
        print("== throughput run", file=sys.stderr, flush=True)
        res["throughput"] = run_throughput(api, tpl["id"], args.maildir, args.n, args.batch)
        print(json.dumps(res["throughput"]), file=sys.stderr, flush=True)
    if "outage" in args.runs:
        print(f"== outage run ({args.outage:.0f} s without SMTP)", file=sys.stderr, flush=True)
        res["outage"] = run_outage(api, tpl["id"], args.maildir, args.n, args.batch, args.outage,
                                   args.stop_cmd, args.start_cmd, args.stop_after)
        print(json.dumps(res["outage"]), file=sys.stderr, flush=True)
    with open(args.result, "w") as f:
        json.dump(res, f, indent=2)
    o = res.get("outage", {})
    bad = o.get("lost", 0) or o.get("sent_twice", 0) or res.get("throughput", {}).get("duplicates", 0)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
