#!/usr/bin/env bash
# The whole loop on the embedded default (what `make demo` runs):
#
#   churn pipeline run --local   train with kfp.local, register the champion in MLflow (SQLite)
#   churn serve                  the champion from the local registry, on 127.0.0.1, in the background
#   churn predict --sample 5 --explain   five customers over the v2 REST protocol, with reasons
#
# and the server is stopped at the end, also when a step fails or the demo is interrupted.
# Everything is configured by the usual CHURN_* variables: CHURN_DATA_URI (without the real
# CSV the run trains on the generated SYNTHETIC stand-in and says so), CHURN_CONFIG_PATH,
# CHURN_ARTIFACT_ROOT, CHURN_MLFLOW_TRACKING_URI, CHURN_HTTP_PORT, CHURN_GRPC_PORT.
# Relative paths are taken from the repository root. CHURN_BIN names the `churn` executable
# (default .venv/bin/churn); DEMO_READY_TIMEOUT the seconds to wait for the server (120).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
churn="${CHURN_BIN:-$repo/.venv/bin/churn}"
python="$(dirname "$churn")/python"
http_port="${CHURN_HTTP_PORT:-8080}"
grpc_port="${CHURN_GRPC_PORT:-8081}"
url="http://127.0.0.1:${http_port}"
ready_timeout="${DEMO_READY_TIMEOUT:-120}"
log_dir="${CHURN_ARTIFACT_ROOT:-artifacts}/demo"
server_pid=""
t0=$SECONDS

step() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - t0))"; }
fail() { printf 'demo: %s\n' "$*" >&2; exit 1; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop_server() {
  [ -n "$server_pid" ] || return 0
  if kill -0 "$server_pid" 2>/dev/null; then
    printf '\n== stopping churn serve (pid %s)\n' "$server_pid"
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -x "$churn" ] || fail "no churn executable at $churn (run make install, or set CHURN_BIN)"
for port in "$http_port" "$grpc_port"; do
  listening "$port" && fail "port $port on 127.0.0.1 is in use: set CHURN_HTTP_PORT / CHURN_GRPC_PORT"
done

step "train and register: churn pipeline run --local"
"$churn" pipeline run --local

registered="$("$python" -c 'from churn_core.config import load_config
from churn_core.settings import Settings
print(load_config(Settings().config_path).registry.model_name)')"
model_uri="models:/${registered}@champion"

step "serve $model_uri: churn serve on $url (log: $log_dir/serve.log)"
mkdir -p "$log_dir"
"$churn" serve --model-uri "$model_uri" --host 127.0.0.1 \
  --http-port "$http_port" --grpc-port "$grpc_port" >"$log_dir/serve.log" 2>&1 &
server_pid=$!

deadline=$((SECONDS + ready_timeout))
until "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
  "$url/v2/health/ready" 2>/dev/null; do
  if ! kill -0 "$server_pid" 2>/dev/null || grep -q "NOT READY" "$log_dir/serve.log" \
    || [ "$SECONDS" -ge "$deadline" ]; then
    tail -n 30 "$log_dir/serve.log" >&2 || true
    fail "churn serve did not become ready on $url (log above)"
  fi
  sleep 0.5
done
echo "ready: $url (REST), 127.0.0.1:$grpc_port (gRPC)"

step "predict: churn predict --sample 5 --explain"
"$churn" predict --sample 5 --explain --url "$url"

stop_server
step "demo done"
