#!/usr/bin/env python3
"""Durable per-client state under ProxyDHCP load: a policy that writes state on every DISCOVER
(`state.set` before answering, so every answer waits for its commit), against the default
policy with no store and dnsmasq's working rule, side by side in one run, in dhcp_bench's
namespace lab (torn down on exit). Root.

Each answer of the state-writing policy is one durable write, so its answers/s is the rate of
durable state writes. Saturation uses bench/dhcp_blaster.c (cheap, counts OFFERs); latency at
1,000/s uses perfdhcp's per-exchange timers. The state file lives on the same disk as /tmp.
`state-postgres` runs the same policy against a throwaway PostgreSQL (scripts/pg.sh) started
inside the server's namespace, on its loopback, with a fresh database per repeat.

    bench/state_bench.py [--binary .build/release/bootpolicy] [--rates 5000,10000,20000,40000] [--repeats 3]
                         [--kinds dnsmasq,default-memory,state-full,state-normal,state-postgres,read-postgres]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dhcp_bench as d  # noqa: E402
import saturation as s  # noqa: E402
from benchlib import SRV, SRV_IF, Lab, cpu_seconds  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# One write per DISCOVER: the count of DISCOVERs this client sent, and when.
POLICY = """
return { dhcp = function(req)
  local s = state.get(req.mac) or {}
  local n = (s.n or 0) + 1
  state.set(req.mac, { n = n, xid = req.xid or 0 }, 86400)
  return { filename = req.options[175] and "bootstrap.ipxe" or "undionly.kpxe",
           next_server = req.server_address }
end }
"""

# Reads only: what a policy like netboot-once does once a machine is installed.
READ_POLICY = """
return { dhcp = function(req)
  local s = state.get(req.mac)
  return { filename = (s and s.installed) and "local.ipxe" or (req.options[175] and "bootstrap.ipxe" or "undionly.kpxe"),
           next_server = req.server_address }
end }
"""


def variants(binary, workdir):
    policy = os.path.join(workdir, "count.lua")
    with open(policy, "w") as f:
        f.write(POLICY)
    with open(os.path.join(workdir, "read.lua"), "w") as f:
        f.write(READ_POLICY)
    base = [binary, "serve", "--interface", SRV_IF, "--no-tftp", "--no-http", "--log-level", "warning"]
    return {
        "dnsmasq": d.server_cmd("dnsmasq", binary, False),
        "default-memory": base + ["--policy", "default"],
        "state-full": base + ["--policy", policy, "--state", os.path.join(workdir, "full.db")],
        "state-normal": None,  # needs a config file for state.sync; written below
        "state-postgres": None,  # needs the database; started below when asked for
        "read-postgres": None,  # the read-only policy against the same database
    }, policy


class Postgres:
    """scripts/pg.sh's throwaway server, inside the server namespace (its own loopback)."""

    def __init__(self):
        out = subprocess.run(["ip", "netns", "exec", SRV, "bash", os.path.join(HERE, "..", "scripts", "pg.sh"), "start"],
                             check=True, capture_output=True, text=True).stdout
        env = dict(kv.split("=", 1) for kv in out.split()[1:])
        self.dir, self.url = env["BP_PG_DIR"], env["BOOTPOLICY_TEST_POSTGRES"]

    def fresh(self, name):
        subprocess.run(["ip", "netns", "exec", SRV, "psql", self.url, "-q", "-c", f"DROP DATABASE IF EXISTS {name}",
                        "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
        return self.url.rsplit("/", 1)[0] + "/" + name

    def stop(self):
        subprocess.run(["ip", "netns", "exec", SRV, "bash", os.path.join(HERE, "..", "scripts", "pg.sh"), "stop", self.dir])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/bootpolicy")
    ap.add_argument("--rates", default="5000,10000,20000,40000")
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kinds", default="dnsmasq,default-memory,state-full,state-normal")
    ap.add_argument("--out")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="bp-state-bench-")
    blaster = os.path.join(workdir, "dhcp_blaster")
    subprocess.run(["gcc", "-O2", "-pthread", "-o", blaster, os.path.join(HERE, "dhcp_blaster.c")], check=True)
    cmds, policy = variants(os.path.abspath(args.binary), workdir)
    config = os.path.join(workdir, "normal.yaml")
    with open(config, "w") as f:
        f.write(f"state:\n  store: {os.path.join(workdir, 'normal.db')}\n  sync: normal\n")
    cmds["state-normal"] = cmds["default-memory"][:-2] + ["--policy", policy, "--config", config]
    kinds = args.kinds.split(",")
    rates = [int(r) for r in args.rates.split(",")]
    runs = []
    pg = None
    with Lab() as lab:
        try:
            if "state-postgres" in kinds or "read-postgres" in kinds:
                pg = Postgres()
            for rep in range(args.repeats):
                for kind in kinds:
                    if kind in ("state-postgres", "read-postgres"):
                        script = policy if kind == "state-postgres" else os.path.join(workdir, "read.lua")
                        cmds[kind] = cmds["default-memory"][:-2] + ["--policy", script, "--state", pg.fresh(f"bench{rep}")]
                    for db in ("full.db", "normal.db"):  # each repeat starts from an empty store
                        for suffix in ("", "-wal", "-shm", ".lock"):
                            try:
                                os.unlink(os.path.join(workdir, db + suffix))
                            except FileNotFoundError:
                                pass
                    with open(f"/tmp/bp-state-bench-{kind}.log", "w") as log:
                        p = lab.spawn(SRV, cmds[kind], log)
                    if not d.wait_ready(p):
                        raise SystemExit(f"{kind} never answered (/tmp/bp-state-bench-{kind}.log)")
                    s.blast(blaster, 5000, 1)  # warm
                    # Latency at 1,000/s first (perfdhcp's per-exchange timers), then saturation.
                    c0 = cpu_seconds(p.pid)
                    lat = d.perfdhcp(1000, args.seconds)
                    lat["cpu_us_per_answer"] = (cpu_seconds(p.pid) - c0) * 1e6 / max(1, lat["received"])
                    lat.update(server=kind, repeat=rep, mode="latency")
                    runs.append(lat)
                    print(f"{kind:15} rep={rep} 1,000/s p50={lat['p50_us']}us p99={lat['p99_us']}us loss={lat['loss'] * 100:.1f}% "
                          f"cpu/answer={lat['cpu_us_per_answer']:.1f}us", flush=True)
                    for rate in rates:
                        c0 = cpu_seconds(p.pid)
                        r = s.blast(blaster, rate, args.seconds)
                        r["cpu_us_per_answer"] = (cpu_seconds(p.pid) - c0) * 1e6 / max(1, r["received"])
                        r.update(server=kind, repeat=rep, mode="saturation")
                        runs.append(r)
                        print(f"{kind:15} rep={rep} offered={rate:6} answers/s={r['answers_per_s']:8.0f} "
                              f"loss={r['loss'] * 100:5.1f}% cpu/answer={r['cpu_us_per_answer']:5.1f}us", flush=True)
                    lab.stop(p)
        finally:
            if pg:
                pg.stop()
    summary = {}
    for kind in kinds:
        sat = {rate: statistics.median(r["answers_per_s"] for r in runs
                                       if r["server"] == kind and r["mode"] == "saturation" and r["offered"] == rate)
               for rate in rates}
        lat = [r for r in runs if r["server"] == kind and r["mode"] == "latency"]
        summary[kind] = {"max_answers_per_s": max(sat.values()), "per_rate": sat,
                         "p50_us_at_1000": statistics.median(r["p50_us"] for r in lat if r["p50_us"] is not None),
                         "p99_us_at_1000": statistics.median(r["p99_us"] for r in lat if r["p99_us"] is not None),
                         "cpu_us_at_1000": statistics.median(r["cpu_us_per_answer"] for r in lat)}
        print(f"{kind:15} saturation {summary[kind]['max_answers_per_s']:.0f}/s, at 1,000/s p99 "
              f"{summary[kind]['p99_us_at_1000']:.0f}us")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"runs": runs, "summary": summary, "seconds": args.seconds, "repeats": args.repeats,
                       "rates": rates}, f, indent=1)


if __name__ == "__main__":
    main()
