# Sourced by scripts that run a throwaway likeness-control server (deploy/schemathesis.sh,
# bench/upload_memory.sh). The caller exports its LIKENESS_CONTROL__* settings (port 0, a temp
# SQLite, ...) and kills "$server_pid" on exit.
#
#   start_control_server BIN TMPDIR TENANT TOKEN_NAME
#
# migrates, creates an admin of TENANT, starts `BIN serve` in the background, reads the address
# it announces, logs in and creates an API token. Sets: server_pid, base (http://host:port),
# token (the API token's secret). Server output goes to TMPDIR/server.out and server.log.

start_control_server() {
  local bin="$1" tmp="$2" tenant="$3" token_name="$4"
  local who="${0##*/}" password line
  password="pw-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
  "$bin" migrate >/dev/null
  LIKENESS_ADMIN_PASSWORD="$password" "$bin" create-admin --tenant "$tenant" \
    --email "admin@$tenant.test" >/dev/null

  "$bin" serve >"$tmp/server.out" 2>"$tmp/server.log" &
  server_pid=$!
  base=""
  for _ in $(seq 1 300); do
    line="$(head -n1 "$tmp/server.out" 2>/dev/null || true)"
    if [ -n "$line" ]; then
      base="http://$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["listening"]["http"])' "$line")"
      break
    fi
    kill -0 "$server_pid" 2>/dev/null || { echo "$who: the server exited" >&2; cat "$tmp/server.log" >&2; return 1; }
    sleep 0.1
  done
  [ -n "$base" ] || { echo "$who: the server announced no address" >&2; return 1; }

  # Log in (session cookie + CSRF token) and create an API token.
  token="$(python3 - "$base" "$tenant" "$password" "$token_name" <<'PY'
import json, sys, urllib.request
base, tenant, password, name = sys.argv[1:5]
def call(method, path, body, headers):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json", **headers})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp, json.load(resp)
resp, login = call("POST", "/api/v1/auth/login",
                   {"tenant": tenant, "email": f"admin@{tenant}.test", "password": password}, {})
cookie = resp.headers["set-cookie"].split(";", 1)[0]
_, created = call("POST", "/api/v1/tokens", {"name": name},
                  {"cookie": cookie, "x-csrf-token": login["csrf_token"]})
print(created["secret"])
PY
)"
}
