#!/usr/bin/env python3
"""From the person's code to the file's compliance: the signing and the withdrawal as a person
does them over HTTP, against a running `likeness-control serve` and a real SMTP server
(driven by bench/outbox.sh latency, which starts both).

Setup through the API: N persons with e-mail addresses, each with a photo of their own (a
hand-drawn face confirmed as them, legal basis consent, so the file is not allowed), one
agreement template, one bulk signing request. Then per person, as a browser would: the link
from the mail, the page (its CSRF cookie and field), the choices, the code from the next mail,
and the timed part:

    confirm  = POST /sign/{token}/code answered (the signature committed)
    visible  = from sending that POST to the first GET /api/v1/assets/{id}/compliance that
               says approved for the web (polled until it does)

and the same for the withdrawal through the receipt's link (POST .../withdraw/confirm, then
compliance no longer approved). Reports p50 / p90 / p99 / max in milliseconds.

    signing_latency.py BASE TOKEN MAILDIR PHOTO RESULT.json [--n 200]
"""

import argparse
import email
import email.policy
import http.client
import json
import os
import re
import sys
import time
import urllib.parse


class Http:
    """One keep-alive connection; bearer token for the API, cookie and Origin for forms."""

    def __init__(self, base, token=None):
        u = urllib.parse.urlparse(base)
        self.base = base
        self.host, self.port = u.hostname, u.port
        self.token = token
        self.conn = None

    def send(self, method, path, body=None, headers=None, ok=(200, 201)):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                h = dict(headers or {})
                if self.token:
                    h["authorization"] = "Bearer " + self.token
                self.conn.request(method, path, body=body, headers=h)
                resp = self.conn.getresponse()
                raw = resp.read()
                if resp.status not in ok:
                    raise RuntimeError(f"{method} {path}: {resp.status} {raw[:400]!r}")
                return resp, raw
            except (http.client.HTTPException, ConnectionError, OSError):
                self.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.2)

    def json(self, method, path, value=None):
        body = json.dumps(value).encode() if value is not None else None
        headers = {"content-type": "application/json"} if body is not None else {}
        _, raw = self.send(method, path, body, headers)
        return json.loads(raw) if raw else None

    def form(self, path, cookie, fields):
        body = urllib.parse.urlencode(fields).encode()
        return self.send("POST", path, body, {
            "content-type": "application/x-www-form-urlencoded",
            "cookie": cookie,
            "origin": self.base,
        })


def page_form(resp, raw):
    """(cookie header value, csrf field) of a public page."""
    cookie = None
    for k, v in resp.getheaders():
        if k.lower() == "set-cookie" and v.startswith("lk_pcsrf="):
            cookie = v.split(";", 1)[0]
    m = re.search(rb'name="csrf" value="([^"]+)"', raw)
    if not m:
        raise RuntimeError("no csrf field on the page")
    return cookie, m.group(1).decode()


class Mailbox:
    """The SMTP server's Maildir: the texts of the mails to each address, in arrival order."""

    def __init__(self, maildir):
        self.dir = os.path.join(maildir, "new")
        self.seen = set()
        self.by_to = {}

    def scan(self):
        if not os.path.isdir(self.dir):
            return
        names = sorted(n for n in os.listdir(self.dir) if n not in self.seen)
        for name in names:
            path = os.path.join(self.dir, name)
            with open(path, "rb") as f:
                msg = email.message_from_binary_file(f, policy=email.policy.default)
            self.seen.add(name)
            part = msg.get_body(preferencelist=("plain",))
            text = part.get_content() if part else ""
            stamp = os.stat(path).st_mtime
            self.by_to.setdefault(str(msg["to"]).strip().lower(), []).append((stamp, text))

    def nth(self, to, n, timeout=120):
        """The text of the n-th mail (1-based) to `to`."""
        end = time.time() + timeout
        while True:
            got = sorted(self.by_to.get(to, []))
            if len(got) >= n:
                return got[n - 1][1]
            if time.time() > end:
                raise RuntimeError(f"no mail #{n} for {to} within {timeout} s")
            time.sleep(0.02)
            self.scan()


def link_in(text, marker):
    for m in re.finditer(r"https?://\S+", text):
        if marker in m.group(0):
            return urllib.parse.urlparse(m.group(0).rstrip(".,)>")).path
    raise RuntimeError(f"no {marker} link in {text!r}")


def code_in(text):
    m = re.search(r"(?<![0-9A-Za-z])(\d{6})(?![0-9A-Za-z])", text)
    if not m:
        raise RuntimeError(f"no code in {text!r}")
    return m.group(1)


