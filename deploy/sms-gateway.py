#!/usr/bin/env python3
"""A local SMS gateway for tests and benchmarks (Python standard library only).

Records every POST or PUT as one JSON line in --log: method, path, headers, the raw body, and
the body parsed as JSON or as a form when it is one; answers 200 {"id": "<n>"}. While the file
named by --fail-file exists (or with --fail), it answers 503 instead and records nothing, so a
test can take the gateway "down" without stopping it.

    deploy/sms-gateway.py --port 9025 --log /tmp/sms.jsonl [--fail-file /tmp/sms.fail] [--fail]

GET / answers 200 "ok" (a readiness probe). Prints "listening on HOST:PORT" once bound.
"""

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9025)
    ap.add_argument("--log", required=True, help="JSON-lines file the messages are appended to")
    ap.add_argument("--fail", action="store_true", help="answer 503 to every message")
    ap.add_argument("--fail-file", default="", help="answer 503 while this file exists")
    args = ap.parse_args()

    lock = threading.Lock()
    counter = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet: the log file is the record
            pass

        def _answer(self, status, payload):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            data = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if args.fail or (args.fail_file and os.path.exists(args.fail_file)):
                self._answer(503, {"error": "gateway unavailable"})
                return
            body = raw.decode("utf-8", "replace")
            ctype = (self.headers.get("Content-Type") or "").lower()
            parsed_json = None
            parsed_form = None
            if "json" in ctype:
                try:
                    parsed_json = json.loads(body)
                except ValueError:
                    parsed_json = None
            if "x-www-form-urlencoded" in ctype:
                parsed_form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
            with lock:
                counter[0] += 1
                msg_id = "sms-%d" % counter[0]
                rec = {
                    "id": msg_id,
                    "at": time.time(),
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                    "json": parsed_json,
                    "form": parsed_form,
                }
                with open(args.log, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec) + "\n")
                    f.flush()
            self._answer(200, {"id": msg_id})

        do_POST = _record
        do_PUT = _record

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    open(args.log, "a", encoding="utf-8").close()
    print("listening on %s:%d" % (args.host, server.server_address[1]), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
