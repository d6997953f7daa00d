#!/usr/bin/env python3
"""Turns bench/results/*.json (written by bench/run.sh) into BENCHMARKS.md and
bench/dhcp-rate.svg. Medians over repeats everywhere; ratios are bootpolicy / reference."""
import json, os, re, statistics, sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RES = os.path.join(HERE, "results")


def load(name):
    path = os.path.join(RES, name)
    return json.load(open(path)) if os.path.exists(path) else None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=0):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def ratio(x):
    return "–" if x is None else f"{x:.2f}x"


def ok(flag):
    return "**met**" if flag else "**missed**"


def dhcp_summary(rows):
    """Per (server, logging): per-rate medians, saturation and <=1%-loss ceilings."""
    out = {}
    for server in ("bootpolicy", "dnsmasq"):
        for logging in (False, True):
            rs = [r for r in rows if r["server"] == server and r["logging"] == logging]
            if not rs:
                continue
            reps = sorted({r["repeat"] for r in rs})
            rates = sorted({r["offered"] for r in rs})
            per_rate = {}
            for rate in rates:
                at = [r for r in rs if r["offered"] == rate]
                per_rate[rate] = {k: med([r[k] for r in at]) for k in
                                  ("answers_per_s", "loss", "p50_us", "p99_us", "cpu_us_per_answer")}
            sat = med([max(r["answers_per_s"] for r in rs if r["repeat"] == rep) for rep in reps])
            lossless = med([max([r["answers_per_s"] for r in rs if r["repeat"] == rep and r["loss"] <= 0.01] or [0])
                            for rep in reps])
            rss = med([max(r["peak_rss_kb"] for r in rs if r["repeat"] == rep) for rep in reps])
            out[(server, logging)] = {"rates": per_rate, "saturation": sat, "lossless": lossless, "rss_kb": rss,
                                      "repeats": len(reps)}
    return out


