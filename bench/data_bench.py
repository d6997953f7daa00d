#!/usr/bin/env python3
"""What a large inventory costs: a 100,000-row `data:` file (CSV keyed by MAC, the same rows
as YAML and as JSON) loaded by `bootpolicy check` and by `bootpolicy serve`, against the same
configuration without data, in one run. Loopback only (serve binds 127.0.0.1 with DHCP and
TFTP off); nothing else is started.

Reported per format, medians of --repeats runs:
  check_s     wall time of `bootpolicy check` (parse, check, build every Lua state's tables)
  extra_s     that minus the same check without data
  serve_s     from exec to READY (the `serving:` line), with data
  rss_mb      resident memory of the serving process 3 s after ready, and extra_mb over no data
  per_state   what one Lua state's copy takes, as serve logs it (`data loaded: ... KiB`)
  reload_s    from an edit of the file (one row renamed) to the server answering with it

    bench/data_bench.py [--binary .build/release/bootpolicy] [--rows 100000] [--repeats 5]
"""
import argparse, json, os, re, shutil, signal, statistics, subprocess, sys, tempfile, time, urllib.request

POLICY = """
return { http = function(req)
  local mac = req.path:match("^/m/(.+)$")
  local row = mac and data.m and data.m[mac]
  return { content = (row and row.name or "none") .. "\\n" }
end }
"""


def macs(n):
    for i in range(n):
        yield "52:54:%02x:%02x:%02x:%02x" % ((i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255)


def rows(n):
    for i, m in enumerate(macs(n)):
        yield {"mac": m, "name": "node-%06d" % i, "rack": "r%03d" % (i // 40), "profile": ("worker", "storage", "db")[i % 3],
               "kernel": "/debian/vmlinuz", "cmdline": "auto=true priority=critical url=/preseed/%d.cfg" % (i % 7)}


def write_files(d, n):
    cols = ["mac", "name", "rack", "profile", "kernel", "cmdline"]
    with open(os.path.join(d, "m.csv"), "w") as f:
        f.write(",".join(cols) + "\n")
        for r in rows(n):
            f.write(",".join(r[c] for c in cols) + "\n")
    with open(os.path.join(d, "m.yaml"), "w") as f:
        for r in rows(n):
            f.write("- mac: %s\n" % r["mac"] + "".join("  %s: %s\n" % (c, r[c]) for c in cols[1:]))
    with open(os.path.join(d, "m.json"), "w") as f:
        json.dump(list(rows(n)), f)
    with open(os.path.join(d, "p.lua"), "w") as f:
        f.write(POLICY)
    for fmt in ("none", "csv", "yaml", "json"):
        with open(os.path.join(d, "%s.yaml" % fmt), "w") as f:
            f.write("policies:\n  - file: p.lua\n")
            if fmt != "none":
                f.write("data:\n  m: { file: m.%s, key: mac, key_format: mac }\n" % fmt)


def timed(cmd):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, _ = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    err = p.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), err))
    return dt


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def serve(binary, config, d, edit=None):
    """Starts serve, waits for `serving:`, returns (ready_s, rss_mb, per_state_kib, reload_s)."""
    log = open(os.path.join(d, "serve.log"), "w+")
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "serve", "--user", "root", "--config", config, "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0"],
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        port, ready = None, None
        for _ in range(1200):  # 120 s at most
            log.seek(0)
            text = log.read()
            m = re.search(r"serving: http 127\.0\.0\.1:(\d+)", text)
            if m:
                port, ready = int(m.group(1)), time.monotonic() - t0
                break
            if p.poll() is not None:
                sys.exit("serve exited:\n" + text)
            time.sleep(0.1)
        if port is None:
            sys.exit("serve not ready in 120 s")
        # Settled: a reload at start (port 0 is learnt, then the chain is built again) leaves
        # the old states to free and malloc_trim a second later.
        time.sleep(3)
        rss = rss_mb(p.pid)
        kib = re.search(r"data loaded: .*; (\d+) KiB in each of (\d+) Lua states", text)
        reload_s = None
        if edit:
            url = "http://127.0.0.1:%d/m/52:54:00:00:00:07" % port
            assert urllib.request.urlopen(url, timeout=5).read() == b"node-000007\n"
            t1 = time.monotonic()
            edit()
            for _ in range(600):  # 60 s at most
                if urllib.request.urlopen(url, timeout=5).read() == b"renamed\n":
                    reload_s = time.monotonic() - t1
                    break
                time.sleep(0.02)
        return ready, rss, (int(kib.group(1)), int(kib.group(2))) if kib else (0, 0), reload_s
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/bootpolicy")
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    d = tempfile.mkdtemp(prefix="bp-data-bench-")
    try:
        write_files(d, a.rows)
        sizes = {f: os.path.getsize(os.path.join(d, "m.%s" % f)) / 1e6 for f in ("csv", "yaml", "json")}
        results = {}
        for fmt in ("none", "csv", "yaml", "json"):
            cfg = os.path.join(d, "%s.yaml" % fmt)
            checks, readies, rsss, reloads, per = [], [], [], [], (0, 0)
            for _ in range(a.repeats):
                checks.append(timed([binary, "check", "--config", cfg]))
                edit = None
                if fmt != "none":
                    src = os.path.join(d, "m.%s" % fmt)
                    original = open(src).read()

                    def edit(src=src, original=original):
                        tmp = src + ".new"
                        with open(tmp, "w") as f:
                            f.write(original.replace("node-000007", "renamed", 1))
                        os.rename(tmp, src)
                ready, rss, per, reload_s = serve(binary, cfg, d, edit)
                if fmt != "none":
                    with open(src, "w") as f:
                        f.write(original)
                readies.append(ready)
                rsss.append(rss)
                if reload_s is not None:
                    reloads.append(reload_s)
            results[fmt] = dict(check_s=statistics.median(checks), serve_s=statistics.median(readies),
                                rss_mb=statistics.median(rsss), per_state_kib=per[0], states=per[1],
                                reload_s=statistics.median(reloads) if reloads else None)
        base = results["none"]
        print("rows=%d repeats=%d binary=%s" % (a.rows, a.repeats, a.binary))
        print("| data file | size MB | check s | extra s | serve ready s | RSS MB | extra RSS MB | per Lua state MiB | states | edit -> live s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        print("| none | | %.3f | | %.3f | %.1f | | | | |" % (base["check_s"], base["serve_s"], base["rss_mb"]))
        for fmt in ("csv", "yaml", "json"):
            r = results[fmt]
            print("| %s | %.1f | %.3f | %.3f | %.3f | %.1f | %.1f | %.1f | %d | %s |" % (
                fmt, sizes[fmt], r["check_s"], r["check_s"] - base["check_s"], r["serve_s"], r["rss_mb"],
                r["rss_mb"] - base["rss_mb"], r["per_state_kib"] / 1024.0, r["states"],
                "%.2f" % r["reload_s"] if r["reload_s"] is not None else "-"))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
