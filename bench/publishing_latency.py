#!/usr/bin/env python3
"""Withdrawal to hidden: from the person's withdrawal (the code confirmed on the receipt's
page) to (a) the file's delivery URL answering 451 and (b) the `asset.hidden` webhook verified
by a receiver with the Standard Webhooks reference library, with delivery traffic running.
Driven by `bench/outbox.sh <backend> publishing`, which starts the server and the SMTP server.

Setup through the API: a webhook endpoint pointing at this script's receiver (a threaded HTTP
server that verifies every request with `standardwebhooks.Webhook(secret).verify` and notes
when each verified `asset.hidden` arrived), TRAFFIC files with legal basis legitimate interest
that background threads fetch through the delivery endpoint the whole time, and N persons
with a photo each (a face confirmed as them, legal basis consent). Each person signs through
the signing link (as in signing_latency.py), the script waits until the delivery URL serves
the file (200), then the timed part:

    t0          = the POST /receipt/{token}/withdraw/confirm is sent
    to_451      = the delivery URL of the file first answers 451 (polled back to back)
    to_webhook  = the receiver has verified the asset.hidden event of the file

Reports p50 / p90 / p99 / max in milliseconds and the delivery traffic's requests and errors.

    publishing_latency.py BASE TOKEN SLUG MAILDIR PHOTO RESULT.json [--n 200] [--traffic 8]
"""

import argparse
import http.client
import http.server
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signing_latency import Http, Mailbox, code_in, link_in, page_form, summary  # noqa: E402

from standardwebhooks.webhooks import Webhook  # noqa: E402


class Receiver:
    """A webhook receiver: verifies with the reference library; remembers arrivals."""

    def __init__(self):
        self.secret = None
        self.hidden_at = {}
        self.verified = 0
        self.failed = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                now = time.perf_counter()
                try:
                    payload = Webhook(outer.secret).verify(body, dict(self.headers.items()))
                    ok = True
                except Exception:  # noqa: BLE001 - any verification failure counts
                    ok, payload = False, None
                with outer.lock:
                    if ok:
                        outer.verified += 1
                        if payload.get("type") == "asset.hidden":
                            asset = payload["data"]["asset_id"]
                            outer.hidden_at.setdefault(asset, now)
                    else:
                        outer.failed += 1
                self.send_response(204 if ok else 400)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_hidden(self, asset, timeout=30):
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            with self.lock:
                if asset in self.hidden_at:
                    return self.hidden_at[asset]
            time.sleep(0.001)
        raise RuntimeError(f"no verified asset.hidden for {asset} within {timeout} s")


