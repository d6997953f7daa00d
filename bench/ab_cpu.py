#!/usr/bin/env python3
"""A/B of two bootpolicy binaries on ProxyDHCP CPU per answer (the measure used for fixes found
by profiling): alternating runs at one offered rate, medians. Root; uses dhcp_bench's lab.

    bench/ab_cpu.py /tmp/bootpolicy-before .build/release/bootpolicy [--rate 10000] [--repeats 5]
"""
import argparse, os, statistics, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dhcp_bench as d  # noqa: E402
from benchlib import SRV, Lab, cpu_seconds  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("a")
ap.add_argument("b")
ap.add_argument("--rate", type=int, default=10000)
ap.add_argument("--seconds", type=int, default=4)
ap.add_argument("--repeats", type=int, default=5)
args = ap.parse_args()
res = {args.a: [], args.b: []}
with Lab() as lab:
    for rep in range(args.repeats):
        for binary in (args.a, args.b):
            with open(f"/tmp/bp-ab-{rep}.log", "w") as log:
                p = lab.spawn(SRV, d.server_cmd("bootpolicy", os.path.abspath(binary), False), log)
            if not d.wait_ready(p):
                raise SystemExit(f"{binary} never answered")
            d.perfdhcp(args.rate, 2, timers=False)  # warm the timeline past its 1,024 clients
            c0 = cpu_seconds(p.pid)
            r = d.perfdhcp(args.rate, args.seconds, timers=False)
            us = (cpu_seconds(p.pid) - c0) * 1e6 / max(1, r["received"])
            res[binary].append(us)
            print(f"{binary}: {us:.1f} µs/answer, {r['answers_per_s']:.0f} answers/s, loss {r['loss']*100:.1f}%", flush=True)
            lab.stop(p)
for binary, xs in res.items():
    print(f"median {binary}: {statistics.median(xs):.1f} µs/answer over {len(xs)} runs")
