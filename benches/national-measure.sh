#!/usr/bin/env bash
# Measures serve at national scale (run from the directory holding dfm.toml and the store): restart-to-serving, RSS, stats/family latency, what-if.
set -u
cd "${1:-.}"
sed 's|public_addr = "127.0.0.1:8080"|public_addr = "127.0.0.1:0"|; s|admin_addr  = "127.0.0.1:8081"|admin_addr  = "127.0.0.1:0"|' dfm.toml > serve.toml
start=$(date +%s.%N)
RUST_LOG=warn /work/main/target/release/dfm serve --config serve.toml > serve.out 2> serve.err &
pid=$!
while ! grep -q serving serve.out 2>/dev/null; do sleep 0.05; done
ready=$(date +%s.%N)
echo "restart to serving: $(echo "$ready - $start" | bc) s"
admin=$(grep -o 'admin=http://[0-9.:]*' serve.out | cut -d= -f2)
grep VmRSS /proc/$pid/status
for i in $(seq 1 200); do curl -s -o /dev/null -w "%{time_total}\n" -H "Authorization: Bearer alice-secret" "$admin/v1/stats"; done | sort -n > stats.lat
echo "stats p50 $(sed -n 100p stats.lat) p99 $(sed -n 198p stats.lat) max $(tail -1 stats.lat)"
for i in $(seq 1 200); do id=$(printf "F%08d" $(( (RANDOM * 32768 + RANDOM) % 6000000 ))); curl -s -o /dev/null -w "%{time_total}\n" -H "Authorization: Bearer alice-secret" "$admin/v1/families/$id"; done | sort -n > family.lat
echo "family p50 $(sed -n 100p family.lat) p99 $(sed -n 198p family.lat) max $(tail -1 family.lat)"
curl -s -H "Authorization: Bearer victor-secret" "$admin/v1/stats" | head -c 400; echo
grep VmRSS /proc/$pid/status
t0=$(date +%s.%N)
curl -s -m 900 -X POST -H "Authorization: Bearer alice-secret" -H "Content-Type: application/json" -d '{"patch_toml":"[[program]]\ncode = \"large_family\"\nmin_children = 3\namounts_mci = [\"12.00\", \"16.03\", \"20.04\", \"24.05\", \"28.06\"]\n"}' "$admin/v1/whatif" > whatif.json
t1=$(date +%s.%N)
echo "whatif: $(echo "$t1 - $t0" | bc) s"; head -c 600 whatif.json; echo
grep VmRSS /proc/$pid/status
kill -TERM $pid; wait $pid; echo "serve exit $?"
