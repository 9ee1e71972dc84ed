#!/usr/bin/env bash
# Runs schemathesis (all checks, every phase including the stateful one,
# 100 examples per operation) against a live `liteshop serve` on a fresh
# database: once with a user's token over the user routes, once with the
# admin token over the admin routes. Exits non-zero on any failure.
#
# The seed is fresh on every run and printed first, so a red run can be
# replayed: LITESHOP_ST_SEED=<seed> .ci/schemathesis.sh ...
# Usage: .ci/schemathesis.sh <st binary> <liteshop binary> <scratch dir>
set -euo pipefail
st="$1"; server="$2"; scratch="$3"
seed="${LITESHOP_ST_SEED:-$(python3 -c 'import random; print(random.randrange(2**31))')}"
echo "schemathesis seed: $seed (replay with LITESHOP_ST_SEED=$seed)"
# Every request with a valid Idempotency-Key gets a fresh one: see the file.
export PYTHONPATH="$(cd "$(dirname "$0")" && pwd)${PYTHONPATH:+:$PYTHONPATH}"
export SCHEMATHESIS_HOOKS=schemathesis_hooks

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
LITESHOP_ADMIN_TOKEN=ci-admin-token LITESHOP_TOKEN_SECRET=ci-token-secret \
  "$server" serve --addr "127.0.0.1:$port" --db "$scratch/schemathesis.db" \
  >"$scratch/server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true' EXIT

python3 - "$base" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        if urllib.request.urlopen(sys.argv[1] + "/readyz", timeout=1).status == 200:
            sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("the server did not get ready")
PY
token="$(python3 - "$base" <<'PY'
import json, sys, urllib.request
request = urllib.request.Request(sys.argv[1] + "/users", data=b'{"name": "schemathesis"}',
                                 headers={"Content-Type": "application/json"}, method="POST")
print(json.load(urllib.request.urlopen(request))["token"])
PY
)"

common=(--checks all --max-examples 100 --seed "$seed" --output-sanitize true)
"$st" --config-file "$(dirname "$0")/schemathesis.toml" run "$base/openapi.json" "${common[@]}" \
  -H "Authorization: Bearer $token" --exclude-path-regex '^/admin'
"$st" run "$base/openapi.json" "${common[@]}" \
  -H "Authorization: Bearer ci-admin-token" --include-path-regex '^/admin'