def svg(summary, path, sat=None):
    """answers/s against offered load: perfdhcp's sweep (log off and on) and, when given, the
    blaster's saturation sweep (log off), both servers."""
    styles = {("bootpolicy", False): ("#1f77b4", ""), ("bootpolicy", True): ("#1f77b4", "6 3"),
              ("dnsmasq", False): ("#d62728", ""), ("dnsmasq", True): ("#d62728", "6 3")}
    series = []  # (label, color, dash, width, [(offered, answers)])
    for key, s in summary.items():
        color, dash = styles[key]
        series.append((f"{key[0]}, log {'on' if key[1] else 'off'}", color, dash, 2,
                       [(x, v["answers_per_s"]) for x, v in sorted(s["rates"].items())]))
    if sat:
        for kind, color in (("bootpolicy", "#1f77b4"), ("dnsmasq", "#d62728")):
            pts = []
            for rate in sat["rates"]:
                xs = [r["answers_per_s"] for r in sat["runs"] if r["server"] == kind and r["offered"] == rate]
                if xs:
                    pts.append((rate, statistics.median(xs)))
            series.append((f"{kind}, blaster", color, "1 3", 3, pts))
    W, H, L, B, T, R = 680, 420, 70, 50, 30, 190
    top = max(max(max(x, y) for x, y in pts) for *_, pts in series if pts) * 1.05
    sx = lambda x: L + (W - L - R) * x / top
    sy = lambda y: H - B - (H - B - T) * y / top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<text x="{L}" y="18" font-size="14">ProxyDHCP answers/s against offered DISCOVERs/s (median of repeats)</text>']
    step = 10000 if top <= 60000 else 20000
    for v in range(0, int(top) + 1, step):
        parts.append(f'<line x1="{sx(v):.1f}" y1="{sy(0):.1f}" x2="{sx(v):.1f}" y2="{sy(top):.1f}" stroke="#eee"/>')
        parts.append(f'<line x1="{sx(0):.1f}" y1="{sy(v):.1f}" x2="{sx(top):.1f}" y2="{sy(v):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{sx(v):.1f}" y="{H - B + 16}" text-anchor="middle">{v // 1000}k</text>')
        parts.append(f'<text x="{L - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{v // 1000}k</text>')
    parts.append(f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(top):.1f}" y2="{sy(top):.1f}" stroke="#bbb" stroke-dasharray="4 4"/>')
    xlabel = "offered (DISCOVER/s: perfdhcp" + (", and bench/dhcp_blaster.c past its ceiling)" if sat else ")")
    parts.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">{xlabel}</text>')
    parts.append(f'<text x="16" y="{(H - B + T) / 2}" transform="rotate(-90 16 {(H - B + T) / 2})" text-anchor="middle">answers/s</text>')
    ly = T + 10
    for label, color, dash, width, pts in series:
        line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="{width}" stroke-dasharray="{dash}"/>')
        for x, y in pts:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>')
        parts.append(f'<line x1="{W - R + 10}" y1="{ly}" x2="{W - R + 35}" y2="{ly}" stroke="{color}" stroke-width="{width}" stroke-dasharray="{dash}"/>')
        parts.append(f'<text x="{W - R + 40}" y="{ly + 4}">{label}</text>')
        ly += 18
    parts.append(f'<text x="{W - R + 10}" y="{ly + 8}" fill="#888">dashed grey: all answered</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def dora_section(rows, w, targets, mach):
    """Full DHCP: perfdhcp DORA against Kea and dnsmasq (bench/dora_bench.py)."""
    servers = [k for k in ("bootpolicy", "bootpolicy-normal", "kea", "dnsmasq") if any(r["server"] == k for r in rows)]
    rates = sorted({r["offered"] for r in rows})
    cell = {}
    for k in servers:
        for rate in rates:
            rs = [r for r in rows if r["server"] == k and r["offered"] == rate]
            if rs:
                cell[(k, rate)] = {key: med([r.get(key) for r in rs]) for key in
                                   ("acks_per_s", "loss", "p50_ack_us", "p99_ack_us", "p99_offer_us", "cpu_us_per_ack")}
    sat = {k: max((cell[(k, r)]["acks_per_s"] or 0) for r in rates if (k, r) in cell) for k in servers}
    w("## Full DHCP (perfdhcp DORA → bootpolicy / Kea / dnsmasq)")
    w("")
    w(f"`{mach.get('command', 'bench/dora_bench.py')}`, run {mach.get('date', '?')} at commit {mach.get('commit', '?')} "
      f"(load average {mach.get('load', '?')}). perfdhcp in bp-bench-cli runs whole DISCOVER-OFFER-REQUEST-ACK "
      "exchanges (no `-i`) from 10,000 clients as a relay (giaddr 192.168.78.10, a /16 pool of 10,240 addresses, "
      "lease 1 h), each server from an empty lease store, servers alternating within each repeat, medians of "
      f"{len({r['repeat'] for r in rows})} repeats, {rows[0]['seconds']} s per rate. What an ACK waits for differs: "
      "**bootpolicy** sends it after the lease is committed to SQLite with fsync (`state.sync: full`, the default); "
      "**bootpolicy-normal** the same with `state.sync: normal` (committed, no fsync per commit: survives a crash, not a power loss); "
      "**Kea** 2.2 (`kea-dhcp4`, memfile with `persist: true`, multi-threading on, 2 threads) appends the lease to "
      "its CSV file without fsync; **dnsmasq** (full DHCP, `--dhcp-lease-max=20000`) rewrites its lease file after "
      "each change.")
    w("")
    w("| offered/s | " + " | ".join(f"{k} ACKs/s | loss | p50 / p99 REQUEST→ACK µs | CPU µs/ACK" for k in servers) + " |")
    w("|---:|" + "---:|---:|---:|---:|" * len(servers))
    for rate in rates:
        parts = []
        for k in servers:
            c = cell.get((k, rate), {})
            parts.append(f"{fmt(c.get('acks_per_s'))} | {fmt((c.get('loss') or 0) * 100, 1)}% | "
                         f"{fmt(c.get('p50_ack_us'))} / {fmt(c.get('p99_ack_us'))} | {fmt(c.get('cpu_us_per_ack'), 1)}")
        w(f"| {rate:,} | " + " | ".join(parts) + " |")
    w("")
    if "kea" in sat and "bootpolicy" in sat and sat["kea"]:
        x = sat["bootpolicy"] / sat["kea"]
        w(f"Saturation (highest median ACKs/s over the rates): bootpolicy {fmt(sat['bootpolicy'])}, Kea {fmt(sat['kea'])}"
          + (f", dnsmasq {fmt(sat['dnsmasq'])}" if "dnsmasq" in sat else "")
          + (f", bootpolicy-normal {fmt(sat['bootpolicy-normal'])}" if "bootpolicy-normal" in sat else "")
          + f": bootpolicy/Kea **{x:.2f}x**.")
        targets.append(("full DHCP DORA/s at saturation >= 1.5x Kea memfile (bootpolicy durable with fsync)", x, x >= 1.5))
        top = max(rates)
        b, k = cell.get(("bootpolicy", top), {}), cell.get(("kea", top), {})
        if b.get("cpu_us_per_ack") and k.get("cpu_us_per_ack"):
            w("")
            w(f"Where the ceiling is: at {top:,} offered, bootpolicy used {b['acks_per_s'] * b['cpu_us_per_ack'] / 1e6:.2f} cores "
              f"({fmt(b['cpu_us_per_ack'], 1)} µs per ACK, two decisions of the default policy in it) and Kea "
              f"{k['acks_per_s'] * k['cpu_us_per_ack'] / 1e6:.2f} ({fmt(k['cpu_us_per_ack'], 1)} µs); perfdhcp, which spends about as "
              "much per exchange, had the rest of the two cores. Both servers are held to what the load generator leaves "
              "them, so the saturation ratio here is a floor; `fsync` costs little on this virtual disk (bootpolicy-normal is "
              "within noise of bootpolicy). At 1,000/s the p99 gap to Kea is the hand-off to the state writer's thread and "
              "back, per group commit, which Kea's memfile (no commit to wait for) does not have.")
        k1 = cell.get(("kea", 1000), {})
        for kind in ("bootpolicy", "bootpolicy-normal"):
            b1 = cell.get((kind, 1000), {})
            if b1.get("p99_ack_us") and k1.get("p99_ack_us"):
                y = b1["p99_ack_us"] / k1["p99_ack_us"]
                targets.append((f"full DHCP p99 REQUEST→ACK at 1,000/s <= Kea's ({kind})", y, y <= 1))
    w("")


def dhcp6_section(data, w, targets):
    """DHCPv6 Solicit/Advertise against kea-dhcp6 (bench/dhcp6_bench.py)."""
    blasts = [r for r in data["runs"] if r.get("test") == "blaster"]
    runs, rates = [r for r in data["runs"] if r.get("test", "perfdhcp") == "perfdhcp"], data["rates"]
    servers = [k for k in ("bootpolicy", "bootpolicy-boot", "kea") if any(r["server"] == k for r in data["runs"])]
    kinds = [k for k in ("netboot", "plain") if any(r["solicit"] == k for r in runs)]
    v = data.get("versions", {})
    names = {"bootpolicy": "bootpolicy (stateful)", "bootpolicy-boot": "bootpolicy boot-only", "kea": "Kea"}

    def quiet(rs):
        # Runs that saw another helper's QEMU (at their start or end) count only where no quiet one exists.
        return [r for r in rs if not r.get("neighbours")] or rs

    def cell(server, kind, rate):
        rs = quiet([r for r in runs if r["server"] == server and r["solicit"] == kind and r["offered"] == rate])
        return {key: med([r.get(key) for r in rs]) for key in
                ("answers_per_s", "loss", "p50_us", "p99_us", "cpu_us_per_answer", "peak_rss_kb")} if rs else None

    w("## DHCPv6 Solicit/Advertise (perfdhcp -6 → bootpolicy / kea-dhcp6)")
    w("")
    w(f"`{data.get('command', 'bench/dhcp6_bench.py')}` (also `bench/run.sh`, section `dhcp6`), run {data.get('date', '?')} "
      f"at commit {data.get('commit', '?')} on {data.get('nproc', '?')} cores (load average {data.get('load_before', '?')} before, "
      f"{data.get('load_after', '?')} after). {v.get('perfdhcp', 'perfdhcp')} in bp-bench-cli sends Solicits from fd78::10 "
      "to ff02::1:2 out of bpb-c (`perfdhcp -6 -l bpb-c -i`: Solicit/Advertise only; Kea listens on the group and its "
      "link-local address only, so multicast is what both answer) from "
      f"{data.get('clients', 0):,} DUIDs (`-R`), {data.get('seconds', '?')} s per rate; the servers alternate within each of "
      f"{data.get('repeats', '?')} repeats; medians over the repeats; p50/p99 from perfdhcp's per-exchange timers (`-x t`), "
      "CPU from the server's /proc/PID/stat (all threads) over the run. **netboot** Solicits carry option 61 (arch 7) and "
      "vendor class 343 `PXEClient:Arch:00007:UNDI:003000` (OVMF's PXEv6), so bootpolicy runs its Lua policy (`default`) "
      "for each; **plain** ones are perfdhcp's own address Solicit (no policy call; boot-only mode does not answer those). "
      f"**bootpolicy** (stateful): `serve --dhcp6 --no-dhcp --dhcp-range {data.get('pool', '?').replace('-', ',')},64,1h "
      "--state memory`, an IA_NA address from the pool plus the boot file URL; **bootpolicy boot-only**: the same without the "
      "range (boot file URL and vendor class, no address); **Kea**: kea-dhcp6 "
      f"{v.get('kea-dhcp6', '?')} (Debian {v.get('kea-dhcp6-server', '?')}), memfile with `persist: true`, multi-threading "
      "on (2 threads, queue 64), subnet fd78::/64 with the same pool, option 59 `bootfile-url` always sent. No server writes "
      "anything for a Solicit/Advertise."
      + (f" The machine is shared: {sum(1 for r in data['runs'] if r.get('neighbours'))} of {len(data['runs'])} runs ("
         + ", ".join(f"{names[k]} {sum(1 for r in data['runs'] if r['server'] == k and r.get('neighbours'))} of "
                     f"{sum(1 for r in data['runs'] if r['server'] == k)}" for k in servers) + ") saw "
         "another helper's QEMU (`qemu-system-x86_64 -accel tcg`, a whole core) at their start or end, and count only in "
         "cells without a quiet run." if any("neighbours" in r for r in data["runs"]) else ""))
    w("")
    for kind in kinds:
        ss = [k for k in servers if any(r["server"] == k and r["solicit"] == kind for r in runs)]
        w(f"{kind.capitalize()} Solicits:")
        w("")
        w("| offered/s | " + " | ".join(f"{names[k]} answers/s | loss | p50 / p99 µs | CPU µs/answer" for k in ss)
          + (" | bootpolicy / Kea |" if "kea" in ss and "bootpolicy" in ss else " |"))
        w("|---:|" + "---:|---:|---:|---:|" * len(ss) + ("---:|" if "kea" in ss and "bootpolicy" in ss else ""))
        for rate in rates:
            parts = []
            for k in ss:
                c = cell(k, kind, rate) or {}
                parts.append(f"{fmt(c.get('answers_per_s'))} | {fmt((c.get('loss') or 0) * 100, 1)}% | "
                             f"{fmt(c.get('p50_us'))} / {fmt(c.get('p99_us'))} | {fmt(c.get('cpu_us_per_answer'), 1)}")
            tail = ""
            if "kea" in ss and "bootpolicy" in ss:
                b, k = cell("bootpolicy", kind, rate) or {}, cell("kea", kind, rate) or {}
                tail = f" | {ratio(b['answers_per_s'] / k['answers_per_s']) if b.get('answers_per_s') and k.get('answers_per_s') else '–'}"
            w(f"| {rate:,} | " + " | ".join(parts) + tail + " |")
        w("")
        sat = {k: max((cell(k, kind, r) or {}).get("answers_per_s") or 0 for r in rates) for k in ss}
        rss = {k: max((cell(k, kind, r) or {}).get("peak_rss_kb") or 0 for r in rates) for k in ss}
        w(f"Saturation (highest median answers/s over the rates), {kind}: "
          + ", ".join(f"{names[k]} {fmt(sat[k])}" for k in ss)
          + (f": bootpolicy/Kea **{sat['bootpolicy'] / sat['kea']:.2f}x**" if sat.get("kea") and "bootpolicy" in sat else "")
          + (f", boot-only/Kea {sat['bootpolicy-boot'] / sat['kea']:.2f}x" if sat.get("kea") and "bootpolicy-boot" in sat else "")
          + ". Peak RSS: " + ", ".join(f"{names[k]} {rss[k] / 1024:.0f} MB" for k in ss) + ".")
        w("")
        if sat.get("kea") and "bootpolicy" in sat:
            x = sat["bootpolicy"] / sat["kea"]
            what = "netboot, Lua policy per Solicit" if kind == "netboot" else "plain address Solicits"
            targets.append((f"DHCPv6 Solicit/Advertise answers/s at saturation >= 1.5x kea-dhcp6 (stateful, {what}; perfdhcp)", x, x >= 1.5))
    if blasts:
        brates = data.get("blaster_rates") or sorted({r["offered"] for r in blasts})
        bs = [k for k in servers if any(r["server"] == k for r in blasts)]

        def bcell(server, rate):
            rs = quiet([r for r in blasts if r["server"] == server and r["offered"] == rate])
            return {key: med([r.get(key) for r in rs]) for key in ("answers_per_s", "loss", "cpu_us_per_answer")} if rs else {}
        w("Past perfdhcp's ceiling (it spends about as much CPU per exchange as the servers, and shares the two cores "
          "with them): the same netboot Solicit from `bench/dhcp6_blaster.c` (one `sendmmsg` per millisecond to "
          f"ff02::1:2, Advertises counted with `recvmmsg`, no per-exchange timing), {data.get('blaster_seconds', '?')} s "
          "per rate, medians over the repeats:")
        w("")
        w("| offered/s | " + " | ".join(f"{names[k]} answers/s | loss | CPU µs/answer" for k in bs)
          + (" | bootpolicy / Kea |" if "kea" in bs and "bootpolicy" in bs else " |"))
        w("|---:|" + "---:|---:|---:|" * len(bs) + ("---:|" if "kea" in bs and "bootpolicy" in bs else ""))
        for rate in brates:
            parts = []
            for k in bs:
                c = bcell(k, rate)
                parts.append(f"{fmt(c.get('answers_per_s'))} | {fmt((c.get('loss') or 0) * 100, 1)}% | {fmt(c.get('cpu_us_per_answer'), 1)}")
            tail = ""
            if "kea" in bs and "bootpolicy" in bs:
                b, k = bcell("bootpolicy", rate), bcell("kea", rate)
                tail = f" | {ratio(b['answers_per_s'] / k['answers_per_s']) if b.get('answers_per_s') and k.get('answers_per_s') else '–'}"
            w(f"| {rate:,} | " + " | ".join(parts) + tail + " |")
        w("")
        bsat = {k: max(bcell(k, r).get("answers_per_s") or 0 for r in brates) for k in bs}
        w("Saturation with the blaster (highest median answers/s over the rates): "
          + ", ".join(f"{names[k]} {fmt(bsat[k])}" for k in bs)
          + (f": bootpolicy/Kea **{bsat['bootpolicy'] / bsat['kea']:.2f}x**" if bsat.get("kea") and "bootpolicy" in bsat else "")
          + (f", boot-only/Kea {bsat['bootpolicy-boot'] / bsat['kea']:.2f}x" if bsat.get("kea") and "bootpolicy-boot" in bsat else "") + ".")
        w("")
        if bsat.get("kea") and "bootpolicy" in bsat:
            x = bsat["bootpolicy"] / bsat["kea"]
            targets.append(("DHCPv6 Solicit/Advertise answers/s at saturation >= 1.5x kea-dhcp6 (stateful, netboot; cheap load generator)", x, x >= 1.5))
    note = os.path.join(HERE, "DHCPV6.md")
    if os.path.exists(note):
        w(open(note).read().strip())
        w("")


def shadow_section(data, w, targets):
    """A shadow chain and the decision journal against neither (bench/shadow_bench.py)."""
    runs, rates = data["runs"], data["rates"]
    kinds = [k for k in ("plain", "shadow") if any(r["config"] == k for r in runs)]
    w("## Shadow chain and decision journal (bench/shadow_bench.py)")
    w("")
    w(f"`{data.get('command', 'bench/shadow_bench.py')}`, run {data.get('date', '?')} at commit {data.get('commit', '?')} "
      f"(load average {data.get('load', '?')}). One binary, two configurations alternating within each of "
      f"{data['repeats']} repeats: **plain** is `policies: [default]` with the journal off; **shadow** adds "
      "`shadow: [arch-aware]` and the decision journal in a SQLite file. Saturation: bench/dhcp_blaster.c at each "
      f"offered rate for {data['seconds']} s (100,000 client MACs); latency: perfdhcp DISCOVER→OFFER for 5 s at "
      "1,000/s and 5,000/s. Medians over the repeats; the counters are the server's own, summed over the repeats.")
    w("")
    w("| offered/s | " + " | ".join(f"{k} answers/s | loss | CPU µs/answer" for k in kinds) + " | shadow compared / shed | journal written / dropped |")
    w("|---:|" + "---:|---:|---:|" * len(kinds) + "---:|---:|")
    for rate in rates:
        parts = []
        for k in kinds:
            rs = [r for r in runs if r["config"] == k and r.get("test") == "saturation" and r["offered"] == rate]
            parts.append(f"{fmt(med([r['answers_per_s'] for r in rs]))} | {fmt(med([r['loss'] for r in rs]) * 100, 1)}% | "
                         f"{fmt(med([r['cpu_us_per_answer'] for r in rs]), 1)}")
        rs = [r for r in runs if r["config"] == "shadow" and r.get("test") == "saturation" and r["offered"] == rate]
        c = lambda key: sum(r.get("counters", {}).get(key, 0) for r in rs)
        w(f"| {rate:,} | " + " | ".join(parts) + f" | {fmt(c('bootpolicy_shadow_compared_total'))} / {fmt(c('bootpolicy_shadow_shed_total'))} | "
          f"{fmt(c('bootpolicy_journal_entries_total'))} / {fmt(c('bootpolicy_journal_dropped_total'))} |")
    w("")
    w("| perfdhcp rate | " + " | ".join(f"{k} p50 / p99 µs" for k in kinds) + " | p99 plain / shadow |")
    w("|---:|" + "---:|" * len(kinds) + "---:|")
    p99s = {}
    for rate in (1000, 5000):
        parts = []
        for k in kinds:
            rs = [r for r in runs if r["config"] == k and r.get("test") == "latency" and r["offered"] == rate]
            p50, p99 = med([r["p50_us"] for r in rs]), med([r["p99_us"] for r in rs])
            p99s[(k, rate)] = p99
            parts.append(f"{fmt(p50)} / {fmt(p99)}")
        x = (p99s.get(("plain", rate)) or 0) / max(1, p99s.get(("shadow", rate)) or 1)
        w(f"| {rate:,} | " + " | ".join(parts) + f" | {x:.2f}x |")
        targets.append((f"ProxyDHCP p99 at {rate:,}/s with a shadow chain and the journal, plain/shadow (>= 0.8x)", x, x >= 0.8))
    sat = {k: max(med([r["answers_per_s"] for r in runs if r["config"] == k and r.get("test") == "saturation" and r["offered"] == rate])
                  for rate in rates) for k in kinds}
    if "plain" in sat and "shadow" in sat:
        x = sat["shadow"] / sat["plain"]
        w("")
        w(f"Saturation (highest median answers/s): plain {fmt(sat['plain'])}, shadow + journal {fmt(sat['shadow'])}: **{x:.2f}x**.")
        targets.append(("ProxyDHCP saturation with a shadow chain and the journal against neither (>= 0.8x)", x, x >= 0.8))
    note = os.path.join(HERE, "SHADOW.md")
    if os.path.exists(note):
        w("")
        w(open(note).read().strip())
    w("")


def main():
    machine = load("machine.json") or {}
    dhcp = load("dhcp.json")
    lua = load("lua.json")
    storm = [r for r in (load("storm.json") or []) if r.get("server", "bootpolicy") == "bootpolicy"]
    L = []
    w = L.append
    w("# Benchmarks: bootpolicy against dnsmasq and tftp-hpa")
    w("")
    w(f"Generated by `{machine.get('command', 'bench/run.sh')}` (as root) on {machine.get('date', '?')}.")
    w(f"Machine: {machine.get('nproc', '?')} cores, {machine.get('cpu', '?')}, Linux {machine.get('kernel', '?')}; "
      f"{machine.get('dnsmasq', 'dnsmasq')}, {machine.get('perfdhcp', 'perfdhcp')}; bootpolicy at commit {machine.get('commit', '?')} "
      f"for the last section run, each section's own commit below "
      f"(`swift build -c release -Xswiftc -enable-testing`, the build the test-based benches need).")
    w(f"Quietness: load average {machine.get('load_before', '?')} before the run, {machine.get('load_after', '?')} after "
      "(1/5/15 min). The machine is shared with other builders, so every number is a median of "
      f"{machine.get('repeats', 3)} repeats and the comparisons are ratios from the same run. "
      "Load average (1/5/15 min) and commit as each section started: " + ("; ".join(machine.get("loads", [])) or "?") + ".")
    w("")
    w("Rerun everything (about 15-20 minutes): `sudo bench/run.sh` (env `BENCH_REPEATS`, `BENCH_SECONDS`). "
      "Raw results: `bench/results/*.json`; server logs in /tmp/bp-bench-logs.")
    w("")

    targets = []
    summary = dhcp_summary(dhcp) if dhcp else {}
    if summary:
        w("## ProxyDHCP (perfdhcp → bootpolicy default policy / dnsmasq working rule)")
        w("")
        w("perfdhcp (kea-admin) in namespace bp-bench-cli sends PXE DISCOVERs (options 60/93/94) from 100,000 "
          "random MACs to the server in bp-bench-srv over a veth; `-i` (DISCOVER/OFFER only). "
          "p50/p99 come from perfdhcp's per-exchange timestamps (`-x t`), CPU from the server's "
          "/proc/PID/stat (all threads) over the run. Note: perfdhcp itself tops out near 40k/s on these "
          "2 cores and shares them with the server, so the bootpolicy ceiling below is the load generator's.")
        w("")
        w("| logging | metric | bootpolicy | dnsmasq | ratio bp/dnsmasq | target |")
        w("|---|---|---:|---:|---:|---|")
        for logging in (False, True):
            b, d = summary.get(("bootpolicy", logging)), summary.get(("dnsmasq", logging))
            if not (b and d):
                continue
            lg = "on" if logging else "off"
            r = lambda x, y: (x / y) if (x is not None and y) else None
            sat = r(b["saturation"], d["saturation"])
            w(f"| {lg} | answers/s at saturation (max over rates) | {fmt(b['saturation'])} | {fmt(d['saturation'])} | "
              f"{ratio(sat)} | >= 1.5x: {ok(sat and sat >= 1.5)} |")
            ll = r(b["lossless"], d["lossless"])
            w(f"| {lg} | answers/s at <= 1% loss | {fmt(b['lossless'])} | {fmt(d['lossless'])} | {ratio(ll)} | |")
            b10, d10 = b["rates"].get(10000, {}), d["rates"].get(10000, {})
            cpu = r(b10.get("cpu_us_per_answer"), d10.get("cpu_us_per_answer"))
            w(f"| {lg} | server CPU µs per answer at 10,000/s | {fmt(b10.get('cpu_us_per_answer'), 1)} | "
              f"{fmt(d10.get('cpu_us_per_answer'), 1)} | {ratio(cpu)} | <= 1x: {ok(cpu is not None and cpu <= 1)} |")
            p50 = r(b10.get("p50_us"), d10.get("p50_us"))
            w(f"| {lg} | p50 latency µs at 10,000/s | {fmt(b10.get('p50_us'))} | {fmt(d10.get('p50_us'))} | {ratio(p50)} | |")
            p99 = r(b10.get("p99_us"), d10.get("p99_us"))
            w(f"| {lg} | p99 latency µs at 10,000/s | {fmt(b10.get('p99_us'))} | {fmt(d10.get('p99_us'))} | "
              f"{ratio(p99)} | <= 1x: {ok(p99 is not None and p99 <= 1)} |")
            w(f"| {lg} | peak RSS MB (VmHWM) | {fmt(b['rss_kb'] / 1024, 1)} | {fmt(d['rss_kb'] / 1024, 1)} | "
              f"{ratio(r(b['rss_kb'], d['rss_kb']))} | |")
            if not logging:
                targets += [("ProxyDHCP answers/s at saturation >= 1.5x dnsmasq (log off), perfdhcp as load generator "
                             "(capped by perfdhcp near 40,000/s; the cheap-load-generator row measures past it)", sat, sat and sat >= 1.5),
                            ("server CPU per answer at 10k/s <= dnsmasq (log off)", cpu, cpu is not None and cpu <= 1),
                            ("p99 at 10k/s <= dnsmasq (log off)", p99, p99 is not None and p99 <= 1)]
        w("")
        w("Per offered rate (medians of repeats):")
        w("")
        w("| offered/s | log | bootpolicy answers/s | loss | p50 µs | p99 µs | CPU µs/answer | dnsmasq answers/s | loss | p50 µs | p99 µs | CPU µs/answer |")
        w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for logging in (False, True):
            b, d = summary.get(("bootpolicy", logging)), summary.get(("dnsmasq", logging))
            if not (b and d):
                continue
            for rate in sorted(b["rates"]):
                x, y = b["rates"][rate], d["rates"].get(rate, {})
                w(f"| {rate:,} | {'on' if logging else 'off'} | {fmt(x['answers_per_s'])} | {fmt(x['loss'] * 100, 1)}% | "
                  f"{fmt(x['p50_us'])} | {fmt(x['p99_us'])} | {fmt(x['cpu_us_per_answer'], 1)} | "
                  f"{fmt(y.get('answers_per_s'))} | {fmt((y.get('loss') or 0) * 100, 1)}% | {fmt(y.get('p50_us'))} | "
                  f"{fmt(y.get('p99_us'))} | {fmt(y.get('cpu_us_per_answer'), 1)} |")
        w("")
        w("![answers/s against offered load](bench/dhcp-rate.svg)")
        w("")
        svg(summary, os.path.join(HERE, "dhcp-rate.svg"), load("saturation.json"))

    sat = load("saturation.json")
    if sat:
        w("### Saturation with a cheaper load generator (logging off)")
        w("")
        w("perfdhcp spends about as much CPU per exchange as the servers, so above ~40,000/s the table above "
          "measures the two sharing two cores. `bench/saturation.py` offers the same DISCOVER from "
          "bench/dhcp_blaster.c instead (one `sendmmsg` per millisecond, OFFERs counted with `recvmmsg`; "
          "no per-exchange timing), servers alternating, "
          f"{sat.get('seconds', '?')} s per rate, median of {sat.get('repeats', '?')} repeats.")
        w("")
        w("| offered/s | bootpolicy answers/s | loss | CPU µs/answer | dnsmasq answers/s | loss | CPU µs/answer |")
        w("|---:|---:|---:|---:|---:|---:|---:|")
        def cell(kind, rate, key):
            xs = [r[key] for r in sat["runs"] if r["server"] == kind and r["offered"] == rate]
            return med(xs) if xs else None
        for rate in sat["rates"]:
            w(f"| {rate:,} | {fmt(cell('bootpolicy', rate, 'answers_per_s'))} | {fmt((cell('bootpolicy', rate, 'loss') or 0) * 100, 1)}% | "
              f"{fmt(cell('bootpolicy', rate, 'cpu_us_per_answer'), 1)} | {fmt(cell('dnsmasq', rate, 'answers_per_s'))} | "
              f"{fmt((cell('dnsmasq', rate, 'loss') or 0) * 100, 1)}% | {fmt(cell('dnsmasq', rate, 'cpu_us_per_answer'), 1)} |")
        w("")
        best_b = sat["summary"]["bootpolicy"]["max_answers_per_s"]
        best_d = sat["summary"]["dnsmasq"]["max_answers_per_s"]
        def cores(kind, best):
            # CPU in use at the rate that gave the best median: answers/s × CPU per answer.
            rate = max(sat["rates"], key=lambda r: cell(kind, r, "answers_per_s") or 0)
            return (cell(kind, rate, "answers_per_s") or 0) * (cell(kind, rate, "cpu_us_per_answer") or 0) / 1e6
        w(f"Saturation (highest median answers/s over the rates): bootpolicy {fmt(best_b)}, dnsmasq {fmt(best_d)}, "
          f"**{ratio(best_b / best_d)}**; there bootpolicy used {cores('bootpolicy', best_b):.2f} cores of CPU "
          f"(threads woken for a backlog, `dhcp.threads`) and dnsmasq {cores('dnsmasq', best_d):.2f}.")
        w("")
        targets.append(("ProxyDHCP answers/s at saturation, log off, cheap load generator (>= 1.5x)", best_b / best_d,
                        best_b / best_d >= 1.5))

    if lua:
        w("## Lua decision cost")
        w("")
        w("`PolicyChain.decide` (request table built, hook called through `lua_pcall`, decision decoded, "
          "metrics recorded) on every recorded DHCP request in fixtures/requests, in a loop; "
          "`Tests/LuaBridgeTests/LuaDecisionBenchTests.swift`, release build. Median over "
          f"{len(lua)} runs of each run's median batch.")
        w("")
        w("| policy | median µs per decision | p99 µs (batch of 200) | target |")
        w("|---|---:|---:|---|")
        for pol in ("default", "arch-aware", "inventory"):
            ms = med([run[pol]["median_us"] for run in lua if pol in run])
            ps = med([run[pol]["p99_us"] for run in lua if pol in run])
            tgt = ""
            if pol == "default":
                tgt = f"<= 5 µs: {ok(ms is not None and ms <= 5)}"
                targets.append(("default policy decision <= 5 µs", ms, ms is not None and ms <= 5))
            w(f"| {pol} | {fmt(ms, 2)} | {fmt(ps, 2)} | {tgt} |")
        w("")
        if any("answer" in run for run in lua):
            w("### A whole ProxyDHCP answer, in process")
            w("")
            w("Everything the server does between `recvmsg` and `sendto` (decode, screen, per-client facts, "
              "the default policy, the reply, the timeline event, encoding), with the objects `serve` wires, "
              "on perfdhcp-like DISCOVERs from 100,000 random MACs; `Tests/HostTests/ProxyAnswerBenchTests.swift`. "
              "\"Back to back\" is a tight loop (caches warm); \"after a 100 µs sleep\" is one answer at a time "
              "as at 10,000/s, timed with the thread's CPU clock. The last two rows leave one per-client "
              "structure out, to show what it costs. Kernel work (the two socket calls and the wake-up) is not "
              "in these figures; the lab table above has it.")
            w("")
            w("| configuration | back to back µs (median) | after a 100 µs sleep µs (median) | after a sleep, p99 µs |")
            w("|---|---:|---:|---:|")
            for key, name in (("answer", "as served"), ("answer-without-timeline", "without the client timeline"),
                              ("answer-without-facts", "without HostDecider's per-client facts")):
                hot = med([run[key]["median_us"] for run in lua if key in run])
                cold = med([run[key + "-after-sleep"]["median_us"] for run in lua if key + "-after-sleep" in run])
                coldp = med([run[key + "-after-sleep"]["p99_us"] for run in lua if key + "-after-sleep" in run])
                w(f"| {name} | {fmt(hot, 2)} | {fmt(cold, 2)} | {fmt(coldp, 1)} |")
            w("")

    dora = load("dora.json")
    if dora:
        dora_section(dora, w, targets, load("dora-machine.json") or {})

    dhcp6 = load("dhcp6.json")
    if dhcp6 and "runs" in dhcp6:
        dhcp6_section(dhcp6, w, targets)

    shadow = load("shadow.json")
    if shadow and "runs" in shadow:
        shadow_section(shadow, w, targets)

    if storm:
        w("## Boot storm (bootpolicy, arch-aware policy)")
        w("")
        n = storm[0]["clients"]
        c_storm = storm[0].get("client", "python") == "c"
        w(f"{n} simulated PXE BIOS clients start at once (bench/storm.py, "
          f"{'bench/storm_client.c' if c_storm else 'Python asyncio'} in bp-bench-cli): "
          "ProxyDHCP DISCOVER/OFFER from a distinct MAC, TFTP download of the 70 KB boot file the OFFER names "
          f"(blksize 1432, {'length, tsize and a 64-bit hash' if c_storm else 'SHA-256'} checked), then HTTP GET of `/boot.ipxe?mac=...` (checked to be that machine's "
          "script). Firmware-like bounded retries; deadline 90 s.")
        w("")
        w("| repeat | done | failures | time until all done s | median client s (dhcp / tftp / http) | VmHWM MB | highest sampled VmRSS MB | RSS before MB |")
        w("|---|---:|---:|---:|---|---:|---:|---:|")
        for r in storm:
            w(f"| {r['repeat']} | {r['ok']}/{r['clients']} | {r['failures']} | {fmt(r['seconds'], 2)} | "
              f"{fmt(r['median_client_s'], 3)} ({fmt(r['median_dhcp_s'], 3)} / {fmt(r['median_tftp_s'], 3)} / {fmt(r['median_http_s'], 3)}) | "
              f"{fmt(r['vmhwm_kb'] / 1024, 1)} | {fmt(r['rss_peak_sampled_kb'] / 1024, 1)} | {fmt(r['rss_before_kb'] / 1024, 1)} |")
        hwm = med([r["vmhwm_kb"] / 1024 for r in storm])
        t = med([r["seconds"] for r in storm])
        fails = sum(r["failures"] for r in storm)
        w(f"| **median** | | {fails} total | {fmt(t, 2)} | | {fmt(hwm, 1)} | | |")
        w("")
        targets.append(("peak RSS during the 1,000-client storm <= 64 MB", hwm, hwm is not None and hwm <= 64))
        reasons = {}
        for r in storm:
            for k, v in r["failure_reasons"].items():
                reasons[k] = reasons.get(k, 0) + v
        if reasons:
            w("Failures by reason: " + ", ".join(f"`{k}` x{v}" for k, v in reasons.items()))
            w("")

    compare = load("storm-compare.json")
    if compare:
        mc = load("storm-compare-machine.json") or {}
        first = compare[0]
        c_client = first.get("client", "python") == "c"
        w("## Boot storm against dnsmasq + nginx (bench/storm.py)")
        w("")
        w(f"The issue's storm: {first['clients']} simulated PXE BIOS clients at once, each: ProxyDHCP "
          f"DISCOVER/OFFER, the {first['tftp_bytes'] // 1024} KB boot file by TFTP (blksize 1432, "
          f"{'length, tsize and a 64-bit hash of the payload' if c_client else 'SHA-256'} checked), "
          f"its iPXE script over HTTP, then a {first['http_file_bytes'] >> 20} MB file over HTTP (length checked). "
          "Against bootpolicy (arch-aware policy, the script generated per machine) and against the seed's setup "
          "doing the same: dnsmasq in ProxyDHCP mode with its own TFTP server (`--tftp-max` raised to the client "
          "count) and nginx serving the script as a fixed file and the large file. The two alternate, "
          f"{max(r['repeat'] for r in compare) + 1} repeats, one client process for both "
          f"({'bench/storm_client.c, one epoll loop' if c_client else 'Python asyncio'}). "
          f"Measured at {mc.get('commit', '?')} on {mc.get('date', '?')}, load {mc.get('load_before', '?')} before. "
          f"Command: `{mc.get('command', 'python3 bench/storm.py run --servers bootpolicy,dnsmasq+nginx --tftp-kb 1024 --http-mb 30')}`.")
        w("")
        w("| server | repeat | done | failures | time until all done s | median client s (dhcp / tftp / http) | p99 client s | "
          "DHCP retries | listen-queue overflows | server CPU s | VmHWM MB |")
        w("|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
        for r in compare:
            w(f"| {r['server']} | {r['repeat']} | {r['ok']}/{r['clients']} | {r['failures']} | {fmt(r['seconds'], 2)} | "
              f"{fmt(r['median_client_s'], 3)} ({fmt(r['median_dhcp_s'], 3)} / {fmt(r['median_tftp_s'], 3)} / {fmt(r['median_http_s'], 3)}) | "
              f"{fmt(r.get('p99_client_s'), 3)} | {fmt(r.get('dhcp_retries'))} | "
              f"{fmt(r.get('server_counters', {}).get('TcpExt.ListenOverflows'))} | "
              f"{fmt(r.get('server_cpu_s'), 1)} | {fmt(r['vmhwm_kb'] / 1024, 1)} |")
        by = {}
        for r in compare:
            by.setdefault(r["server"], []).append(r)
        bp, ref = by.get("bootpolicy"), by.get("dnsmasq+nginx")
        if bp and ref:
            tb, tr = med([r["seconds"] for r in bp]), med([r["seconds"] for r in ref])
            fails = sum(r["failures"] for r in bp)
            w("")
            w(f"Medians: bootpolicy {fmt(tb, 2)} s, dnsmasq + nginx {fmt(tr, 2)} s (ratio {fmt(tb / tr, 2)}); "
              f"failures: bootpolicy {fails}, dnsmasq + nginx {sum(r['failures'] for r in ref)}. "
              "(nginx's memory is its master's only: its workers are not counted; its CPU counts them"
              f"{'' if 'server_counters' in first else ' only from 2026-12-07 on'}.)")
            targets.append(("1,000-client storm (DHCP, 1 MB TFTP, script, 30 MB HTTP): time <= dnsmasq + nginx, 0 failures (ratio)",
                            tb / tr, tb <= tr and fails == 0))
        w("")
        note = os.path.join(HERE, "STORM-COMPARE.md")
        if os.path.exists(note):
            w(open(note).read().strip())
            w("")

    tftp = os.path.join(HERE, "tftp", "RESULTS.md")
    if os.path.exists(tftp):
        w("## TFTP (from bench/tftp/run.sh)")
        w("")
        text = open(tftp).read()
        text = re.sub(r"^# .*\n", "", text, count=1)
        w(text.replace("\n## ", "\n### ").strip())
        w("")

    # Durable state: bench/state_bench.py's figures, written up by hand with their commits.
    state = os.path.join(HERE, "STATE.md")
    if os.path.exists(state):
        w(open(state).read().strip())
        w("")

    # Hostile-network work (HTTP against nginx, the soak) and the inventory data files:
    # written up by hand, with commits.
    for part in ("HARDENING.md", "DATA.md"):
        path = os.path.join(HERE, part)
        if os.path.exists(path):
            w(open(path).read().strip())
            w("")

    https = load("https.json")
    if https:
        w("## HTTPS (http.tls) against nginx, same certificate (bench/https_bench.py)")
        w("")
        w(f"`sudo python3 bench/https_bench.py --binary .build/release/bootpolicy --repeats {https['repeats']} --seconds {https['seconds']} --out bench/results/https.json`"
          f" (also `bench/run.sh`, section `https`): both servers in bp-bench-srv over TLS with one RSA 2048 certificate,"
          f" wrk from bp-bench-cli, {https['seconds']} s per run, {https['connections']} connections (16 for 64 MB),"
          f" the servers alternated, medians of {https['repeats']}. {https.get('nginx', '')}. `handshakes` sends"
          f" `Connection: close`, so every request is a full TLS handshake (wrk resumes no sessions).")
        w("")
        w("| case | bootpolicy req/s | nginx req/s | bootpolicy / nginx | bootpolicy MB/s | nginx MB/s | errors |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for name, c in https["cases"].items():
            w(f"| {name} | {fmt(c['bootpolicy_rps'])} | {fmt(c['nginx_rps'])} | {fmt(c['ratio'], 2)} |"
              f" {fmt(c['bootpolicy_mb_s'])} | {fmt(c['nginx_mb_s'])} | {c['errors']} |")
        w("")
        for name, what in (("file-1m", "HTTPS 1 MB file"), ("file-64m", "HTTPS 64 MB file"), ("handshakes", "TLS handshakes/s")):
            r = https["cases"].get(name, {}).get("ratio")
            if r is not None:
                targets.append((f"{what} >= 0.8x nginx (same certificate)", r, r >= 0.8))

    http = load("http.json")
    if http:
        cases = http["cases"]
        for name, what in (("file-1m", "1 MB"), ("file-64m", "64 MB")):
            r = cases.get(name, {}).get("ratio")
            if r is not None:
                targets.append((f"HTTP {what} file req/s >= 1.0x nginx (wrk, 100 connections; 16 for 64 MB)", r, r >= 1.0))
        rps = cases.get("script", {}).get("bootpolicy_rps")
        if rps is not None:
            targets.append(("generated per-machine scripts over HTTP >= 25,000/s", rps, rps >= 25000))

    if targets:
        w("## Targets from the issue")
        w("")
        w("| target | measured | verdict |")
        w("|---|---:|---|")
        for name, val, good in targets:
            w(f"| {name} | {fmt(val, 2)} | {ok(good)} |")
        # Targets of benches that write no JSON, with their figures written up by hand.
        extra = os.path.join(HERE, "targets-extra.md")
        if os.path.exists(extra):
            for line in open(extra):
                if line.startswith("|"):
                    w(line.rstrip("\n"))
        w("")
    notes = os.path.join(HERE, "NOTES.md")
    if os.path.exists(notes):
        w(open(notes).read().strip())
        w("")
    with open(os.path.join(REPO, "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    print("wrote BENCHMARKS.md and bench/dhcp-rate.svg", file=sys.stderr)


if __name__ == "__main__":
    main()
