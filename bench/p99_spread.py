#!/usr/bin/env python3
"""Where in a run do the slow ProxyDHCP exchanges fall? For each server: the bench's rate
sequence up to 10,000/s (1,000 and 5,000 for 3 s each, as dhcp_bench runs them), then for the
10,000/s run the exchanges over 1 ms and the slowest one per quarter second, and separately in
the first 100 ms, from perfdhcp's per-exchange timestamps. Stalls that hit both servers at
random moments (the machine's other tenants) look like scattered bursts; a cost of our own
would show in every bucket. Root; uses dhcp_bench's lab.

    bench/p99_spread.py .build/release/bootpolicy dnsmasq [--runs 3]
"""
import argparse, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dhcp_bench as d  # noqa: E402
from benchlib import SRV, Lab  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("servers", nargs="+", help="bootpolicy binaries, or dnsmasq")
ap.add_argument("--runs", type=int, default=1)
args = ap.parse_args()

with Lab() as lab:
    for _ in range(args.runs):
        for server in args.servers:
            kind = "dnsmasq" if server == "dnsmasq" else "bootpolicy"
            with open("/tmp/bp-p99-spread.log", "w") as log:
                p = lab.spawn(SRV, d.server_cmd(kind, os.path.abspath(server), False), log)
            if not d.wait_ready(p):
                raise SystemExit(f"{server} never answered (/tmp/bp-p99-spread.log)")
            d.perfdhcp(1000, 3, timers=False)
            d.perfdhcp(5000, 3, timers=False)
            pairs = []
            d.perfdhcp(10000, 3, exchanges=pairs)
            lab.stop(p)
            if not pairs:
                print(f"{server}: no exchanges timed")
                continue
            t0 = pairs[0][0]
            buckets = {}
            for sent, latency in pairs:
                n, slow, worst = buckets.get(int((sent - t0) / 0.25), (0, 0, 0))
                buckets[int((sent - t0) / 0.25)] = (n + 1, slow + (latency > 1000), max(worst, latency))
            first = [latency for sent, latency in pairs if sent - t0 < 0.1]
            latencies = sorted(latency for _, latency in pairs)
            print(f"{server}: p99 {latencies[int(len(latencies) * 0.99)]:.0f} µs; first 100 ms: "
                  f"{sum(x > 1000 for x in first)}/{len(first)} over 1 ms; per 0.25 s (over 1 ms/all:slowest µs): "
                  + " ".join(f"{slow}/{n}:{worst:.0f}" for _, (n, slow, worst) in sorted(buckets.items())), flush=True)
