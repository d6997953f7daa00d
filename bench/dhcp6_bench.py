#!/usr/bin/env python3
"""DHCPv6 benchmark: Solicit/Advertise answers per second, bootpolicy (`serve --dhcp6`, stateful
and boot-only) against Kea's kea-dhcp6 (memfile, multi-threading on), side by side in one run,
inside the bench namespaces (benchlib.Lab with IPv6: fd78::1/64 on bpb-s, fd78::10/64 on bpb-c,
nothing outside them).

perfdhcp -6 (kea-admin) in bp-bench-cli sends Solicits to ff02::1:2 out of bpb-c (`-l bpb-c`;
its source is fd78::10, the interface's address it picks; Kea listens on the group and its
link-local address only, so multicast is what both servers answer), `-i`
(Solicit/Advertise only, no Request), from `--clients` DUIDs (-R) at rising rates. Two kinds
of Solicit:

- **netboot**: with option 61 (client architecture 7, EFI x64) and vendor class option 16
  (enterprise 343, `PXEClient:Arch:00007:UNDI:003000`), as OVMF's PXEv6 sends: bootpolicy asks
  its Lua policy (`default`) for every one of these.
- **plain**: perfdhcp's own Solicit (Client ID, IA_NA, elapsed time, ORO): an address Solicit
  the policy is not asked about. bootpolicy boot-only does not answer these (by design), so
  that pair is not run.

Servers, alternating within each repeat (a shared machine: medians over repeats):

- **bootpolicy** (stateful): `--dhcp6 --dhcp-range POOL,64,1h --state memory --no-dhcp`: an
  IA_NA address from the pool (held for 60 s, nothing written) plus, for netboot Solicits,
  the policy's boot file URL (option 59).
- **bootpolicy-boot** (boot-only, no range): the boot file URL and vendor class PXEClient, no
  address: what it does beside a site DHCPv6 server.
- **bootpolicy-before** (stateful, as `bootpolicy`, from `--before-binary`): an older build,
  for a before/after pair measured in the same run, alternating with the others.
- **kea**: kea-dhcp6 2.2, memfile lease database with persist (its file in the run's temporary
  folder; a Solicit/Advertise writes no lease), multi-threading (2 threads, queue 64), subnet
  fd78::/64 with the same pool on bpb-s, and option 59 `bootfile-url` always sent.

For each server, kind and rate: Advertises/s, loss, p50/p99 (perfdhcp's per-exchange timers,
`-x t`), server CPU per Advertise (/proc/PID/stat) and peak RSS. Then, past perfdhcp's own
ceiling, netboot Solicits from bench/dhcp6_blaster.c (sendmmsg batches, recvmmsg counting, a
few µs per exchange; `--blaster-rates`, "" to skip): answers/s, loss and CPU per answer only.
JSON to stdout or --out. Needs root; everything it creates is removed on exit.
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (wait_answering, CLI, CLI_ADDR6, CLI_IF, SRV, SRV_ADDR6, SRV_IF, PREFIX6, Lab, cpu_seconds,  # noqa: E402
                      status_kb, write_results)

# bootpolicy takes at most 2^20 addresses in one range, so the pool is fd78::1:0-fd78::10:ffff
# (1,048,576 addresses) for every server.
POOL_START, POOL_END = "fd78::1:0", "fd78::10:ffff"
BOOT_URL = f"tftp://[{SRV_ADDR6}]/ipxe.efi"
PXE_VENDOR = "PXEClient:Arch:00007:UNDI:003000"
# Option 16: enterprise 343, then one vendor-class-data item (2-byte length, the string).
VENDOR_CLASS_HEX = "00000157" + f"{len(PXE_VENDOR):04x}" + PXE_VENDOR.encode().hex()
NETBOOT_OPTIONS = ["-o", "61,0007", "-o", f"16,{VENDOR_CLASS_HEX}"]


def kea_config(work):
    return {"Dhcp6": {
        "interfaces-config": {"interfaces": [SRV_IF]},
        "data-directory": work,
        "lease-database": {"type": "memfile", "persist": True, "name": os.path.join(work, "kea-leases6.csv"),
                           "lfc-interval": 0},
        "multi-threading": {"enable-multi-threading": True, "thread-pool-size": 2, "packet-queue-size": 64},
        "preferred-lifetime": 3600, "valid-lifetime": 3600, "renew-timer": 1800, "rebind-timer": 2880,
        "option-data": [{"name": "bootfile-url", "data": BOOT_URL, "always-send": True}],
        "subnet6": [{"id": 1, "subnet": PREFIX6, "interface": SRV_IF,
                     "pools": [{"pool": f"{POOL_START} - {POOL_END}"}]}],
        "loggers": [{"name": "kea-dhcp6", "output_options": [{"output": "stdout"}], "severity": "WARN"}],
    }}


def server_cmd(kind, binary, work):
    if kind == "kea":
        path = os.path.join(work, "kea-dhcp6.json")
        with open(path, "w") as f:
            json.dump(kea_config(work), f)
        return ["env", f"KEA_PIDFILE_DIR={work}", "KEA_LOCKFILE_DIR=none", "kea-dhcp6", "-c", path]
    cmd = [binary, "serve", "--interface", SRV_IF, "--no-tftp", "--no-http", "--no-dhcp", "--dhcp6",
           "--policy", "default", "--log-level", "warning", "--state", "memory"]
    if kind in ("bootpolicy", "bootpolicy-before"):
        cmd += ["--dhcp-range", f"{POOL_START},{POOL_END},64,1h"]
    return cmd


def pct(xs, q):
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def perfdhcp(rate, seconds, clients=100000, netboot=True, timers=True):
    # -l IF: Solicits from fd78::10 port 546 to ff02::1:2 port 547 out of bpb-c.
    cmd = ["ip", "netns", "exec", CLI, "perfdhcp", "-6", "-l", CLI_IF, "-r", str(rate), "-p", str(seconds),
           "-R", str(clients), "-i"] + (NETBOOT_OPTIONS if netboot else [])
    if timers:
        cmd += ["-x", "t"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    sent = recv = 0
    lat = []
    stats = False
    for line in out.splitlines():
        if line.startswith("***Statistics for: SOLICIT-ADVERTISE"):
            stats = True
        elif line.startswith("***Statistics for:"):
            stats = False
        elif stats and line.startswith("sent packets:"):
            sent = int(line.split(":")[1])
        elif stats and line.startswith("received packets:"):
            recv = int(line.split(":")[1])
        elif line.startswith("sent / received:"):
            a, b = line.split(":", 1)[1].split("/")
            lat.append((float(b) - float(a)) * 1e6)
    lat.sort()
    return {"offered": rate, "seconds": seconds, "sent": sent, "received": recv,
            "loss": (1 - recv / sent) if sent else 1.0, "answers_per_s": recv / seconds,
            "p50_us": pct(lat, 0.50), "p99_us": pct(lat, 0.99)}


def blast(blaster, rate, seconds, clients=100000):
    out = subprocess.run(["ip", "netns", "exec", CLI, blaster, CLI_ADDR6, CLI_IF, str(rate), str(seconds), str(clients)],
                         capture_output=True, text=True, timeout=seconds + 30)
    fields = dict(kv.split("=") for kv in out.stdout.split())
    sent, received, elapsed = int(fields["sent"]), int(fields["received"]), float(fields["seconds"])
    return {"offered": rate, "seconds": elapsed, "sent": sent, "received": received,
            "answers_per_s": received / elapsed, "loss": 1 - received / sent if sent else 1.0}


def wait_ready(p, netboot, timeout=30):
    return wait_answering(p, lambda: perfdhcp(20, 1, clients=20, netboot=netboot, timers=False)["received"] > 0, timeout)


def others_busy():
    """Names of CPU-heavy neighbours on this shared machine (another helper's QEMU), from
    /proc: read only, recorded with each run so a noisy one can be told from a quiet one."""
    busy = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv0 = f.read().split(b"\0", 1)[0].decode(errors="replace")
            except OSError:
                continue
            if os.path.basename(argv0).startswith("qemu-system"):
                busy.append(os.path.basename(argv0))
    return busy


def wait_quiet(limit):
    """Up to `limit` seconds for no such neighbour; True when quiet."""
    deadline = time.time() + limit
    while others_busy():
        if time.time() >= deadline:
            return False
        time.sleep(5)
    return True


def quiet(limit):
    if limit and not wait_quiet(limit):
        print(f"still not quiet after {limit} s; measuring anyway (the run says so)", file=sys.stderr, flush=True)


def versions():
    def first(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return {"kea-dhcp6": first("kea-dhcp6", "-v"),
            "kea-dhcp6-server": first("dpkg-query", "-W", "-f=${Version}", "kea-dhcp6-server"),
            "perfdhcp": "perfdhcp " + first("perfdhcp", "-v").replace("VERSION: ", "")
                        + " (kea-admin " + first("dpkg-query", "-W", "-f=${Version}", "kea-admin") + ")"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/bootpolicy")
    ap.add_argument("--before-binary", help="the binary server `bootpolicy-before` runs (stateful, as `bootpolicy`)")
    ap.add_argument("--rates", default="1000,5000,10000,20000,30000,40000")
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clients", type=int, default=100000)
    ap.add_argument("--servers", default="kea,bootpolicy,bootpolicy-boot")
    ap.add_argument("--kinds", default="netboot,plain")
    ap.add_argument("--blaster-rates", default="30000,50000,70000,90000")
    ap.add_argument("--blaster-seconds", type=int, default=3)
    ap.add_argument("--quiet-wait", type=int, default=0,
                    help="before each measured run, wait up to this many seconds for no QEMU on the machine "
                         "(each run records the neighbours it saw, at its start or end)")
    ap.add_argument("--commit", help="the commit the binary was built from (default: HEAD)")
    ap.add_argument("--out")
    ap.add_argument("--logdir", default="/tmp/bp-bench-logs")
    args = ap.parse_args()
    os.makedirs(args.logdir, exist_ok=True)
    binary = os.path.abspath(args.binary)
    rates = [int(r) for r in args.rates.split(",") if r]
    kinds = [k for k in args.kinds.split(",") if k]
    blaster_rates = [int(r) for r in args.blaster_rates.split(",") if r]
    blaster = None
    if blaster_rates:
        blaster = os.path.join(tempfile.mkdtemp(prefix="bp-blaster6-"), "dhcp6_blaster")
        subprocess.run(["gcc", "-O2", "-pthread", "-o", blaster,
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "dhcp6_blaster.c")], check=True)
    load_before = " ".join(open("/proc/loadavg").read().split()[:3])
    runs = []
    with Lab(ipv6=True) as lab:
        for rep in range(args.repeats):
            for kind in args.servers.split(","):
                work = tempfile.mkdtemp(prefix=f"bp-dhcp6-{kind}-")
                os.chmod(work, 0o755)
                logpath = os.path.join(args.logdir, f"dhcp6-{kind}-{rep}.log")
                try:
                    with open(logpath, "w") as log:
                        which = os.path.abspath(args.before_binary) if kind == "bootpolicy-before" else binary
                        p = lab.spawn(SRV, server_cmd(kind, which, work), log)
                    if not wait_ready(p, netboot=True):
                        raise SystemExit(f"{kind} never answered a Solicit; see {logpath}")
                    for solicit in kinds:
                        if solicit == "plain" and kind == "bootpolicy-boot":
                            continue  # boot-only answers netboot Solicits only
                        for rate in rates:
                            quiet(args.quiet_wait)
                            cpu0, nb0 = cpu_seconds(p.pid), others_busy()
                            r = perfdhcp(rate, args.seconds, args.clients, netboot=solicit == "netboot")
                            cpu = cpu_seconds(p.pid) - cpu0
                            r.update(server=kind, solicit=solicit, repeat=rep, test="perfdhcp", neighbours=sorted(set(nb0 + others_busy())),
                                     load1=float(open("/proc/loadavg").read().split()[0]),
                                     cpu_us_per_answer=(cpu * 1e6 / r["received"]) if r["received"] else None,
                                     peak_rss_kb=status_kb(p.pid, "VmHWM"))
                            runs.append(r)
                            print(f"{kind:15} {solicit:7} rep={rep} offered={rate:6} answers/s={r['answers_per_s']:8.0f} "
                                  f"loss={r['loss'] * 100:5.1f}% p50={r['p50_us'] or 0:7.0f}us p99={r['p99_us'] or 0:8.0f}us "
                                  f"cpu/answer={r['cpu_us_per_answer'] or 0:6.1f}us rss={r['peak_rss_kb'] / 1024:.0f}MB"
                                  f"{' NOISY' if r['neighbours'] else ''}",
                                  file=sys.stderr, flush=True)
                    for rate in blaster_rates:
                        quiet(args.quiet_wait)
                        cpu0, nb0 = cpu_seconds(p.pid), others_busy()
                        r = blast(blaster, rate, args.blaster_seconds, args.clients)
                        cpu = cpu_seconds(p.pid) - cpu0
                        r.update(server=kind, solicit="netboot", repeat=rep, test="blaster", neighbours=sorted(set(nb0 + others_busy())),
                                 load1=float(open("/proc/loadavg").read().split()[0]),
                                 cpu_us_per_answer=(cpu * 1e6 / r["received"]) if r["received"] else None,
                                 peak_rss_kb=status_kb(p.pid, "VmHWM"))
                        runs.append(r)
                        print(f"{kind:15} blaster rep={rep} offered={rate:6} answers/s={r['answers_per_s']:8.0f} "
                              f"loss={r['loss'] * 100:5.1f}% cpu/answer={r['cpu_us_per_answer'] or 0:6.1f}us"
                              f"{' NOISY' if r['neighbours'] else ''}",
                              file=sys.stderr, flush=True)
                    lab.stop(p)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
    commit = args.commit or subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    results = {"command": " ".join(["bench/dhcp6_bench.py"] + sys.argv[1:]),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit,
               "load_before": load_before, "load_after": " ".join(open("/proc/loadavg").read().split()[:3]),
               "nproc": os.cpu_count(), "repeats": args.repeats, "seconds": args.seconds, "clients": args.clients,
               "rates": rates, "blaster_rates": blaster_rates, "blaster_seconds": args.blaster_seconds, "pool": f"{POOL_START}-{POOL_END}", "versions": versions(), "runs": runs}
    write_results(results, args.out)


if __name__ == "__main__":
    main()
