#!/usr/bin/env python3
"""ProxyDHCP saturation with a cheap load generator: bootpolicy and dnsmasq (logging off),
alternating, at rising offered rates from bench/dhcp_blaster.c (sendmmsg batches, recvmmsg
counting). perfdhcp costs about as much CPU per exchange as the servers, so on two cores it is
the ceiling of dhcp_bench.py (~40,000/s); this one costs a few µs. Root; uses dhcp_bench's lab
(namespaces torn down on exit). Writes JSON to --out.

    bench/saturation.py [--binary .build/release/bootpolicy] [--rates 40000,60000,80000,100000,120000] [--repeats 3]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dhcp_bench as d  # noqa: E402
from benchlib import CLI, CLI_ADDR, SRV, SRV_ADDR, Lab, cpu_seconds  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def blast(binary, rate, seconds, clients=100000):
    out = subprocess.run(["ip", "netns", "exec", CLI, binary, CLI_ADDR, SRV_ADDR, str(rate), str(seconds), str(clients)],
                         capture_output=True, text=True, timeout=seconds + 30)
    fields = dict(kv.split("=") for kv in out.stdout.split())
    sent, received, elapsed = int(fields["sent"]), int(fields["received"]), float(fields["seconds"])
    return {"offered": rate, "sent": sent, "received": received, "seconds": elapsed,
            "answers_per_s": received / elapsed, "loss": 1 - received / sent if sent else 1.0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/bootpolicy")
    ap.add_argument("--rates", default="40000,60000,80000,100000,120000")
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()
    blaster = os.path.join(tempfile.mkdtemp(prefix="bp-blaster-"), "dhcp_blaster")
    subprocess.run(["gcc", "-O2", "-pthread", "-o", blaster, os.path.join(HERE, "dhcp_blaster.c")], check=True)
    rates = [int(r) for r in args.rates.split(",")]
    runs = []
    with Lab() as lab:
        for rep in range(args.repeats):
            for kind in ("bootpolicy", "dnsmasq"):
                with open(f"/tmp/bp-saturation-{kind}.log", "w") as log:
                    p = lab.spawn(SRV, d.server_cmd(kind, os.path.abspath(args.binary), False), log)
                if not d.wait_ready(p):
                    raise SystemExit(f"{kind} never answered (/tmp/bp-saturation-{kind}.log)")
                blast(blaster, 10000, 1)  # warm: past the per-client caches' first fill
                for rate in rates:
                    c0 = cpu_seconds(p.pid)
                    r = blast(blaster, rate, args.seconds)
                    r["cpu_us_per_answer"] = (cpu_seconds(p.pid) - c0) * 1e6 / max(1, r["received"])
                    r.update(server=kind, repeat=rep)
                    runs.append(r)
                    print(f"{kind:10} rep={rep} offered={rate:6} answers/s={r['answers_per_s']:8.0f} "
                          f"loss={r['loss'] * 100:5.1f}% cpu/answer={r['cpu_us_per_answer']:5.1f}us", flush=True)
                lab.stop(p)
    summary = {}
    for kind in ("bootpolicy", "dnsmasq"):
        per_rate = {rate: statistics.median(r["answers_per_s"] for r in runs if r["server"] == kind and r["offered"] == rate)
                    for rate in rates}
        summary[kind] = {"max_answers_per_s": max(per_rate.values()), "per_rate": per_rate}
    ratio = summary["bootpolicy"]["max_answers_per_s"] / summary["dnsmasq"]["max_answers_per_s"]
    print(f"saturation (max over rates of the median): bootpolicy {summary['bootpolicy']['max_answers_per_s']:.0f}/s, "
          f"dnsmasq {summary['dnsmasq']['max_answers_per_s']:.0f}/s, ratio {ratio:.2f}x")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"runs": runs, "summary": summary, "ratio": ratio, "seconds": args.seconds,
                       "repeats": args.repeats, "rates": rates}, f, indent=1)


if __name__ == "__main__":
    main()
