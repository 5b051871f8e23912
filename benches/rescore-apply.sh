#!/usr/bin/env bash
# Times one re-score through the service on a loaded store, with a cold page
# cache: starts `serve`, sets the large-family program's `min_children` to N in
# the store's catalogue copy, drops the page cache, POSTs /v1/rules/reload, and
# waits until every re-evaluation it submitted is applied. Alternate N (3, 4, 3,
# …) so that each run changes the same families back and forth.
#
# Usage (as root, for the page cache): benches/rescore-apply.sh DIR DFM N
#   DIR holds serve.toml (loopback ports 0, programs.catalogue = DIR/programs.toml)
#   and the store it names; `national-measure.sh` writes such a serve.toml.
set -u
dir=$1; dfm=$2; n=$3
here=$(cd "$(dirname "$0")" && pwd)
cd "$dir"
. "$here/serve-with-sink.sh" rescore
sleep 10
python3 - programs.toml "$n" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
block = re.search(r'\[\[program\]\]\ncode = "large_family"\n(?:.*\n)*?(?=\n\[\[|\Z)', text)
changed = re.sub(r'min_children = \d+', 'min_children = ' + sys.argv[2], block.group(0))
open(path, "w").write(text.replace(block.group(0), changed))
PY
sync; echo 1 > /proc/sys/vm/drop_caches
c0=$(ticks)
t0=$(date +%s.%N)
curl -s -m 1800 -X POST -H "Authorization: Bearer alice-secret" "$admin/v1/rules/reload"; echo
echo "scan $(echo "$(date +%s.%N) - $t0" | bc) s"
sleep 1
until curl -s -m 60 -H "Authorization: Bearer alice-secret" "$admin/metrics" | grep -q '^dfm_log_backlog 0$'; do sleep 1; done
echo "all applied $(echo "$(date +%s.%N) - $t0" | bc) s after the request, the service's CPU $(( ($(ticks) - c0) / 100 )) s; RSS $(awk '/VmRSS/ {print $2/1024 " MB"}' /proc/$pid/status), peak $(awk '/VmHWM/ {print $2/1024 " MB"}' /proc/$pid/status)"
kill -TERM "$pid"; wait "$pid"
kill "$sink"
