#!/usr/bin/env python3
"""State writes through the control API: `PUT /api/v1/clients/{mac}/state` from wrk, each
request a new MAC out of 65,536, at several connection counts, against one `bootpolicy serve`
per store (memory, SQLite sync full, and PostgreSQL when --postgres URL is given). Every 200 is
a durable write (the API answers only after the commit), so requests/s is durable writes/s.
Nothing but HTTP on loopback: no DHCP, no TFTP.

    bench/api_bench.py [--binary .build/release/bootpolicy] [--connections 1,16,64] [--seconds 5]
                       [--repeats 3] [--postgres postgres://...] [--out bench/results/api.json]
"""
import argparse, json, os, re, shutil, socket, statistics, subprocess, sys, tempfile, time

TOKEN = "bench-0123456789abcdef0123456789abcdef"

WRK_SCRIPT = r"""
local n = 0
local token = "%s"
init = function(args) math.randomseed(os.time() + math.floor(os.clock() * 1000000)) end
request = function()
  n = n + 1
  local id = math.random(0, 65535)
  local mac = string.format("02:77:%%02x:%%02x:00:01", math.floor(id / 256), id %% 256)
  local body = string.format('{"installed":true,"n":%%d,"rack":"r7"}', n)
  return wrk.format("PUT", "/api/v1/clients/" .. mac .. "/state", {
    ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%%d errors=%%d non2xx=%%d p50=%%d p99=%%d\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
""" % TOKEN


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(binary, store, workdir):
    port = free_port()
    tokens = os.path.join(workdir, "tokens")
    with open(tokens, "w") as f:
        f.write("write %s bench\n" % TOKEN)
    os.chmod(tokens, 0o600)
    cmd = [binary, "serve", "--user", "root", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", str(port),
           "--api-tokens", tokens, "--state", store, "--log-level", "warning"]
    log = open(os.path.join(workdir, "serve.log"), "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p, port
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise SystemExit("server did not start: " + open(os.path.join(workdir, "serve.log")).read())


def run_wrk(port, connections, seconds, workdir):
    script = os.path.join(workdir, "put.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    threads = min(2, connections)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", "%ds" % seconds, "--latency",
                          "-s", script, "http://127.0.0.1:%d" % port], capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"RESULT requests=(\d+) errors=(\d+) non2xx=(\d+) p50=(\d+) p99=(\d+)", out.stdout)
    if not m:
        raise SystemExit("wrk: " + out.stdout + out.stderr)
    req, err, bad, p50, p99 = map(int, m.groups())
    return {"writes_per_s": (req - bad) / seconds, "errors": err, "non2xx": bad, "p50_us": p50, "p99_us": p99}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/bootpolicy")
    ap.add_argument("--connections", default="1,16,64")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--postgres", default=os.environ.get("BOOTPOLICY_TEST_POSTGRES"))
    ap.add_argument("--out", default="bench/results/api.json")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (scripts/deps.sh bench)")
    conns = [int(c) for c in a.connections.split(",")]
    stores = {"memory": lambda d: "memory", "sqlite-full": lambda d: os.path.join(d, "state.db")}
    if a.postgres:
        stores["postgres"] = lambda d: a.postgres
    results = {name: {c: [] for c in conns} for name in stores}
    load = open("/proc/loadavg").read().split()[:3]
    for r in range(a.repeats):
        # Stores alternate within a repeat, so a noisy minute falls on all of them.
        for name, store in stores.items():
            with tempfile.TemporaryDirectory(prefix="bp-api-bench-") as d:
                p, port = start(a.binary, store(d), d)
                try:
                    for c in conns:
                        res = run_wrk(port, c, a.seconds, d)
                        results[name][c].append(res)
                        print("run %d %-12s c=%-3d %8.0f writes/s  p50 %6d us  p99 %6d us  non2xx %d errors %d" % (
                            r + 1, name, c, res["writes_per_s"], res["p50_us"], res["p99_us"], res["non2xx"], res["errors"]),
                            flush=True)
                finally:
                    p.terminate()
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.kill()
    summary = {}
    for name in stores:
        summary[name] = {}
        for c in conns:
            rs = results[name][c]
            summary[name][c] = {
                "writes_per_s": statistics.median(x["writes_per_s"] for x in rs),
                "p50_us": statistics.median(x["p50_us"] for x in rs),
                "p99_us": statistics.median(x["p99_us"] for x in rs),
                "non2xx": sum(x["non2xx"] for x in rs), "errors": sum(x["errors"] for x in rs),
                "runs": rs,
            }
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"commit": rev, "load_before": load, "seconds": a.seconds, "repeats": a.repeats,
                   "summary": summary}, f, indent=1)
    print(json.dumps({k: {c: round(v[c]["writes_per_s"]) for c in conns} for k, v in summary.items()}))


if __name__ == "__main__":
    main()
