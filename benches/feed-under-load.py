#!/usr/bin/env python3
"""Feeds a running `dfm serve` and measures it from outside while the feed runs.

Usage:
  dfm generate --families 20000 --seed 1 --out feed.ndjson
  benches/feed-under-load.py --public URL --admin URL --config dfm.toml \
      --events feed.ndjson --prefix r2- --families-stored 6000000

The events (the output of `dfm generate`) are re-labelled with `--prefix` in front of
every event id, so that a store loaded from the same seed takes them as new events
(updates of families it already has), grouped per agency into NDJSON bodies of
`--batch` lines and posted with `--concurrency` requests in flight (a 503 is retried
after a second). Meanwhile two probes read `GET /v1/stats` and
`GET /v1/families/{random stored id}` one after the other as an operator. Prints the
accepted events/s (first POST to last 200) and the probes' p50/p99/max. Python's
standard library and curl; loopback only.
"""

import argparse
import json
import random
import re
import subprocess
import shutil
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.request


def tokens(config_path):
    with open(config_path, "rb") as handle:
        config = tomllib.load(handle)
    agencies = {agency["name"]: agency["token"] for agency in config["agency"]}
    operator = next(o["token"] for o in config["operator"] if o["role"] == "operator")
    return agencies, operator


def bodies(path, prefix, batch, directory):
    """Writes the NDJSON bodies to files in `directory`; returns (agency, events, path)."""
    per_agency = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            event = json.loads(line)
            agency = event.pop("agency")
            event["id"] = prefix + event["id"]
            per_agency.setdefault(agency, []).append(json.dumps(event, ensure_ascii=False))
    # Agencies in the order a population arrives: people and families first.
    order = ["population", "income", "health", "housing", "education", "social", "payments"]
    result = []
    for agency in order + sorted(set(per_agency) - set(order)):
        lines = per_agency.get(agency, [])
        for start in range(0, len(lines), batch):
            chunk = lines[start:start + batch]
            body_path = f"{directory}/{len(result):06d}.ndjson"
            with open(body_path, "w", encoding="utf-8") as out:
                out.write("\n".join(chunk) + "\n")
            result.append((agency, len(chunk), body_path))
    return result


def post(url, token, body_path):
    """Posts one body with curl (the client must not be the bottleneck); retries 503."""
    while True:
        result = subprocess.run(
            ["curl", "-s", "-w", "\n%{http_code}", "-X", "POST", "--data-binary", f"@{body_path}",
             "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/x-ndjson", url],
            capture_output=True, text=True, check=True)
        answer, _, code = result.stdout.rpartition("\n")
        if code == "503":
            time.sleep(1)
            continue
        if code != "200":
            raise SystemExit(f"{url}: HTTP {code}: {answer[:200]}")
        return json.loads(answer)


def probe(url_of, token, stop, latencies):
    while not stop.is_set():
        request = urllib.request.Request(url_of(), headers={"Authorization": f"Bearer {token}"})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
        latencies.append(time.perf_counter() - started)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--public", required=True)
    parser.add_argument("--admin", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--prefix", default="r2-")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--families-stored", type=int, required=True)
    arguments = parser.parse_args()
    if not re.match(r"^http://127\.0\.0\.1:\d+$", arguments.public) or \
            not re.match(r"^http://127\.0\.0\.1:\d+$", arguments.admin):
        raise SystemExit("loopback URLs only, e.g. http://127.0.0.1:8080")
    agency_tokens, operator = tokens(arguments.config)
    directory = tempfile.mkdtemp(prefix="dfm-feed-")
    work = bodies(arguments.events, arguments.prefix, arguments.batch, directory)
    total = sum(count for _, count, _ in work)

    stop = threading.Event()
    stats_latencies, family_latencies = [], []
    stored = arguments.families_stored
    probes = [
        threading.Thread(target=probe, args=(lambda: f"{arguments.admin}/v1/stats", operator,
                                             stop, stats_latencies)),
        threading.Thread(target=probe, args=(
            lambda: f"{arguments.admin}/v1/families/F{random.randrange(stored):08d}", operator,
            stop, family_latencies)),
    ]
    for thread in probes:
        thread.start()

    answers = {"accepted": 0, "duplicates": 0, "rejected": 0}
    lock = threading.Lock()
    queue = list(reversed(work))

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                agency, _, body = queue.pop()
            answer = post(f"{arguments.public}/v1/feeds/{agency}/events", agency_tokens[agency], body)
            with lock:
                answers["accepted"] += answer["accepted"]
                answers["duplicates"] += answer["duplicates"]
                answers["rejected"] += len(answer["rejected"])

    started = time.perf_counter()
    workers = [threading.Thread(target=worker) for _ in range(arguments.concurrency)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    stop.set()
    for thread in probes:
        thread.join()
    shutil.rmtree(directory, ignore_errors=True)

    print(f"families stored: {stored:,}; events posted: {total:,} in {len(work)} requests, "
          f"{arguments.concurrency} in flight")
    print(f"answers: {answers['accepted']:,} accepted, {answers['duplicates']:,} duplicates, "
          f"{answers['rejected']:,} rejected")
    print(f"accepted: {answers['accepted'] / elapsed:,.0f} events/s ({elapsed:.1f} s)")
    for name, values in [("GET /v1/stats", stats_latencies),
                         ("GET /v1/families/{id}", family_latencies)]:
        print(f"{name} during the feed: {len(values)} reads, p50 {percentile(values, 0.5) * 1e3:.1f} ms, "
              f"p99 {percentile(values, 0.99) * 1e3:.1f} ms, max {max(values) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