def status_of(conn_holder, base, path):
    """GET path on a kept-alive connection; returns the status."""
    for attempt in range(3):
        try:
            if conn_holder[0] is None:
                u = base.split("://", 1)[1]
                host, port = u.split(":")
                conn_holder[0] = http.client.HTTPConnection(host, int(port), timeout=30)
            conn_holder[0].request("GET", path)
            r = conn_holder[0].getresponse()
            r.read()
            return r.status
        except (http.client.HTTPException, OSError):
            conn_holder[0] = None
            if attempt == 2:
                raise
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("token")
    ap.add_argument("slug")
    ap.add_argument("maildir")
    ap.add_argument("photo")
    ap.add_argument("result")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--traffic", type=int, default=8, help="files under delivery traffic")
    ap.add_argument("--threads", type=int, default=2, help="delivery traffic threads")
    a = ap.parse_args()
    api = Http(a.base, a.token)
    person = Http(a.base)
    box = Mailbox(a.maildir)
    photo = open(a.photo, "rb").read()
    rx = Receiver()
    ep = api.json("POST", "/api/v1/webhooks", {
        "url": rx.url, "description": "latency bench", "event_types": ["asset.hidden"]})
    rx.secret = ep["secret"]

    def upload(name):
        _, raw = api.send("POST", f"/api/v1/assets?filename={name}", photo,
                          {"content-type": "application/octet-stream"})
        return json.loads(raw)["asset"]["id"]

    traffic_paths = []
    for i in range(a.traffic):
        asset = upload(f"traffic{i}.jpg")
        api.json("PUT", f"/api/v1/assets/{asset}/legal-basis",
                 {"legal_basis": "legitimate_interest", "note": "bench"})
        traffic_paths.append(f"/d/{a.slug}/{asset}/web/small.jpg")

    t = api.json("POST", "/api/v1/consent-templates", {
        "name": "Publishing bench", "title": "Photos of the bench day",
        "body_markdown": "We would like to publish photos of you.", "language": "en",
        "scopes": [{"channel": "web", "mandatory": True}],
        "validity_days": 365, "legal_character": "gdpr_consent",
        "after_signing_text": "Thank you."})
    persons, assets, mails = [], [], []
    for i in range(a.n):
        addr = f"pub{i}@bench.test"
        p = api.json("POST", "/api/v1/persons", {"name": f"Publishing {i}", "email": addr})
        asset = upload(f"pub{i}.jpg")
        face = api.json("POST", f"/api/v1/assets/{asset}/faces", {"box": [10.0, 10.0, 60.0, 80.0]})
        api.json("POST", f"/api/v1/faces/{face['id']}/confirm", {"person_id": p["id"]})
        api.json("PUT", f"/api/v1/assets/{asset}/legal-basis", {"legal_basis": "consent"})
        persons.append(p["id"])
        assets.append(asset)
        mails.append(addr)
    out = api.json("POST", "/api/v1/signing-requests",
                   {"person_ids": persons, "template_id": t["id"], "channel": "email"})
    if out.get("failed"):
        raise RuntimeError(f"requests failed: {out['failed'][:3]}")

    stop = threading.Event()
    traffic = {"requests": 0, "ok": 0, "other": 0}
    tlock = threading.Lock()

    def hammer(k):
        conn = [None]
        n = ok = other = 0
        while not stop.is_set():
            st = status_of(conn, a.base, traffic_paths[(n + k) % len(traffic_paths)])
            n += 1
            if st in (200, 304):
                ok += 1
            else:
                other += 1
        with tlock:
            traffic["requests"] += n
            traffic["ok"] += ok
            traffic["other"] += other

    threads = [threading.Thread(target=hammer, args=(k,), daemon=True) for k in range(a.threads)]
    started = time.perf_counter()
    for th in threads:
        th.start()

    to_451, to_webhook, polls_451 = [], [], []
    probe = [None]
    for i in range(a.n):
        link = link_in(box.nth(mails[i], 1), "/sign/")
        cookie, csrf = page_form(*person.send("GET", link))
        person.form(link, cookie, {"csrf": csrf, "scope": "web"})
        code = code_in(box.nth(mails[i], 2))
        person.form(link + "/code", cookie, {"csrf": csrf, "code": code})
        path = f"/d/{a.slug}/{assets[i]}/web/small.jpg"
        deadline = time.perf_counter() + 30
        while status_of(probe, a.base, path) != 200:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{path} never served after signing")
            time.sleep(0.005)

        receipt = link_in(box.nth(mails[i], 3), "/receipt/")
        cookie, csrf = page_form(*person.send("GET", receipt))
        person.form(receipt + "/withdraw", cookie, {"csrf": csrf})
        code = code_in(box.nth(mails[i], 4))
        t0 = time.perf_counter()
        person.form(receipt + "/withdraw/confirm", cookie, {"csrf": csrf, "code": code})
        polls = 0
        while True:
            polls += 1
            if status_of(probe, a.base, path) == 451:
                break
            if time.perf_counter() - t0 > 30:
                raise RuntimeError(f"{path} still served 30 s after the withdrawal")
        t451 = time.perf_counter()
        thook = rx.wait_hidden(assets[i])
        to_451.append((t451 - t0) * 1000)
        to_webhook.append((thook - t0) * 1000)
        polls_451.append(polls)
        if (i + 1) % 50 == 0:
            print(f"publishing_latency: {i + 1}/{a.n}", file=sys.stderr)
    stop.set()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - started

    result = {
        "withdrawals": a.n,
        "withdraw_confirmed_to_delivery_451": summary(to_451),
        "withdraw_confirmed_to_webhook_verified": summary(to_webhook),
        "delivery_polls_until_451_max": max(polls_451),
        "webhooks_verified": rx.verified,
        "webhooks_failed_verification": rx.failed,
        "delivery_traffic": {
            "files": a.traffic, "threads": a.threads, "requests": traffic["requests"],
            "ok": traffic["ok"], "other_status": traffic["other"],
            "requests_per_s": round(traffic["requests"] / elapsed, 1),
        },
    }
    json.dump(result, open(a.result, "w"), indent=2)
    print(json.dumps(result, indent=2))
    if rx.failed:
        raise SystemExit("some webhooks failed verification")


if __name__ == "__main__":
    main()
