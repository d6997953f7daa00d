#!/usr/bin/env python3
"""A/B of two bootpolicy binaries on ProxyDHCP CPU per answer (the measure used for fixes found
by profiling): alternating runs at one offered rate, medians. Root; uses dhcp_bench's lab.

    bench/ab_cpu.py /tmp/bootpolicy-before .build/release/bootpolicy [--rate 10000] [--repeats 5]
    bench/ab_cpu.py dnsmasq .build/release/bootpolicy      # against the reference
    bench/ab_cpu.py x .build/release/bootpolicy --perf /tmp/bp.perf.data   # and profile b

"dnsmasq" as a binary name runs dnsmasq with the bench's working rule. p99 comes from
perfdhcp's timestamps (-x t) of the measured run.
"""
import argparse, os, signal, statistics, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dhcp_bench as d  # noqa: E402
from benchlib import SRV, Lab, cpu_seconds  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("a")
ap.add_argument("b")
ap.add_argument("--rate", type=int, default=10000)
ap.add_argument("--seconds", type=int, default=4)
ap.add_argument("--repeats", type=int, default=5)
ap.add_argument("--perf", help="perf record -g the b server during its measured runs into this file")
args = ap.parse_args()
res = {args.a: [], args.b: []}
p99 = {args.a: [], args.b: []}
with Lab() as lab:
    for rep in range(args.repeats):
        for binary in (args.a, args.b):
            with open(f"/tmp/bp-ab-{rep}.log", "w") as log:
                kind = "dnsmasq" if binary == "dnsmasq" else "bootpolicy"
                p = lab.spawn(SRV, d.server_cmd(kind, os.path.abspath(binary), False), log)
            if not d.wait_ready(p):
                raise SystemExit(f"{binary} never answered")
            d.perfdhcp(args.rate, 2, timers=False)  # warm the timeline past its 1,024 clients
            perf = None
            if args.perf and binary == args.b:
                perf = subprocess.Popen(["perf", "record", "-F", "1999", "-g", "-o", f"{args.perf}.{rep}", "-p", str(p.pid)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            c0 = cpu_seconds(p.pid)
            r = d.perfdhcp(args.rate, args.seconds, timers=True)
            us = (cpu_seconds(p.pid) - c0) * 1e6 / max(1, r["received"])
            if perf:
                perf.send_signal(signal.SIGINT)
                perf.wait(30)
            res[binary].append(us)
            p99[binary].append(r["p99_us"] or 0)
            print(f"{binary}: {us:.1f} µs/answer, {r['answers_per_s']:.0f} answers/s, loss {r['loss']*100:.1f}%, "
                  f"p50 {r['p50_us'] or 0:.0f} µs, p99 {r['p99_us'] or 0:.0f} µs", flush=True)
            lab.stop(p)
for binary, xs in res.items():
    print(f"median {binary}: {statistics.median(xs):.1f} µs/answer, p99 {statistics.median(p99[binary]):.0f} µs over {len(xs)} runs")