def web_status(api, asset):
    v = api.json("GET", f"/api/v1/assets/{asset}/compliance?channel=web")
    return next(x["status"] for x in v["verdicts"] if x["channel"] == "web")


def until(api, asset, want_approved):
    polls = 0
    while True:
        polls += 1
        approved = web_status(api, asset) == "approved"
        if approved == want_approved:
            return polls
        if polls > 10000:
            raise RuntimeError(f"asset {asset}: compliance never changed")


def pct(values, p):
    v = sorted(values)
    return round(v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))], 2)


def summary(values):
    return {"n": len(values), "p50_ms": pct(values, 50), "p90_ms": pct(values, 90),
            "p99_ms": pct(values, 99), "max_ms": round(max(values), 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("token")
    ap.add_argument("maildir")
    ap.add_argument("photo")
    ap.add_argument("result")
    ap.add_argument("--n", type=int, default=200)
    a = ap.parse_args()
    api = Http(a.base, a.token)
    person = Http(a.base)
    box = Mailbox(a.maildir)
    photo = open(a.photo, "rb").read()

    t = api.json("POST", "/api/v1/consent-templates", {
        "name": "Latency bench", "title": "Photos of the bench day",
        "body_markdown": "We would like to publish photos of you.", "language": "en",
        "scopes": [{"channel": "web", "mandatory": True}, {"channel": "print"}],
        "validity_days": 365, "legal_character": "gdpr_consent",
        "after_signing_text": "Thank you."})
    persons, assets, mails = [], [], []
    for i in range(a.n):
        addr = f"lat{i}@bench.test"
        p = api.json("POST", "/api/v1/persons", {"name": f"Latency {i}", "email": addr})
        _, raw = api.send("POST", f"/api/v1/assets?filename=lat{i}.jpg", photo,
                          {"content-type": "application/octet-stream"})
        asset = json.loads(raw)["asset"]["id"]
        face = api.json("POST", f"/api/v1/assets/{asset}/faces", {"box": [10.0, 10.0, 60.0, 80.0]})
        api.json("POST", f"/api/v1/faces/{face['id']}/confirm", {"person_id": p["id"]})
        api.json("PUT", f"/api/v1/assets/{asset}/legal-basis", {"legal_basis": "consent"})
        persons.append(p["id"])
        assets.append(asset)
        mails.append(addr)
    if web_status(api, assets[0]) == "approved":
        raise RuntimeError("the file is approved before signing")
    out = api.json("POST", "/api/v1/signing-requests",
                   {"person_ids": persons, "template_id": t["id"], "channel": "email"})
    if out.get("failed"):
        raise RuntimeError(f"requests failed: {out['failed'][:3]}")

    sign_confirm, sign_visible, sign_polls = [], [], []
    w_confirm, w_visible = [], []
    for i in range(a.n):
        link = link_in(box.nth(mails[i], 1), "/sign/")
        cookie, csrf = page_form(*person.send("GET", link))
        person.form(link, cookie, {"csrf": csrf, "scope": "web"})
        code = code_in(box.nth(mails[i], 2))
        t0 = time.perf_counter()
        _, raw = person.form(link + "/code", cookie, {"csrf": csrf, "code": code})
        t1 = time.perf_counter()
        sign_polls.append(until(api, assets[i], True))
        t2 = time.perf_counter()
        sign_confirm.append((t1 - t0) * 1000)
        sign_visible.append((t2 - t0) * 1000)

        receipt = link_in(box.nth(mails[i], 3), "/receipt/")
        cookie, csrf = page_form(*person.send("GET", receipt))
        person.form(receipt + "/withdraw", cookie, {"csrf": csrf})
        code = code_in(box.nth(mails[i], 4))
        t0 = time.perf_counter()
        person.form(receipt + "/withdraw/confirm", cookie, {"csrf": csrf, "code": code})
        t1 = time.perf_counter()
        until(api, assets[i], False)
        t2 = time.perf_counter()
        w_confirm.append((t1 - t0) * 1000)
        w_visible.append((t2 - t0) * 1000)
        if (i + 1) % 50 == 0:
            print(f"signing_latency: {i + 1}/{a.n}", file=sys.stderr)

    result = {
        "persons": a.n,
        "sign_code_confirmed": summary(sign_confirm),
        "sign_code_to_file_approved": summary(sign_visible),
        "compliance_reads_until_approved_max": max(sign_polls),
        "withdraw_code_confirmed": summary(w_confirm),
        "withdraw_code_to_file_not_allowed": summary(w_visible),
    }
    json.dump(result, open(a.result, "w"), indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
