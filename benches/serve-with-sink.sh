# Sourced by the bench scripts, in the store's directory, with `here` (the
# benches folder) and `dfm` (the binary) set: starts the SMS sink and
# `dfm serve --config serve.toml`, its output in NAME.out and NAME.err, and
# waits until it serves. Sets `sink` and `pid` (to stop them) and `admin`.
# Usage: . "$here/serve-with-sink.sh" NAME
python3 "$here/sms-sink.py" &
sink=$!
rm -f "$1.out"
RUST_LOG=warn "$dfm" serve --config serve.toml > "$1.out" 2>> "$1.err" &
pid=$!
until grep -q serving "$1.out" 2>/dev/null; do sleep 0.1; done
admin=$(grep -o 'admin=http://[0-9.:]*' "$1.out" | cut -d= -f2)
