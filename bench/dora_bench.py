#!/usr/bin/env python3
"""Full DHCP benchmark: bootpolicy (durable SQLite leases) against Kea's kea-dhcp4 (memfile with
persist, multi-threading on) and dnsmasq in full DHCP mode, side by side in one run, inside the
bench namespaces (benchlib.Lab).

perfdhcp (kea-admin) runs whole DORA exchanges (DISCOVER, OFFER, REQUEST, ACK; no -i) from
10,000 clients (-R) at rising rates. perfdhcp acts as a relay: its requests carry giaddr
192.168.78.10 and every server serves them from the /16 around it (192.168.0.0/16, pool
192.168.100.0-192.168.139.255, 10,240 addresses, lease 1 h). For each server and rate: ACKs/s,
loss, p50/p99 of the whole exchange and of REQUEST/ACK, server CPU per ACK. Servers alternate
within each repeat, each from an empty lease store. Writes JSON to stdout or --out. Needs root.

`--client blaster` runs bench/dora_blaster.c (compiled here with gcc -O2) instead of perfdhcp:
the same relayed DORA from the same 10,000 clients (taken in turn rather than at random), sent in
sendmmsg batches once per millisecond with REQUESTs answered per recvmmsg batch. perfdhcp costs
about as much CPU per exchange as the servers, so on two cores its saturation figures are a
floor; the blaster costs a fraction of that. It times REQUEST -> ACK only (the p50/p99 of
DISCOVER -> OFFER are None then). Every record says which `client` ran and what it spent:
`client_cpu_us_per_ack` (the generator's utime + stime per ACK, from RUSAGE_CHILDREN).

What "durable" means differs, and the table says so: bootpolicy sends an ACK only after its
lease is committed with fsync (SQLite, state.sync full); Kea's memfile appends the lease to its
CSV file before the ACK without fsync; dnsmasq writes its lease file after answering.
"""
import argparse, json, os, resource, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import wait_answering, CLI, CLI_ADDR, SRV, SRV_ADDR, SRV_IF, Lab, cpu_seconds, status_kb, write_results  # noqa: E402

SUBNET, MASK = "192.168.0.0/16", "255.255.0.0"
POOL_START, POOL_END = "192.168.100.0", "192.168.139.255"
HERE = os.path.dirname(os.path.abspath(__file__))


def kea_config(work):
    return {"Dhcp4": {
        "interfaces-config": {"interfaces": [SRV_IF], "dhcp-socket-type": "udp"},
        "lease-database": {"type": "memfile", "persist": True, "name": os.path.join(work, "kea-leases4.csv"),
                           "lfc-interval": 0},
        "multi-threading": {"enable-multi-threading": True, "thread-pool-size": 2, "packet-queue-size": 64},
        "valid-lifetime": 3600,
        "subnet4": [{"id": 1, "subnet": SUBNET, "pools": [{"pool": f"{POOL_START} - {POOL_END}"}]}],
        "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": "stdout"}], "severity": "WARN"}],
    }}


def server_cmd(kind, binary, work):
    if kind == "kea":
        path = os.path.join(work, "kea-dhcp4.json")
        with open(path, "w") as f:
            json.dump(kea_config(work), f)
        return ["env", f"KEA_PIDFILE_DIR={work}", "KEA_LOCKFILE_DIR=none", "kea-dhcp4", "-c", path]
    if kind == "dnsmasq":
        return ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", f"--interface={SRV_IF}",
                "--bind-interfaces", f"--dhcp-range={POOL_START},{POOL_END},{MASK},1h",
                f"--dhcp-leasefile={os.path.join(work, 'dnsmasq.leases')}", "--dhcp-lease-max=20000",
                "--no-ping", "--dhcp-authoritative", "--quiet-dhcp", "--log-facility=-"]
    extra = []
    if kind == "bootpolicy-normal":
        # state.sync normal: a commit survives a crash of the process, not a power loss (no
        # fsync per commit), which is what Kea's memfile and dnsmasq's lease file give.
        path = os.path.join(work, "bootpolicy.yaml")
        with open(path, "w") as f:
            f.write("state:\n  sync: normal\n")
        extra = ["--config", path]
    return [binary, "serve", "--interface", SRV_IF, "--no-tftp", "--no-http", "--no-proxy", "--dhcp-port", "67",
            "--state", os.path.join(work, "state.db"), "--no-ping", "--policy", "default", "--log-level", "warning",
            "--dhcp-range", f"{POOL_START},{POOL_END},{MASK},1h"] + extra


