#!/usr/bin/env bash
# Times what-ifs on a loaded store by the wall clock and by the CPU the service
# spent on each (its utime + stime from /proc, in 10 ms ticks): on a shared,
# noisy machine the CPU is the steadier figure. Starts `serve` with an SMS sink
# on 127.0.0.1:9001, waits for the scoring table and for the log to be applied,
# lets the outbox settle, then POSTs N what-ifs one after the other.
#
# Usage: benches/whatif-cpu.sh DIR DFM N
#   DIR holds serve.toml (loopback ports 0); `national-measure.sh` writes one.
#   BODY='{"patch_toml":"…"}' sets the what-if (default: the large family from
#   three children, as national-measure.sh); BODY='{"patch_toml":""}' changes
#   nothing, which measures reading the table alone. SETTLE=S waits S seconds
#   (default 10) before the first what-if. IDLE=1 first waits until the
#   notifier has sent the SMS a load left in the outbox (its sent count stays
#   the same for 2 s): without it, a freshly loaded store sends them beside
#   the what-ifs, as in national-measure.sh, and their CPU is counted too.
set -u
dir=$1; dfm=$2; n=$3
here=$(cd "$(dirname "$0")" && pwd)
cd "$dir"
. "$here/serve-with-sink.sh" whatif
metric() { curl -s -m 60 -H "Authorization: Bearer alice-secret" "$admin/metrics" | grep -q "^$1\$"; }
until metric 'dfm_scoring_table_built 1'; do sleep 0.2; done
until metric 'dfm_log_backlog 0'; do sleep 1; done
sent() { curl -s -m 60 -H "Authorization: Bearer alice-secret" "$admin/metrics" | grep '^dfm_sms_total{outcome="sent"}' || true; }
if [ "${IDLE:-0}" = 1 ]; then
  before=x
  while [ "$before" != "$(sent)" ]; do before=$(sent); sleep 2; done
fi
sleep "${SETTLE:-10}"
body=${BODY:-'{"patch_toml":"[[program]]\ncode = \"large_family\"\nmin_children = 3\namounts_mci = [\"12.00\", \"16.03\", \"20.04\", \"24.05\", \"28.06\"]\n"}'}
for i in $(seq 1 "$n"); do
  c0=$(ticks); t0=$(date +%s.%N)
  curl -s -m 600 -X POST -H "Authorization: Bearer alice-secret" -H "Content-Type: application/json" \
    -d "$body" "$admin/v1/whatif" > whatif.json
  t1=$(date +%s.%N); c1=$(ticks)
  echo "what-if $i: $(echo "$t1 - $t0" | bc) s, CPU $(( (c1 - c0) * 10 )) ms"
done
kill -TERM "$pid"; wait "$pid"
kill "$sink"
