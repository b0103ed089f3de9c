#!/usr/bin/env bash
# A cluster on one machine, to try it (README "Cluster"): a Redis, three gateway nodes
# and the nginx edge cache of deploy/nginx-edge.conf in front of them. Ctrl-C stops all.
#
#   npm run build && bash deploy/cluster.sh
#   open http://localhost:8080/publish/cam1       (through the edge; the 4th publisher gets 503)
#   vlc http://localhost:8080/hls/cam1/index.m3u8  (viewers through the cache)
#
# Ports (change them with the variables): edge EDGE_PORT (8080), nodes NODE_PORTS
# (8081 8082 8083), Redis REDIS_PORT (6379); each node takes MAX_SESSIONS (1) publishers.
# On real machines run one node per machine with REDIS_URL and NODE_URL (its own URL),
# and list the nodes in the edge's upstream instead.
set -euo pipefail
cd "$(dirname "$0")/.."
EDGE_PORT=${EDGE_PORT:-8080}
NODE_PORTS=${NODE_PORTS:-"8081 8082 8083"}
REDIS_PORT=${REDIS_PORT:-6379}
export MAX_SESSIONS=${MAX_SESSIONS:-1}
run=$(mktemp -d /tmp/gateway-cluster.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$run"' EXIT INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$run" >"$run/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done

servers=""
for port in $NODE_PORTS; do
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT" NODE_URL="http://127.0.0.1:$port" PORT="$port" \
    DATA_DIR="$run/node-$port" ICE_ADDRESSES="${ICE_ADDRESSES:-127.0.0.1}" node dist/cli.js >"$run/node-$port.log" 2>&1 &
  pids+=($!)
  servers+="        server 127.0.0.1:$port max_fails=1 fail_timeout=5s;\n"
done

# The shipped edge configuration with this machine's paths, port and nodes.
mkdir -p "$run/edge/cache" "$run/edge/tmp" "$run/edge/body"
sed -e "s|^\(\s*\)pid .*# test: pid|\1pid $run/edge/nginx.pid;|" \
    -e "s|^\(\s*\)error_log .*# test: error_log|\1error_log $run/edge/error.log warn;|" \
    -e "s|/var/cache/nginx/hls|$run/edge/cache|; s|/var/cache/nginx/tmp|$run/edge/tmp|; s|/var/cache/nginx/body|$run/edge/body|" \
    -e "s|^\(\s*\)resolver .*|\1# (no resolver: the nodes' URLs are addresses)|" \
    -e "s|^\(\s*\)listen 80;.*|\1listen 127.0.0.1:$EDGE_PORT;|" \
    -e "/server node[0-9]:8080/d" \
    -e "s|^\(\s*upstream gateways {.*\)$|\1\n$servers|" \
    deploy/nginx-edge.conf >"$run/edge/nginx.conf"
nginx -p "$run/edge" -c "$run/edge/nginx.conf" -g 'daemon off; master_process off;' &
pids+=($!)

for port in $NODE_PORTS; do until curl -fs "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.2; done; done
echo "cluster up: edge http://localhost:$EDGE_PORT, nodes ${NODE_PORTS}, Redis $REDIS_PORT (logs in $run)"
curl -s "http://127.0.0.1:$EDGE_PORT/api/cluster/nodes" | node -e 'for (const n of JSON.parse(require("fs").readFileSync(0, "utf8"))) console.log(`  node ${n.id} ${n.state}, ${n.sessions}/${n.maxSessions} publishers`)'
wait -n "${pids[@]}"
