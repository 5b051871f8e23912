# Sourced by the bench scripts, in the store's directory, with `here` (the
# benches folder) and `dfm` (the binary) set: starts the SMS sink and
# `dfm serve --config serve.toml`, its output in NAME.out and NAME.err, and
# waits until it serves (if serve stops first: its last errors, exit 1).
# Sets `sink` and `pid` (to stop them) and `admin`; `ticks` prints the CPU
# serve has used so far (utime + stime, in 10 ms ticks).
# Usage: . "$here/serve-with-sink.sh" NAME
python3 "$here/sms-sink.py" &
sink=$!
rm -f "$1.out"
RUST_LOG=warn "$dfm" serve --config serve.toml > "$1.out" 2>> "$1.err" &
pid=$!
until grep -q serving "$1.out" 2>/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null; then
    kill "$sink" 2>/dev/null
    echo "dfm serve stopped before serving; its errors, from $1.err:" >&2
    tail -n 20 "$1.err" >&2
    exit 1
  fi
  sleep 0.1
done
admin=$(grep -o 'admin=http://[0-9.:]*' "$1.out" | cut -d= -f2)
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
