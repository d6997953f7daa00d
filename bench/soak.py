#!/usr/bin/env python3
"""Soak: mixed DHCP/TFTP/HTTP load for a long time, with reloads, on `bootpolicy serve`.

Each client cycle is what a netbooting machine does: a firmware DISCOVER (-> undionly.kpxe),
sometimes the 70 KB loader by TFTP, an iPXE DISCOVER (-> a tokened script URL from
arch-aware), the script over HTTP (checked to be that machine's), sometimes a 1 MB file over
HTTP. MACs walk a pool (default 20,000, more than the DHCP facts cache's 16,384 entries, so its
bound is exercised all the time) in order, so after one pass every client the server will ever
remember is known: memory that grows after that pass is a leak, not new clients. Every `--reload-every` seconds the config is rewritten and SIGHUP
sent, cycling through two good configs and a broken policy (refused, the old chain kept).

Sampled every 10 s: the server's VmRSS, open descriptors and threads. The verdict compares
the median of the first and last fifths of the run after the first pass over the pool (and at
least a minute): memory and descriptors must stay flat. Writes JSON (bench/results/) and an SVG plot.

All traffic stays inside the bench namespaces (benchlib: 192.168.78.0/24, only there).

    bench/soak.py run --binary .build/release/bootpolicy [--minutes 30] [--rate 100]
"""
import argparse, asyncio, hashlib, json, os, random, signal, socket, struct, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import CLI, CLI_IF, SRV, SRV_ADDR, SRV_IF, Lab, median, status_kb  # noqa: E402
import storm  # noqa: E402  (its DHCP/TFTP/HTTP client pieces)

BIG_FILE = "kernel"
BIG_SIZE = 1 << 20
LOADER_SIZE = 70 * 1024  # the loader fetched by TFTP (storm.py's default --tftp-kb)
POOL = 20_000


# ---------------------------------------------------------------- client side (in bp-bench-cli)

def ipxe_discover(xid, mac):
    """The DISCOVER iPXE sends: the firmware's, plus option 175 and user class 'iPXE'."""
    base = storm.discover(xid, mac)
    assert base.endswith(b"\xff")
    return base[:-1] + bytes([77, 4]) + b"iPXE" + bytes([175, 3, 19, 1, 1, 255])


async def exchange(mux, sock, xid, packet):
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    mux.waiting[xid] = fut
    try:
        for attempt in range(4):
            sock.sendto(packet, ("255.255.255.255", 67))
            try:
                return await asyncio.wait_for(asyncio.shield(fut), 1.0 * (attempt + 1))
            except asyncio.TimeoutError:
                continue
        raise RuntimeError("no OFFER")
    finally:
        mux.waiting.pop(xid, None)


async def http_file(server, path, size):
    reader, writer = await asyncio.open_connection(server, storm.HTTP_PORT)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(-1), 30)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0] + b" " or len(body) != size:
        raise RuntimeError(f"http file: {head[:30]!r}, {len(body)} bytes")


async def cycle(i, mux, transport, args, counts):
    loop = asyncio.get_running_loop()
    n = i % args.pool
    mac = bytes([0x02, 0x78, 0x50, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF])
    mac_text = ":".join(f"{b:02x}" for b in mac)
    stage = "dhcp"
    try:
        xid = random.getrandbits(32)
        _, siaddr, bootfile = await exchange(mux, transport, xid, storm.discover(xid, mac))
        if bootfile != storm.BOOT_FILE:
            raise RuntimeError(f"firmware got {bootfile!r}")
        if i % 5 == 0:
            stage = "tftp"
            await storm.tftp_get(loop, siaddr, bootfile, args.sha256)
        stage = "ipxe-dhcp"
        xid = random.getrandbits(32)
        _, _, url = await exchange(mux, transport, xid, ipxe_discover(xid, mac))
        prefix = f"http://{args.server}:{storm.HTTP_PORT}"
        if not url.startswith(prefix + "/boot.ipxe?") or "token=" not in url:
            raise RuntimeError(f"iPXE got {url!r}")
        stage = "script"
        await storm.http_get(args.server, url[len(prefix):], mac_text)
        if i % 20 == 0:
            stage = "http-file"
            await http_file(args.server, "/" + BIG_FILE, BIG_SIZE)
        counts["ok"] += 1
    except Exception as e:  # counted, never the end of the soak
        key = f"{stage}: {str(e)[:60]}"
        counts["failures"][key] = counts["failures"].get(key, 0) + 1


