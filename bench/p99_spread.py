#!/usr/bin/env python3
"""Where in a run do the slow ProxyDHCP exchanges fall? For each server: the bench's rate
sequence up to 10,000/s (1,000 and 5,000 for 3 s each, as dhcp_bench runs them), then for the
10,000/s run the exchanges over 1 ms per quarter second and the slowest, from perfdhcp's
per-exchange timestamps. Stalls that hit both servers at random moments (the machine's other
tenants) look like scattered bursts; a cost of our own would show in every bucket or at the
start. Root; uses dhcp_bench's lab.

    bench/p99_spread.py .build/release/bootpolicy dnsmasq
"""
import os, sys, subprocess
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dhcp_bench as d
from benchlib import SRV, CLI, CLI_IF, Lab
def run(rate, seconds):
    cmd = ["ip", "netns", "exec", CLI, "perfdhcp", "-4", "-l", CLI_IF, "-r", str(rate), "-p", str(seconds),
           "-R", "100000", "-i", "-o", f"60,{d.PXE_VENDOR}", "-o", "93,0000", "-o", "94,010201", "-x", "t"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    pairs = []
    for line in out.splitlines():
        if line.startswith("sent / received:"):
            a, b = line.split(":", 1)[1].split("/")
            pairs.append((float(a), (float(b) - float(a)) * 1e6))
    return pairs
with Lab() as lab:
    for b in sys.argv[1:]:
        kind = "dnsmasq" if b == "dnsmasq" else "bootpolicy"
        p = lab.spawn(SRV, d.server_cmd(kind, b, False), open("/tmp/bp-p99-spread.log", "w"))
        d.wait_ready(p)
        run(1000, 3); run(5000, 3)
        pairs = run(10000, 3)
        t0 = pairs[0][0]
        buckets = {}
        for t, lat in pairs:
            k = int((t - t0) / 0.25)
            n, slow, mx = buckets.get(k, (0, 0, 0))
            buckets[k] = (n + 1, slow + (lat > 1000), max(mx, lat))
        lats = sorted(l for _, l in pairs)
        print(b, "p99", round(lats[int(len(lats) * .99)]), "by 0.25 s: slow(>1ms)/n max_us:", " ".join(f"{s}/{n}:{int(m)}" for k, (n, s, m) in sorted(buckets.items())))
        lab.stop(p)