def parse(out, seconds):
    section = None
    stats = {}
    lat = {"DISCOVER-OFFER": [], "REQUEST-ACK": []}
    for line in out.splitlines():
        if line.startswith("***Statistics for: "):
            section = line.split(":", 1)[1].strip(" *")
            stats.setdefault(section, {})
        elif line.startswith("***Timestamps for packets: "):
            section = line.split(":", 1)[1].strip(" *")
        elif section and line.startswith("sent packets:"):
            stats[section]["sent"] = int(line.split(":")[1])
        elif section and line.startswith("received packets:"):
            stats[section]["received"] = int(line.split(":")[1])
        elif section and line.startswith("sent / received:"):  # -x t: one line per exchange
            a, b = line.split(":", 1)[1].split("/")
            lat.setdefault(section, []).append((float(b) - float(a)) * 1e6)
    return stats, lat


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def children_cpu():
    """(utime, stime) of every child waited for so far (the load generator, once it has exited)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime, r.ru_stime


def client_cpu(r, cpu0):
    """The generator's CPU since `cpu0`, per ACK, and its system share: on a veth the kernel
    delivers each sent packet into the server's socket in the sender's context, so most of a
    cheap generator's time is system time that is the server's receive path."""
    user, system = (b - a for a, b in zip(cpu0, children_cpu()))
    r["client_cpu_us_per_ack"] = ((user + system) * 1e6 / r["acks"]) if r["acks"] else None
    r["client_cpu_s"], r["client_sys_s"] = user + system, system
    return r


def perfdhcp(rate, seconds, clients, timers=True):
    # -l ADDR plus the server's address: perfdhcp is a relay (giaddr ADDR, port 67 to port 67).
    cmd = ["ip", "netns", "exec", CLI, "perfdhcp", "-4", "-l", CLI_ADDR, "-r", str(rate), "-p", str(seconds),
           "-R", str(clients)]
    if timers:
        cmd += ["-x", "t"]
    cmd.append(SRV_ADDR)
    cpu0 = children_cpu()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    stats, lat = parse(out, seconds)
    do, ra = stats.get("DISCOVER-OFFER", {}), stats.get("REQUEST-ACK", {})
    acks = ra.get("received", 0)
    return client_cpu({"client": "perfdhcp", "offered": rate, "seconds": seconds, "discovers": do.get("sent", 0),
            "offers": do.get("received", 0), "requests": ra.get("sent", 0), "acks": acks, "acks_per_s": acks / seconds,
            "loss": (1 - acks / do["sent"]) if do.get("sent") else 1.0,
            "p50_offer_us": pct(lat["DISCOVER-OFFER"], 0.5), "p99_offer_us": pct(lat["DISCOVER-OFFER"], 0.99),
            "p50_ack_us": pct(lat["REQUEST-ACK"], 0.5), "p99_ack_us": pct(lat["REQUEST-ACK"], 0.99),
            "p99_dora_us": (pct(lat["DISCOVER-OFFER"], 0.99) or 0) + (pct(lat["REQUEST-ACK"], 0.99) or 0)}, cpu0)


def build_blaster():
    """bench/dora_blaster.c compiled into a fresh temp folder; the binary's path."""
    exe = os.path.join(tempfile.mkdtemp(prefix="bp-dora-blaster-"), "dora_blaster")
    subprocess.run(["gcc", "-O2", "-pthread", "-o", exe, os.path.join(HERE, "dora_blaster.c")], check=True)
    return exe


