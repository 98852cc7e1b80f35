#!/usr/bin/env python3
"""A webhook receiver that verifies every request with the Standard Webhooks reference library
(`standardwebhooks` on PyPI: `Webhook(secret).verify(body, headers)`) and records each one, as a
JSON line, to a file. The tests and the webhook bench run it; deploy/webhook-deps.sh installs the
library into .cache/webhooks-venv (run this file with that venv's python).

    .cache/webhooks-venv/bin/python deploy/webhook-receiver.py --port 0 --out /tmp/hooks.jsonl \
        [--secret whsec_...] [--status 204] [--delay-ms 0]

Prints `listening on <port>` once it listens. Every POST (any path but /_control/...) is
verified and recorded: {"at", "path", "verified", "error", "webhook_id", "webhook_timestamp",
"type", "data", "answered"}. It answers 401 to a request that fails verification, else the
configured status (default 204): set 500 to play a failing receiver.

Control (JSON, for tests):
  POST /_control/config  {"secret"?: "whsec_...", "status"?: 500, "delay_ms"?: 0}
  GET  /_control/received   the recorded lines as a JSON array
  GET  /_control/health     200
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

LOCK = threading.Lock()
CONFIG = {"secret": None, "status": 204, "delay_ms": 0}
RECORDS = []
OUT = None


def record(entry):
    line = json.dumps(entry, separators=(",", ":"))
    with LOCK:
        RECORDS.append(entry)
        if OUT is not None:
            OUT.write(line + "\n")
            OUT.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _answer(self, status, body=b"", ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/_control/received":
            with LOCK:
                body = json.dumps(RECORDS).encode()
            self._answer(200, body)
        elif self.path == "/_control/health":
            self._answer(200, b'{"ok":true}')
        else:
            self._answer(404, b'{"error":"not found"}')

    def do_POST(self):
        body = self._body()
        if self.path == "/_control/config":
            change = json.loads(body or b"{}")
            with LOCK:
                for k in ("secret", "status", "delay_ms"):
                    if k in change:
                        CONFIG[k] = change[k]
                current = dict(CONFIG)
            current["secret"] = bool(current["secret"])
            self._answer(200, json.dumps(current).encode())
            return
        with LOCK:
            secret, status, delay_ms = CONFIG["secret"], CONFIG["status"], CONFIG["delay_ms"]
        headers = {k: v for k, v in self.headers.items()}
        entry = {
            "at": time.time(),
            "path": self.path,
            "webhook_id": self.headers.get("webhook-id"),
            "webhook_timestamp": self.headers.get("webhook-timestamp"),
            "user_agent": self.headers.get("user-agent"),
            "verified": False,
            "error": None,
            "type": None,
            "data": None,
        }
        try:
            if not secret:
                raise ValueError("the receiver has no secret")
            payload = Webhook(secret).verify(body, headers)
            entry["verified"] = True
            entry["type"] = payload.get("type")
            entry["data"] = payload.get("data")
        except Exception as e:  # noqa: BLE001 - every failure is recorded, and answered 401
            entry["error"] = f"{type(e).__name__}: {e}"
            status = 401
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        entry["answered"] = status
        record(entry)
        reply = b"" if status == 204 else json.dumps({"status": status}).encode()
        self._answer(status, reply)


def main():
    global OUT
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--out", help="JSON lines file to append every request to")
    p.add_argument("--secret", help="the endpoint's whsec_... secret")
    p.add_argument("--status", type=int, default=204, help="status of a verified request")
    p.add_argument("--delay-ms", type=int, default=0)
    a = p.parse_args()
    CONFIG.update(secret=a.secret, status=a.status, delay_ms=a.delay_ms)
    if a.out:
        OUT = open(a.out, "a", encoding="utf-8")
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 256
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    print(f"listening on {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
