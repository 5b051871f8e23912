#!/usr/bin/env bash
# Measures `dfm serve` on a loaded national store, from outside, as operators and
# agencies would: sled's own memory on the store, restart to serving, RSS,
# GET /v1/stats and GET /v1/families/{id} latencies (idle, then while a feed
# runs), the feed's accepted rate, one what-if, one full re-score after a
# catalogue change, a second restart after a clean stop, and a restart after
# SIGKILL in the middle of a feed.
#
# Usage: benches/national-measure.sh DIR FAMILIES
#   DIR holds dfm.toml (storage.path and programs.catalogue absolute) and a store
#   loaded with `dfm generate --families FAMILIES --seed 1 | dfm load`.
#   PERF=1 also records `perf` profiles of the what-if, the re-score and the
#   restart after SIGKILL into DIR/*.perf (`perf report -i …`).
# Writes its figures to stdout and the service's output to DIR/serve.{out,err}.
set -euo pipefail
dir=$1
families=$2
dfm=${DFM:-$(dirname "$0")/../target/release/dfm}
here=$(cd "$(dirname "$0")" && pwd)
cd "$dir"

# A private copy of the catalogue, so that the re-score can change it.
cp "$(sed -n 's/^catalogue *= *"\(.*\)".*/\1/p' dfm.toml)" programs.toml
sed -e 's|public_addr = "127.0.0.1:8080"|public_addr = "127.0.0.1:0"|' \
    -e 's|admin_addr  = "127.0.0.1:8081"|admin_addr  = "127.0.0.1:0"|' \
    -e "s|^catalogue *= *\"[^\"]*\"|catalogue = \"$dir/programs.toml\"|" dfm.toml > serve.toml

serve() {
  rm -f serve.out
  local start ready
  start=$(date +%s.%N)
  RUST_LOG=warn "$dfm" serve --config serve.toml > serve.out 2>> serve.err &
  pid=$!
  [ -n "${1:-}" ] && profile "$1" 20
  while ! grep -q serving serve.out 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "serve did not start:"; tail -3 serve.err; exit 1; }
    sleep 0.05
  done
  ready=$(date +%s.%N)
  echo "restart to serving: $(echo "$ready - $start" | bc) s"
  public=$(grep -o 'public=http://[0-9.:]*' serve.out | cut -d= -f2)
  admin=$(grep -o 'admin=http://[0-9.:]*' serve.out | cut -d= -f2)
}
# profile NAME SECONDS: perf samples of the service for SECONDS, in the background.
profile() {
  [ "${PERF:-0}" = 1 ] || return 0
  perf record -g -F 499 -o "$1.perf" -p "$pid" -- sleep "$2" > /dev/null 2>&1 &
}
# Where the dispatcher's time went so far: routing (the citizen index), and
# applying through the actors (delivery), as sums of seconds and batch counts.
dispatch() { echo "dispatcher $1: $(curl -s -H "Authorization: Bearer alice-secret" "$admin/metrics" | grep -E '^dfm_dispatch_(route|deliver)_seconds_(sum|count)' | tr '\n' ' ')"; }
rss() { echo "VmRSS $1: $(awk '/VmRSS/ {print $2/1024 " MB"}' /proc/$pid/status) (peak so far $(awk '/VmHWM/ {print $2/1024 " MB"}' /proc/$pid/status))"; }
latencies() {
  for _ in $(seq 1 200); do
    curl -s -o /dev/null -w "%{time_total}\n" -H "Authorization: Bearer alice-secret" "$admin/v1/stats"
  done | sort -n > stats.lat
  echo "idle GET /v1/stats: p50 $(sed -n 100p stats.lat) s, p99 $(sed -n 198p stats.lat) s, max $(tail -1 stats.lat) s"
  for _ in $(seq 1 200); do
    printf -v id "F%08d" $(( (RANDOM * 32768 + RANDOM) % families ))
    curl -s -o /dev/null -w "%{time_total}\n" -H "Authorization: Bearer alice-secret" "$admin/v1/families/$id"
  done | sort -n > family.lat
  echo "idle GET /v1/families/{id}: p50 $(sed -n 100p family.lat) s, p99 $(sed -n 198p family.lat) s, max $(tail -1 family.lat) s"
}
wait_applied() {
  local started=$1 waited=0
  sleep 1
  until curl -s -H "Authorization: Bearer alice-secret" "$admin/metrics" | grep -q '^dfm_log_backlog 0$'; do
    sleep 1
    waited=$((waited + 1))
    if [ "$waited" -ge "${APPLY_WAIT_MAX:-900}" ]; then
      echo "  log NOT applied after $waited s: $(curl -s -H "Authorization: Bearer alice-secret" "$admin/metrics" | grep '^dfm_log_backlog')"
      return
    fi
  done
  echo "  log applied $(echo "$(date +%s.%N) - $started" | bc) s after the request"
}

