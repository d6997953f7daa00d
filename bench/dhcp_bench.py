#!/usr/bin/env python3
"""ProxyDHCP benchmark: bootpolicy (default Lua policy) against dnsmasq (the seed's rule in its
working form), side by side in one run, inside two network namespaces joined by a veth.

perfdhcp (Debian's kea-admin) offers PXE DISCOVERs from many MACs at rising rates; for each
server and rate we record answers/s, loss, p50/p99 latency (from perfdhcp's per-exchange
timers) and the server's CPU time per answer (from /proc/PID/stat). Servers alternate within
each repeat so drift on a shared machine hits both. Writes JSON to stdout or --out. Needs
root. Everything it creates is removed on exit (benchlib.Lab).

Logging "off" means no per-exchange line from either server (dnsmasq --quiet-dhcp, bootpolicy
--log-level warning); "on" means one per exchange (dnsmasq --log-dhcp, bootpolicy info).
"""
import argparse, json, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import wait_answering, CLI, CLI_IF, SRV, SRV_ADDR, SRV_IF, Lab, cpu_seconds, status_kb, write_results  # noqa: E402

PXE_VENDOR = "PXEClient:Arch:00000:UNDI:002001".encode().hex()


def server_cmd(kind, binary, logging):
    if kind == "dnsmasq":
        return ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", f"--interface={SRV_IF}",
                "--bind-interfaces", f"--dhcp-range={SRV_ADDR},proxy", "--dhcp-match=IPXEBOOT,175",
                f"--dhcp-boot=net:IPXEBOOT,bootstrap.ipxe,,{SRV_ADDR}", f"--dhcp-boot=undionly.kpxe,,{SRV_ADDR}",
                "--pxe-prompt=PXE,0", "--log-facility=-"] + (["--log-dhcp"] if logging else ["--quiet-dhcp"])
    return [binary, "serve", "--interface", SRV_IF, "--no-tftp", "--no-http", "--policy", "default",
            "--log-level", "info" if logging else "warning"]


def perfdhcp(rate, seconds, clients=100000, timers=True, exchanges=None):
    """One perfdhcp run; with `exchanges` (a list) each exchange's (sent time s, latency µs) is
    appended to it too."""
    # -i: DISCOVER/OFFER only; -R: random MACs out of `clients`; options 60/93/94 make it PXE.
    cmd = ["ip", "netns", "exec", CLI, "perfdhcp", "-4", "-l", CLI_IF, "-r", str(rate), "-p", str(seconds),
           "-R", str(clients), "-i", "-o", f"60,{PXE_VENDOR}", "-o", "93,0000", "-o", "94,010201"]
    if timers:
        cmd += ["-x", "t"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    sent = recv = 0
    lat = []
    stats = False
    for line in out.splitlines():
        if line.startswith("***Statistics for: DISCOVER-OFFER"):
            stats = True
        elif stats and line.startswith("sent packets:"):
            sent = int(line.split(":")[1])
        elif stats and line.startswith("received packets:"):
            recv = int(line.split(":")[1])
        elif line.startswith("sent / received:"):
            a, b = line.split(":", 1)[1].split("/")
            lat.append((float(b) - float(a)) * 1e6)
            if exchanges is not None:
                exchanges.append((float(a), lat[-1]))
    lat.sort()

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None
    return {"offered": rate, "seconds": seconds, "sent": sent, "received": recv,
            "loss": (1 - recv / sent) if sent else 1.0, "answers_per_s": recv / seconds,
            "p50_us": pct(0.50), "p99_us": pct(0.99)}


def wait_ready(p, timeout=30):
    return wait_answering(p, lambda: perfdhcp(20, 1, clients=20, timers=False)["received"] > 0, timeout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/bootpolicy")
    ap.add_argument("--rates", default="1000,5000,10000,15000,20000,25000,30000,40000")
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--logging", default="off,on")
    ap.add_argument("--servers", default="dnsmasq,bootpolicy")
    ap.add_argument("--out")
    ap.add_argument("--logdir", default="/tmp/bp-bench-logs")
    args = ap.parse_args()
    os.makedirs(args.logdir, exist_ok=True)
    binary = os.path.abspath(args.binary)
    rates = [int(r) for r in args.rates.split(",")]
    results = []
    with Lab() as lab:
        for logging in [x == "on" for x in args.logging.split(",")]:
            for rep in range(args.repeats):
                for kind in args.servers.split(","):
                    logpath = os.path.join(args.logdir, f"{kind}-{'log' if logging else 'nolog'}-{rep}.log")
                    with open(logpath, "w") as log:
                        p = lab.spawn(SRV, server_cmd(kind, binary, logging), log)
                    if not wait_ready(p):
                        raise SystemExit(f"{kind} never answered; see {logpath}")
                    for rate in rates:
                        cpu0 = cpu_seconds(p.pid)
                        r = perfdhcp(rate, args.seconds)
                        cpu = cpu_seconds(p.pid) - cpu0
                        r.update(server=kind, logging=logging, repeat=rep,
                                 cpu_us_per_answer=(cpu * 1e6 / r["received"]) if r["received"] else None,
                                 peak_rss_kb=status_kb(p.pid, "VmHWM"))
                        results.append(r)
                        print(f"{kind:10} log={'on ' if logging else 'off'} rep={rep} offered={rate:6} "
                              f"answers/s={r['answers_per_s']:8.0f} loss={r['loss']*100:5.1f}% "
                              f"p50={r['p50_us'] or 0:7.0f}us p99={r['p99_us'] or 0:8.0f}us "
                              f"cpu/answer={r['cpu_us_per_answer'] or 0:5.1f}us", file=sys.stderr, flush=True)
                    lab.stop(p)
    write_results(results, args.out)


if __name__ == "__main__":
    main()
