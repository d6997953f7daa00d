#!/usr/bin/env python3
"""ProxyDHCP benchmark: bootpolicy (default Lua policy) against dnsmasq (the seed's rule in its
working form), side by side in one run, inside two network namespaces joined by a veth.

perfdhcp (Debian's kea-admin) offers PXE DISCOVERs from many MACs at rising rates; for each
server and rate we record answers/s, loss, p50/p99 latency (from perfdhcp's per-exchange
timers) and the server's CPU time per answer (from /proc/PID/stat). Writes JSON to stdout or
--out. Needs root. Everything it creates is removed on exit.
"""
import argparse, json, os, signal, statistics, subprocess, sys, time

SRV, CLI = "bp-bench-srv", "bp-bench-cli"
SRV_IF, CLI_IF = "bpb-s", "bpb-c"
SRV_ADDR, CLI_ADDR = "192.168.78.1", "192.168.78.10"
PXE_VENDOR = "PXEClient:Arch:00000:UNDI:002001".encode().hex()
TICKS = os.sysconf("SC_CLK_TCK")


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, **kw)


def netns_up():
    netns_down()
    sh("ip", "netns", "add", SRV); sh("ip", "netns", "add", CLI)
    sh("ip", "link", "add", SRV_IF, "type", "veth", "peer", "name", CLI_IF)
    sh("ip", "link", "set", SRV_IF, "netns", SRV); sh("ip", "link", "set", CLI_IF, "netns", CLI)
    for ns, ifname, addr in ((SRV, SRV_IF, SRV_ADDR), (CLI, CLI_IF, CLI_ADDR)):
        sh("ip", "-n", ns, "addr", "add", addr + "/24", "dev", ifname)
        sh("ip", "-n", ns, "link", "set", ifname, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")


def netns_down():
    for ns in (SRV, CLI):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def start_server(kind, binary, logging, logdir):
    log = open(os.path.join(logdir, f"{kind}-{'log' if logging else 'nolog'}.log"), "w")
    if kind == "dnsmasq":
        cmd = ["dnsmasq", "--no-daemon", "--port=0", f"--interface={SRV_IF}", "--bind-interfaces",
               f"--dhcp-range={SRV_ADDR},proxy", "--dhcp-match=IPXEBOOT,175",
               f"--dhcp-boot=net:IPXEBOOT,bootstrap.ipxe,,{SRV_ADDR}", f"--dhcp-boot=undionly.kpxe,,{SRV_ADDR}",
               "--pxe-prompt=PXE,0", "--log-facility=-"] + (["--log-dhcp"] if logging else [])
    else:
        cmd = [binary, "serve", "--interface", SRV_IF, "--no-tftp", "--no-http", "--policy", "default",
               "--log-level", "info" if logging else "warning"]
    p = subprocess.Popen(["ip", "netns", "exec", SRV] + cmd, stdout=log, stderr=subprocess.STDOUT)
    return p


def perfdhcp(rate, seconds, clients=100000, timers=True):
    cmd = ["ip", "netns", "exec", CLI, "perfdhcp", "-4", "-l", CLI_IF, "-r", str(rate), "-p", str(seconds),
           "-R", str(clients), "-i", "-o", f"60,{PXE_VENDOR}", "-o", "93,0000", "-o", "94,010201"]
    if timers:
        cmd += ["-x", "t"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    sent = recv = 0
    lat = []
    section = None
    for line in out.splitlines():
        if line.startswith("***Statistics for: DISCOVER-OFFER"):
            section = "stats"
        if section == "stats" and line.startswith("sent packets:"):
            sent = int(line.split(":")[1])
        if section == "stats" and line.startswith("received packets:"):
            recv = int(line.split(":")[1])
        if line.startswith("sent / received:"):
            a, b = line.split(":", 1)[1].split("/")
            lat.append((float(b) - float(a)) * 1e6)
    lat.sort()
    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None
    return {"offered": rate, "seconds": seconds, "sent": sent, "received": recv,
            "loss": (1 - recv / sent) if sent else 1.0, "answers_per_s": recv / seconds,
            "p50_us": pct(0.50), "p99_us": pct(0.99)}


def wait_ready(timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = perfdhcp(10, 1, clients=10, timers=False)
        if r["received"] > 0:
            return True
        time.sleep(0.5)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/bootpolicy")
    ap.add_argument("--rates", default="1000,5000,10000,20000,30000,40000")
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--logging", default="off,on")
    ap.add_argument("--out")
    ap.add_argument("--logdir", default="/tmp/bp-bench-logs")
    args = ap.parse_args()
    os.makedirs(args.logdir, exist_ok=True)
    rates = [int(r) for r in args.rates.split(",")]
    results = []
    procs = []

    def cleanup(*_):
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try: p.wait(5)
                except subprocess.TimeoutExpired: p.kill()
        netns_down()
    signal.signal(signal.SIGTERM, lambda *a: (cleanup(), sys.exit(1)))
    try:
        netns_up()
        for logging in [l == "on" for l in args.logging.split(",")]:
            for rep in range(args.repeats):
                # Servers alternate within each repeat so drift on a shared machine hits both.
                for kind in ("dnsmasq", "bootpolicy"):
                    p = start_server(kind, args.binary, logging, args.logdir)
                    procs.append(p)
                    if not wait_ready():
                        raise SystemExit(f"{kind} never answered; see {args.logdir}")
                    # `ip netns exec` execs the server, so the Popen pid is the server's pid.
                    for rate in rates:
                        cpu0 = cpu_seconds(p.pid)
                        r = perfdhcp(rate, args.seconds)
                        cpu = cpu_seconds(p.pid) - cpu0
                        r.update(server=kind, logging=logging, repeat=rep,
                                 cpu_us_per_answer=(cpu * 1e6 / r["received"]) if r["received"] else None,
                                 peak_rss_kb=rss_kb(p.pid))
                        results.append(r)
                        print(f"{kind:10} log={'on ' if logging else 'off'} rep={rep} offered={rate:6} "
                              f"answers/s={r['answers_per_s']:8.0f} loss={r['loss']*100:5.1f}% "
                              f"p50={r['p50_us'] or 0:7.0f}us p99={r['p99_us'] or 0:8.0f}us "
                              f"cpu/answer={r['cpu_us_per_answer'] or 0:5.1f}us", file=sys.stderr, flush=True)
                    p.terminate(); p.wait(10)
    finally:
        cleanup()
    text = json.dumps(results, indent=1)
    if args.out:
        open(args.out, "w").write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
