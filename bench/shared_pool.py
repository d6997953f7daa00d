#!/usr/bin/env python3
"""Two full-DHCP servers on one PostgreSQL pool under perfdhcp: never one address for two clients.

Inside the bench namespaces (benchlib.Lab): a throwaway PostgreSQL (scripts/pg.sh) runs in the
server namespace; bootpolicy A listens on 192.168.78.1 and B on 192.168.78.2, both with
--state on that database and the same range (192.168.100.0-192.168.139.255 in
192.168.0.0/16, lease 1 h). Two perfdhcp processes, relays at 192.168.78.10 and .11, run whole
DORA exchanges at the same time, one against each server, 5,000 clients each (10,000 in all,
disjoint MACs: one machine runs one DHCP client); both servers' pools start alike, so they offer
the same addresses to different machines and their claims collide.

Checked from both servers' logs (one line per ACK with MAC and address) and from the table:
no address is ACKed to two MACs (perfdhcp releases nothing and the lease outlives the run), and
every bound row belongs to the MAC a server last ACKed for it. Writes JSON to --out. Needs root.
"""
import argparse, collections, json, os, re, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import CLI, CLI_IF, SRV, SRV_IF, Lab, wait_answering, write_results  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADDRS = ["192.168.78.1", "192.168.78.2"]
RELAYS = ["192.168.78.10", "192.168.78.11"]
ACK = re.compile(r"\) ((?:[0-9a-f]{2}:){5}[0-9a-f]{2}) REQUEST .*-> ACK (\d+\.\d+\.\d+\.\d+) ")
NAK = re.compile(r"-> NAK ")


# Each load generator's clients are its own (a machine runs one DHCP client, not two at
# once): disjoint MAC bases. What collides is the servers' pools, alike at start.
MAC_BASES = ["00:0c:01:00:00:00", "00:0d:01:00:00:00"]


def perfdhcp(relay, server, rate, seconds, clients, base):
    return ["ip", "netns", "exec", CLI, "perfdhcp", "-4", "-l", relay, "-r", str(rate), "-p", str(seconds),
            "-R", str(clients), "-b", f"mac={base}", server]


def stat(out, section, key):
    seen = False
    for line in out.splitlines():
        if line.startswith("***Statistics for: "):
            seen = section in line
        elif seen and line.startswith(key + ":"):
            return int(line.split(":")[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/bootpolicy")
    ap.add_argument("--rate", type=int, default=1000, help="DORA/s offered to each server")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--out")
    ap.add_argument("--logdir", default="/tmp/bp-bench-logs")
    args = ap.parse_args()
    os.makedirs(args.logdir, exist_ok=True)
    binary = os.path.abspath(args.binary)
    pg_dir = None
    result = {}
    with Lab() as lab:
        try:
            subprocess.run(["ip", "-n", SRV, "addr", "add", ADDRS[1] + "/24", "dev", SRV_IF], check=True)
            subprocess.run(["ip", "-n", CLI, "addr", "add", RELAYS[1] + "/24", "dev", CLI_IF], check=True)
            # PostgreSQL on the server namespace's own loopback: reachable by the servers only.
            out = subprocess.run(["ip", "netns", "exec", SRV, os.path.join(REPO, "scripts/pg.sh"), "start"],
                                 check=True, capture_output=True, text=True).stdout
            env = dict(re.findall(r"(\w+)=(\S+)", out))
            url, pg_dir = env["BOOTPOLICY_TEST_POSTGRES"].strip("'\""), env["BP_PG_DIR"].strip("'\"")
            servers, logs = [], []
            for i, addr in enumerate(ADDRS):
                path = os.path.join(args.logdir, f"shared-pool-{'ab'[i]}.log")
                logs.append(path)
                with open(path, "w") as log:
                    servers.append(lab.spawn(SRV, [binary, "serve", "--listen", addr, "--no-tftp", "--no-http", "--no-proxy",
                                                   "--dhcp-port", "67", "--state", url, "--no-ping", "--log-level", "info",
                                                   "--dhcp-range", "192.168.100.0,192.168.139.255,255.255.0.0,1h"], log))
            for i, p in enumerate(servers):
                def probe(i=i):
                    out = subprocess.run(perfdhcp(RELAYS[i], ADDRS[i], 5, 1, 5, MAC_BASES[i]), capture_output=True, text=True, timeout=30).stdout
                    return stat(out, "REQUEST-ACK", "received packets") > 0
                if not wait_answering(p, probe):
                    raise SystemExit(f"server {'ab'[i]} never ACKed; see {logs[i]}")
            t0 = time.time()
            runs = [subprocess.Popen(perfdhcp(RELAYS[i], ADDRS[i], args.rate, args.seconds, args.clients // 2, MAC_BASES[i]),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
            outs = [r.communicate(timeout=args.seconds + 60)[0] for r in runs]
            elapsed = time.time() - t0
            time.sleep(1)
            for p in servers:
                lab.stop(p)
            holders = collections.defaultdict(set)
            last = {}
            acks, naks = [0, 0], [0, 0]
            for i, path in enumerate(logs):
                for line in open(path, errors="replace"):
                    m = ACK.search(line)
                    if m:
                        acks[i] += 1
                        holders[m.group(2)].add(m.group(1))
                        last[m.group(2)] = m.group(1)
                    elif NAK.search(line):
                        naks[i] += 1
            twice = {a: sorted(ms) for a, ms in holders.items() if len(ms) > 1}
            rows = subprocess.run(["ip", "netns", "exec", SRV, "psql", url, "-X", "-q", "-t", "-A", "-F", " ", "-c",
                                   "SELECT address, mac FROM dhcp_lease WHERE state = 'bound'"],
                                  check=True, capture_output=True, text=True).stdout.split("\n")
            table = dict(r.split(" ", 1) for r in rows if " " in r)
            mismatched = {a: (m, last.get(a)) for a, m in table.items() if last.get(a) != m}
            result = {
                "rate_per_server": args.rate, "seconds": args.seconds, "clients": args.clients, "elapsed": elapsed,
                "acks": acks, "naks": naks, "perfdhcp_acks": [stat(o, "REQUEST-ACK", "received packets") for o in outs],
                "addresses_acked": len(holders), "distinct_clients": len({m for ms in holders.values() for m in ms}),
                "bound_rows": len(table), "leased_twice": len(twice), "examples": dict(list(twice.items())[:5]),
                "rows_not_matching_last_ack": len(mismatched),
            }
            print(f"shared pool: ACKs A={acks[0]} B={acks[1]}, NAKs A={naks[0]} B={naks[1]}, {len(holders)} addresses to "
                  f"{result['distinct_clients']} clients, {len(table)} bound rows, leased twice: {len(twice)}, "
                  f"rows not matching the last ACK: {len(mismatched)}", file=sys.stderr)
        finally:
            if pg_dir:
                subprocess.run(["ip", "netns", "exec", SRV, os.path.join(REPO, "scripts/pg.sh"), "stop", pg_dir],
                               capture_output=True)
    write_results(result, args.out)
    sys.exit(0 if result.get("leased_twice") == 0 and result.get("rows_not_matching_last_ack") == 0 else 1)


if __name__ == "__main__":
    main()