def blaster(exe, rate, seconds, clients):
    """One dora_blaster run from the client namespace (it binds CLI_ADDR:67 as a relay and
    stops itself within seconds + 2 s), as the record perfdhcp() gives; no DISCOVER -> OFFER
    timing. `ip netns exec` execs the blaster, so RUSAGE_CHILDREN's delta is its own CPU."""
    cmd = ["ip", "netns", "exec", CLI, exe, CLI_ADDR, SRV_ADDR, str(rate), str(seconds), str(clients)]
    cpu0 = children_cpu()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 10)
    lines = [l for l in p.stdout.splitlines() if l.startswith("discovers=")]
    if not lines:
        raise SystemExit(f"dora_blaster gave no result (exit {p.returncode}): {p.stderr.strip()}")
    f = dict(kv.split("=") for kv in lines[-1].split())
    discovers, acks = int(f["discovers"]), int(f["acks"])
    us = lambda k: float(f[k]) if float(f[k]) >= 0 else None  # noqa: E731
    return client_cpu({"client": "blaster", "offered": rate, "seconds": seconds, "discovers": discovers,
            "offers": int(f["offers"]), "requests": int(f["requests"]), "acks": acks, "naks": int(f["naks"]),
            "acks_per_s": acks / seconds, "loss": (1 - acks / discovers) if discovers else 1.0,
            "send_seconds": float(f["seconds"]), "p50_offer_us": None, "p99_offer_us": None,
            "p50_ack_us": us("p50_ack_us"), "p99_ack_us": us("p99_ack_us"), "p99_dora_us": None}, cpu0)


def wait_ready(p, timeout=30):
    return wait_answering(p, lambda: perfdhcp(20, 1, 20, timers=False)["acks"] > 0, timeout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/bootpolicy")
    ap.add_argument("--rates", default="1000,4000,8000,12000,16000,20000,30000")
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--servers", default="kea,dnsmasq,bootpolicy,bootpolicy-normal")
    ap.add_argument("--before-binary", help="another bootpolicy build, run as server kind bootpolicy-before "
                    "(the same flags as bootpolicy), to compare two builds in one run")
    ap.add_argument("--client", choices=("perfdhcp", "blaster"), default="perfdhcp",
                    help="load generator: Kea's perfdhcp (default) or bench/dora_blaster.c")
    ap.add_argument("--out")
    ap.add_argument("--logdir", default="/tmp/bp-bench-logs")
    args = ap.parse_args()
    os.makedirs(args.logdir, exist_ok=True)
    binary = os.path.abspath(args.binary)
    rates = [int(r) for r in args.rates.split(",")]
    exe = build_blaster() if args.client == "blaster" else None
    results = []
    with Lab() as lab:
        for rep in range(args.repeats):
            for kind in args.servers.split(","):
                work = tempfile.mkdtemp(prefix=f"bp-dora-{kind}-")
                os.chmod(work, 0o755)
                logpath = os.path.join(args.logdir, f"dora-{kind}-{rep}.log")
                try:
                    with open(logpath, "w") as log:
                        if kind == "bootpolicy-before":
                            if not args.before_binary:
                                raise SystemExit("server bootpolicy-before needs --before-binary")
                            cmd = server_cmd("bootpolicy", os.path.abspath(args.before_binary), work)
                        else:
                            cmd = server_cmd(kind, binary, work)
                        p = lab.spawn(SRV, cmd, log)
                    if not wait_ready(p):
                        raise SystemExit(f"{kind} never ACKed; see {logpath}")
                    for rate in rates:
                        cpu0 = cpu_seconds(p.pid)
                        if exe:
                            r = blaster(exe, rate, args.seconds, args.clients)
                        else:
                            r = perfdhcp(rate, args.seconds, args.clients)
                        cpu = cpu_seconds(p.pid) - cpu0
                        r.update(server=kind, repeat=rep,
                                 cpu_us_per_ack=(cpu * 1e6 / r["acks"]) if r["acks"] else None,
                                 peak_rss_kb=status_kb(p.pid, "VmHWM"))
                        results.append(r)
                        print(f"{kind:17} rep={rep} offered={rate:6} acks/s={r['acks_per_s']:8.0f} loss={r['loss']*100:5.1f}% "
                              f"p50 offer/ack={r['p50_offer_us'] or 0:6.0f}/{r['p50_ack_us'] or 0:6.0f}us "
                              f"p99 offer/ack={r['p99_offer_us'] or 0:7.0f}/{r['p99_ack_us'] or 0:7.0f}us "
                              f"cpu/ack={r['cpu_us_per_ack'] or 0:6.1f}us client cpu/ack={r['client_cpu_us_per_ack'] or 0:6.1f}us"
                              + (f" naks={r['naks']}" if r.get("naks") else ""), file=sys.stderr, flush=True)
                    lab.stop(p)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
    write_results(results, args.out)


if __name__ == "__main__":
    main()
