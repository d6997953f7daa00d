#!/usr/bin/env python3
"""What a shadow chain and the decision journal cost the live answers (issue 24's target:
>= 0.8x). One bootpolicy binary, two configurations, alternating in one run:

  plain   policies [default], journal off
  shadow  policies [default], shadow [arch-aware], journal on (a SQLite file)

For each: ProxyDHCP saturation with bench/dhcp_blaster.c at rising offered rates (answers/s),
then p50/p99 DISCOVER->OFFER at 1,000/s and 5,000/s with perfdhcp; after each load the server's
own counters (shadow compared/shed, journal written/dropped) from /metrics. Root; uses
dhcp_bench's lab (namespaces torn down on exit). Writes JSON to --out.

    bench/shadow_bench.py [--binary .build/release/bootpolicy] [--repeats 3] [--out bench/results/shadow.json]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dhcp_bench as d  # noqa: E402
import saturation as s  # noqa: E402
from benchlib import SRV, SRV_ADDR, SRV_IF, Lab, cpu_seconds  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HTTP_PORT = 18080


def config(kind, tmp):
    path = os.path.join(tmp, f"{kind}.yaml")
    journal = os.path.join(tmp, f"{kind}-decisions.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(journal + suffix):
            os.remove(journal + suffix)
    with open(path, "w") as f:
        f.write("policies: [ { file: default } ]\n")
        if kind in ("shadow", "shadow-only", "shadow-capped"):
            f.write("shadow: [ { file: arch-aware } ]\n")
        if kind == "shadow-capped":
            f.write("shadow_limits: { cpu_percent: 2 }\n")
        if kind in ("shadow", "journal-only", "shadow-capped"):
            f.write(f"journal: {{ path: {journal} }}\n")
        else:
            f.write("journal: { enabled: false }\n")
    return path


def metrics():
    out = subprocess.run(["ip", "netns", "exec", SRV, "curl", "-s", "-m", "5", f"http://{SRV_ADDR}:{HTTP_PORT}/metrics"],
                         capture_output=True, text=True).stdout
    want = ("bootpolicy_shadow_compared_total", "bootpolicy_shadow_shed_total", "bootpolicy_journal_entries_total",
            "bootpolicy_journal_dropped_total")
    got = {}
    for line in out.splitlines():
        name = line.split("{")[0].split(" ")[0]
        if name in want:
            got[name] = got.get(name, 0) + float(line.split()[-1])
    return got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/bootpolicy")
    ap.add_argument("--rates", default="20000,40000,80000")
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--configs", default="plain,shadow",
                    help="plain, shadow (shadow chain + journal), and for finding a cost: shadow-only, journal-only, "
                         "shadow-capped (shadow + journal, shadow_limits.cpu_percent 2)")
    ap.add_argument("--latency-only", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    configs = args.configs.split(",")
    blaster = os.path.join(tempfile.mkdtemp(prefix="bp-blaster-"), "dhcp_blaster")
    subprocess.run(["gcc", "-O2", "-pthread", "-o", blaster, os.path.join(HERE, "dhcp_blaster.c")], check=True)
    rates = [int(r) for r in args.rates.split(",")]
    tmp = tempfile.mkdtemp(prefix="bp-shadow-bench-")
    runs = []
    with Lab() as lab:
        for rep in range(args.repeats):
            for kind in configs:
                cmd = [os.path.abspath(args.binary), "serve", "--interface", SRV_IF, "--no-tftp", "--http-port", str(HTTP_PORT),
                       "--config", config(kind, tmp), "--log-level", "warning"]
                with open(f"/tmp/bp-shadow-bench-{kind}.log", "w") as log:
                    p = lab.spawn(SRV, cmd, log)
                if not d.wait_ready(p):
                    raise SystemExit(f"{kind} never answered (/tmp/bp-shadow-bench-{kind}.log)")
                s.blast(blaster, 10000, 1)
                for rate in (rates if not args.latency_only else []):
                    before = metrics()
                    c0 = cpu_seconds(p.pid)
                    r = s.blast(blaster, rate, args.seconds)
                    r["cpu_us_per_answer"] = (cpu_seconds(p.pid) - c0) * 1e6 / max(1, r["received"])
                    after = metrics()
                    r["counters"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                    r.update(config=kind, repeat=rep, test="saturation")
                    runs.append(r)
                    print(f"{kind:7} rep={rep} offered={rate:6} answers/s={r['answers_per_s']:8.0f} loss={r['loss'] * 100:5.1f}% "
                          f"cpu/answer={r['cpu_us_per_answer']:5.1f}us {r['counters']}", flush=True)
                for rate in (1000, 5000):
                    before = metrics()
                    r = d.perfdhcp(rate, 5)
                    after = metrics()
                    r["counters"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                    r.update(config=kind, repeat=rep, test="latency")
                    runs.append(r)
                    print(f"{kind:7} rep={rep} perfdhcp {rate:5}/s p50={r['p50_us'] or 0:6.0f}us p99={r['p99_us'] or 0:7.0f}us "
                          f"loss={r['loss'] * 100:4.1f}% {r['counters']}", flush=True)
                lab.stop(p)
    summary = {}
    for kind in configs:
        sat = {rate: statistics.median(r["answers_per_s"] for r in runs if r["config"] == kind and r.get("test") == "saturation"
                                       and r["offered"] == rate) for rate in rates if not args.latency_only}
        lat = {rate: {q: statistics.median(r[q] or 0 for r in runs if r["config"] == kind and r.get("test") == "latency"
                                           and r["offered"] == rate) for q in ("p50_us", "p99_us")} for rate in (1000, 5000)}
        summary[kind] = {"max_answers_per_s": max(sat.values(), default=0), "per_rate": sat, "latency": lat}
    if "plain" not in summary or "shadow" not in summary:
        return
    ratio = summary["shadow"]["max_answers_per_s"] / max(1, summary["plain"]["max_answers_per_s"])
    p99 = {rate: summary["plain"]["latency"][rate]["p99_us"] / max(1, summary["shadow"]["latency"][rate]["p99_us"])
           for rate in (1000, 5000)}
    print(f"saturation: plain {summary['plain']['max_answers_per_s']:.0f}/s, shadow+journal "
          f"{summary['shadow']['max_answers_per_s']:.0f}/s, ratio {ratio:.2f}x; p99 ratio (plain/shadow) "
          + ", ".join(f"{r}/s {v:.2f}x" for r, v in p99.items()))
    if args.out:
        with open(args.out, "w") as f:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
            json.dump({"runs": runs, "summary": summary, "saturation_ratio": ratio, "p99_ratio": p99,
                       "seconds": args.seconds, "repeats": args.repeats, "rates": rates,
                       "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit,
                       "load": " ".join(open("/proc/loadavg").read().split()[:3]),
                       "command": "bench/shadow_bench.py " + " ".join(sys.argv[1:])}, f, indent=1)


if __name__ == "__main__":
    main()