async def client(args):
    loop = asyncio.get_running_loop()
    dsock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    dsock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    dsock.setsockopt(socket.SOL_SOCKET, storm.SO_BINDTODEVICE, args.iface.encode())
    dsock.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE
    dsock.bind(("0.0.0.0", 68))
    dsock.setblocking(False)
    mux = storm.DHCPMux(dsock)
    loop.add_reader(dsock.fileno(), mux.readable)
    transport = mux  # its sendto, for the DISCOVERs
    counts = {"ok": 0, "started": 0, "failures": {}}
    running = set()
    start = time.monotonic()
    end = start + args.seconds
    i = 0
    while time.monotonic() < end:
        # Paced: cycle i starts at start + i/rate; at most 64 in flight (a slow server is
        # offered less, not buried).
        due = start + i / args.rate
        now = time.monotonic()
        if due > now:
            await asyncio.sleep(due - now)
        if len(running) >= 64:
            _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            continue
        t = asyncio.create_task(cycle(i, mux, transport, args, counts))
        running.add(t)
        t.add_done_callback(running.discard)
        counts["started"] += 1
        i += 1
    if running:
        await asyncio.wait(running, timeout=60)
    counts["seconds"] = time.monotonic() - start
    return counts


# ---------------------------------------------------------------- driver (root namespace)

CONFIG = """tftp:
  max_transfers: 512
  max_transfers_per_client: 512
http:
  root: {root}
  script_key: {key}
  max_connections_per_client: 4096
state:
  store: {state}
policies:
  - file: {policy}
    config:
      script:
        echo: ["soak generation {gen}"]
"""


def fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def svg(samples, reloads, path):
    W, H, L, R, T, B = 760, 300, 60, 60, 30, 40
    t_max = max(s["t"] for s in samples) or 1
    rss_max = max(s["rss_mb"] for s in samples) * 1.2 or 1
    fd_max = max(s["fds"] for s in samples) * 1.2 or 1

    def x(t): return L + (W - L - R) * t / t_max
    def y(v, top): return H - B - (H - T - B) * v / top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<text x="{L}" y="18">bootpolicy soak: RSS (MB, blue, left) and open descriptors (orange, right) over minutes; grey ticks = reloads</text>',
             f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
             f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
             f'<line x1="{W - R}" y1="{T}" x2="{W - R}" y2="{H - B}" stroke="black"/>']
    for t in reloads:
        parts.append(f'<line x1="{x(t):.1f}" y1="{H - B}" x2="{x(t):.1f}" y2="{H - B - 6}" stroke="#999"/>')
    for frac in (0, 0.5, 1):
        parts.append(f'<text x="{L - 5}" y="{y(rss_max * frac, rss_max) + 4:.1f}" text-anchor="end">{rss_max * frac:.0f}</text>')
        parts.append(f'<text x="{W - R + 5}" y="{y(fd_max * frac, fd_max) + 4:.1f}">{fd_max * frac:.0f}</text>')
    for m in range(0, int(t_max / 60) + 1, 5):
        parts.append(f'<text x="{x(m * 60):.1f}" y="{H - B + 15}" text-anchor="middle">{m}</text>')
    for key, top, colour in (("rss_mb", rss_max, "#1f77b4"), ("fds", fd_max, "#ff7f0e")):
        pts = " ".join(f"{x(s['t']):.1f},{y(s[key], top):.1f}" for s in samples)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def run(args):
    binary = os.path.abspath(args.binary)
    work = tempfile.mkdtemp(prefix="bp-soak-")
    root = os.path.join(work, "root")
    os.makedirs(root)
    loader = random.Random(1).randbytes(LOADER_SIZE)
    with open(os.path.join(root, storm.BOOT_FILE), "wb") as f:
        f.write(loader)
    with open(os.path.join(root, BIG_FILE), "wb") as f:
        f.write(random.Random(2).randbytes(BIG_SIZE))
    os.chmod(root, 0o755)
    key = os.path.join(work, "script-key")
    with open(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write("soak-" + os.urandom(16).hex() + "\n")
    broken = os.path.join(work, "broken.lua")
    with open(broken, "w") as f:
        f.write("return { name = 'broken', dhcp = function(req) return { filename = } end }\n")
    config = os.path.join(work, "bootpolicy.yaml")
    state = os.path.join(work, "state.db")

    def write_config(gen, policy="arch-aware"):
        with open(config, "w") as f:
            f.write(CONFIG.format(root=root, key=key, state=state, policy=policy, gen=gen))
    write_config(0)
    logpath = os.path.join(args.logdir, "soak.log")
    os.makedirs(args.logdir, exist_ok=True)
    samples, reloads, refused_reloads = [], [], 0
    with Lab() as lab:
        with open(logpath, "w") as log:
            p = lab.spawn(SRV, [binary, "serve", "--interface", SRV_IF, "--tftp-root", root, "--config", config,
                                "--http-port", str(storm.HTTP_PORT), "--log-level", "warning"], log)
        deadline = time.time() + 30
        while time.time() < deadline and p.poll() is None:
            r = subprocess.run(["ip", "netns", "exec", CLI, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                "--max-time", "1", f"http://{SRV_ADDR}:{storm.HTTP_PORT}/healthz"], capture_output=True, text=True)
            if r.stdout.strip() == "200":
                break
            time.sleep(0.3)
        else:
            raise SystemExit(f"bootpolicy did not come up; see {logpath}")
        seconds = int(args.minutes * 60)
        c = subprocess.Popen(
            ["ip", "netns", "exec", CLI, sys.executable, os.path.abspath(__file__), "client", "--server", SRV_ADDR,
             "--iface", CLI_IF, "--seconds", str(seconds), "--rate", str(args.rate), "--pool", str(args.pool),
             "--sha256", hashlib.sha256(loader).hexdigest()],
            stdout=subprocess.PIPE, text=True, preexec_fn=__import__("benchlib").raise_nofile)
        lab.procs.append(c)
        t0 = time.monotonic()
        next_sample, next_reload, gen = t0, t0 + args.reload_every, 0
        while c.poll() is None and time.monotonic() - t0 < seconds + 120:  # bounded
            now = time.monotonic()
            if p.poll() is not None:
                break  # the server died: the verdict says so
            if now >= next_sample:
                samples.append({"t": round(now - t0, 1), "rss_mb": round(status_kb(p.pid, "VmRSS") / 1024, 1),
                                # What the RSS is: the heap and stacks, file pages (the binary,
                                # SQLite's mapped WAL index), shared memory.
                                "anon_mb": round(status_kb(p.pid, "RssAnon") / 1024, 1),
                                "file_mb": round(status_kb(p.pid, "RssFile") / 1024, 1),
                                "shmem_mb": round(status_kb(p.pid, "RssShmem") / 1024, 1),
                                "fds": fds(p.pid), "threads": status_kb(p.pid, "Threads")})
                next_sample += 10
            if now >= next_reload:
                gen += 1
                # Every third reload is a broken policy: refused, the running chain kept.
                if gen % 3 == 0:
                    write_config(gen, broken)
                    refused_reloads += 1
                else:
                    write_config(gen)
                os.kill(p.pid, signal.SIGHUP)
                reloads.append(round(now - t0, 1))
                next_reload += args.reload_every
            time.sleep(0.5)
        out = c.stdout.read()
        alive = p.poll() is None
        lab.stop(p)
    counts = json.loads(out) if out.strip() else {"ok": 0, "failures": {"client": "no output"}}
    with open(logpath) as f:
        log_text = f.read()
    warmup = max(60.0, args.pool / args.rate + 20)
    steady = [s for s in samples if s["t"] >= warmup]
    fifth = max(1, len(steady) // 5)
    first, last = steady[:fifth], steady[-fifth:]
    summary = {
        "minutes": args.minutes, "rate": args.rate, "pool": args.pool, "warmup_s": warmup, "cycles_ok": counts["ok"], "cycles_started": counts.get("started"),
        "failures": counts["failures"], "server_alive": alive, "reloads": len(reloads), "reloads_broken": refused_reloads,
        "reloads_refused_in_log": log_text.count("policy reload failed"),
        "rss_first_mb": median([s["rss_mb"] for s in first]), "rss_last_mb": median([s["rss_mb"] for s in last]),
        "rss_max_mb": max((s["rss_mb"] for s in samples), default=0),
        "anon_first_mb": median([s["anon_mb"] for s in first]), "anon_last_mb": median([s["anon_mb"] for s in last]),
        "file_first_mb": median([s["file_mb"] for s in first]), "file_last_mb": median([s["file_mb"] for s in last]),
        "shmem_first_mb": median([s["shmem_mb"] for s in first]), "shmem_last_mb": median([s["shmem_mb"] for s in last]),
        "fds_first": median([s["fds"] for s in first]), "fds_last": median([s["fds"] for s in last]),
        "fds_max": max((s["fds"] for s in samples), default=0),
        "threads_first": median([s["threads"] for s in first]), "threads_last": median([s["threads"] for s in last]),
    }
    summary["rss_growth_pct"] = round(100 * (summary["rss_last_mb"] - summary["rss_first_mb"]) / max(1, summary["rss_first_mb"]), 1)
    print(json.dumps(summary, indent=1), file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump({"summary": summary, "samples": samples, "reloads": reloads}, f, indent=1)
    svg(samples, reloads, args.svg)
    # A soak whose clients did not run measures nothing: it fails (it said "flat" for a
    # client that died at start, before the verdict counted cycles).
    started = summary["cycles_started"] or 0
    summary["cycles_complete"] = started > 0 and summary["cycles_ok"] >= 0.99 * started
    summary["steady_samples"] = len(steady)  # too few (a short soak): no verdict on memory
    flat = (summary["cycles_complete"] and len(steady) >= 10 and summary["server_alive"] and summary["rss_growth_pct"] <= 10 and summary["fds_last"] <= summary["fds_first"] + 16
            and summary["reloads_refused_in_log"] == refused_reloads)
    print("soak: " + ("flat" if flat else "NOT flat or failing") + f"; wrote {args.out} and {args.svg}", file=sys.stderr)
    sys.exit(0 if flat else 1)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("run")
    r.add_argument("--binary", default=".build/release/bootpolicy")
    r.add_argument("--minutes", type=float, default=30)
    r.add_argument("--rate", type=float, default=100, help="client cycles started per second")
    r.add_argument("--reload-every", type=float, default=60)
    r.add_argument("--pool", type=int, default=POOL, help="distinct client MACs, walked in order")
    r.add_argument("--logdir", default="/tmp/bp-bench-logs")
    r.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "soak.json"))
    r.add_argument("--svg", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "soak.svg"))
    c = sub.add_parser("client")
    c.add_argument("--server", required=True)
    c.add_argument("--iface", required=True)
    c.add_argument("--seconds", type=float, required=True)
    c.add_argument("--rate", type=float, required=True)
    c.add_argument("--pool", type=int, default=POOL)
    c.add_argument("--sha256", required=True)
    args = ap.parse_args()
    if args.mode == "run":
        run(args)
    else:
        print(json.dumps(asyncio.run(client(args))))


if __name__ == "__main__":
    main()
