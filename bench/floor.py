#!/usr/bin/env python3
"""CPU per ProxyDHCP answer at one rate for the floor (bench/floor_responder.c: wait, receive,
send a canned reply), dnsmasq and bootpolicy, alternating, medians: how much of each server's
figure is the kernel's wake-up and two socket calls, and how much its own work. Root; uses
dhcp_bench's lab (namespaces torn down on exit).

    bench/floor.py [--binary .build/release/bootpolicy] [--rate 10000] [--repeats 5]
"""
import argparse, os, statistics, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dhcp_bench as d  # noqa: E402
from benchlib import SRV, SRV_IF, Lab, cpu_seconds  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--binary", default=".build/release/bootpolicy")
ap.add_argument("--rate", type=int, default=10000)
ap.add_argument("--seconds", type=int, default=4)
ap.add_argument("--repeats", type=int, default=5)
args = ap.parse_args()

floor = os.path.join(tempfile.mkdtemp(prefix="bp-floor-"), "floor_responder")
subprocess.run(["gcc", "-O2", "-o", floor, os.path.join(HERE, "floor_responder.c")], check=True)
servers = {"floor": [floor, SRV_IF], "dnsmasq": d.server_cmd("dnsmasq", "", False),
           "bootpolicy": d.server_cmd("bootpolicy", os.path.abspath(args.binary), False)}
res = {name: [] for name in servers}
with Lab() as lab:
    for rep in range(args.repeats):
        for name, cmd in servers.items():
            with open(f"/tmp/bp-floor-{name}.log", "w") as log:
                p = lab.spawn(SRV, cmd, log)
            if not d.wait_ready(p):
                raise SystemExit(f"{name} never answered (/tmp/bp-floor-{name}.log)")
            d.perfdhcp(args.rate, 2, timers=False)
            c0 = cpu_seconds(p.pid)
            r = d.perfdhcp(args.rate, args.seconds, timers=False)
            res[name].append((cpu_seconds(p.pid) - c0) * 1e6 / max(1, r["received"]))
            print(f"{name}: {res[name][-1]:.1f} µs/answer ({r['received']} answers)", flush=True)
            lab.stop(p)
for name, xs in res.items():
    print(f"median {name}: {statistics.median(xs):.1f} µs/answer over {len(xs)} runs")