# An SMS gateway that takes every message (202): offers decided during the load
# wait in the outbox, and a gateway that is down holds the dispatcher back.
python3 "$here/sms-sink.py" &
sink=$!
trap 'kill $sink 2>/dev/null || true' EXIT

store=$(sed -n 's/^path *= *"\(.*\)".*/\1/p' serve.toml | head -1)
echo "sled alone on this store (opened; then every family read into the scoring table): $("$dfm" bench rss-probe --kind store --store "$store" --families "$families")"
serve
started=$(date +%s.%N)
rss "after start"
if ! grep -q '^ *scoring_table *= *false' serve.toml; then
  until curl -s -H "Authorization: Bearer alice-secret" "$admin/metrics" | grep -q '^dfm_scoring_table_built 1$'; do sleep 0.2; done
  echo "scoring table built $(echo "$(date +%s.%N) - $started" | bc) s after serving: $(curl -s -H "Authorization: Bearer alice-secret" "$admin/metrics" | grep '^dfm_scoring_table_' | tr '\n' ' ')"
  rss "after the scoring table is built"
fi
sleep 5
rss "5 s later (outboxes resumed a page at a time)"
latencies

# The feed: the first 20,000 (FEED_FAMILIES) families again, with new event ids (updates).
"$dfm" generate --families "${FEED_FAMILIES:-20000}" --seed 1 --out feed.ndjson > /dev/null 2>&1
python3 "$here/feed-under-load.py" --public "$public" --admin "$admin" --config serve.toml \
  --events feed.ndjson --prefix "m$(date +%s)-" --families-stored "$families"
wait_applied "$(date +%s.%N)"
rss "after the feed"
dispatch "after the feed"

profile whatif 60
t0=$(date +%s.%N)
curl -s -m 1800 -X POST -H "Authorization: Bearer alice-secret" -H "Content-Type: application/json" \
  -d '{"patch_toml":"[[program]]\ncode = \"large_family\"\nmin_children = 3\namounts_mci = [\"12.00\", \"16.03\", \"20.04\", \"24.05\", \"28.06\"]\n"}' \
  "$admin/v1/whatif" > whatif.json
t1=$(date +%s.%N)
echo "what-if (large family from 3 children): $(echo "$t1 - $t0" | bc) s; $(head -c 300 whatif.json)"
rss "after the what-if"

# The same change made for real: the catalogue file changes, the rules reload.
python3 - programs.toml <<'EOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
block = re.search(r'\[\[program\]\]\ncode = "large_family"\n(?:.*\n)*?(?=\n\[\[|\Z)', text)
assert block, "no large_family program"
changed = re.sub(r'min_children = \d+', 'min_children = 3', block.group(0))
text = text.replace(block.group(0), changed)
# A changed catalogue gets a version of its own (stored decisions name it).
text = re.sub(r'^version = "([^"]*)"', r'version = "\1-measure"', text, count=1, flags=re.M)
open(path, "w").write(text)
EOF
profile rescore 120
t0=$(date +%s.%N)
curl -s -m 1800 -X POST -H "Authorization: Bearer alice-secret" "$admin/v1/rules/reload" > reload.json
t1=$(date +%s.%N)
echo "re-score after the catalogue change: scan $(echo "$t1 - $t0" | bc) s; $(cat reload.json)"
wait_applied "$t0"
rss "after the re-score"
dispatch "after the re-score"

t0=$(date +%s.%N)
kill -TERM "$pid"; wait "$pid" || true
echo "clean stop (drain, flush, sled's snapshot): $(echo "$(date +%s.%N) - $t0" | bc) s"
serve
rss "after the second start"

# A crash in the middle of a feed: the next start replays sled's log since the
# last opening, then the unapplied feed.
python3 "$here/feed-under-load.py" --public "$public" --admin "$admin" --config serve.toml \
  --events feed.ndjson --prefix "k$(date +%s)-" --families-stored "$families" > /dev/null &
feeder=$!
sleep 20
kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
kill "$feeder" 2>/dev/null || true; wait "$feeder" 2>/dev/null || true
echo "killed with SIGKILL 20 s into a feed"
serve crash-restart
rss "after the restart"
wait_applied "$(date +%s.%N)"
kill -TERM "$pid"; wait "$pid" || true
