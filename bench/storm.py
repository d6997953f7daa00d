#!/usr/bin/env python3
"""Boot storm: N simulated PXE clients against `bootpolicy serve --policy arch-aware`, and
optionally against the setup it replaces (dnsmasq in ProxyDHCP mode with its TFTP server, plus
nginx for HTTP), doing the same.

Each client, at once: a ProxyDHCP DISCOVER with PXE options from its own MAC (answered by a
broadcast OFFER naming the boot file and next-server), a TFTP download of that file
(blksize 1432, tsize, each block checked against the served file's SHA-256), then an HTTP GET
of its iPXE script (/boot.ipxe?mac=...&arch=bios, must start with #!ipxe and name the MAC;
from nginx, a static script, which cannot), then with --http-mb a kernel-sized file over HTTP
(its length checked).
Retries as firmware does, bounded: DHCP 4 tries, TFTP 5 retransmits per block, whole storm
--deadline seconds. Measures time until every client is done, failures by stage and
bootpolicy's peak RSS (VmHWM) and the highest VmRSS sampled during the storm.

Two clients do that sequence: `--client c` (the default), bench/storm_client.c, one epoll loop
compiled here with gcc -O2 (the TFTP payload checked by length and a 64-bit word hash instead
of SHA-256, and it also reports p99s, retries and its own CPU time); `--client python`, this
script's asyncio `client` mode, which on two cores was itself the storm's bottleneck.

    bench/storm.py run --binary .build/release/bootpolicy [--clients 1000] [--repeats 3]
    bench/storm.py run --servers bootpolicy,dnsmasq+nginx --tftp-kb 1024 --http-mb 30 \
        --out bench/results/storm-compare.json     # the issue's storm, side by side

`run` builds the namespaces (benchlib.Lab), starts the server in bp-bench-srv on bpb-s and
this script's `client` mode in bp-bench-cli; everything is removed on exit.
"""
import argparse, asyncio, hashlib, hmac, json, os, random, socket, struct, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import CLI, CLI_IF, SRV, SRV_ADDR, SRV_IF, Lab, cpu_seconds, status_kb, write_nginx_conf, write_results  # noqa: E402

BOOT_FILE = "undionly.kpxe"
BIG_FILE = "vmlinuz"
BLKSIZE = 1432
HTTP_PORT = 8080
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


# ---------------------------------------------------------------- client side (in bp-bench-cli)

def discover(xid, mac):
    """A PXE BIOS DISCOVER as an Intel UNDI ROM sends it (RFC 2131 + RFC 4578 options)."""
    uuid = bytes([0]) + mac + bytes(10)
    opts = bytes([53, 1, 1])
    opts += bytes([57, 2]) + struct.pack("!H", 1260)
    opts += bytes([55, 9, 1, 3, 43, 60, 66, 67, 97, 128, 129])
    opts += bytes([93, 2, 0, 0, 94, 3, 1, 2, 1, 97, 17]) + uuid
    vc = b"PXEClient:Arch:00000:UNDI:002001"
    opts += bytes([60, len(vc)]) + vc + bytes([255])
    hdr = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, bytes(4), bytes(4), bytes(4),
                      bytes(4), mac + bytes(10), bytes(64), bytes(128))
    return hdr + b"\x63\x82\x53\x63" + opts


def parse_offer(data):
    if len(data) < 240 or data[0] != 2:
        return None
    xid = struct.unpack("!I", data[4:8])[0]
    siaddr = socket.inet_ntoa(data[20:24])
    bootfile = data[108:236].split(b"\0", 1)[0].decode(errors="replace")
    return xid, siaddr, bootfile


class DHCPMux:
    """One socket on port 68 for all clients (replies are broadcast); routes by xid.

    Drains the socket on each wake-up: asyncio's datagram transport reads one datagram per
    loop turn, and with a thousand TFTP transfers in the same loop an OFFER waited behind a
    thousand others per turn, long enough for its client to time out and give up (server
    and kernel counters showed every DISCOVER answered and no datagram dropped)."""

    def __init__(self, sock):
        self.sock = sock
        self.waiting = {}

    def readable(self):
        while True:
            try:
                data = self.sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            o = parse_offer(data)
            if o and o[0] in self.waiting and not self.waiting[o[0]].done():
                self.waiting[o[0]].set_result(o)

    def sendto(self, data, addr):
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            pass  # a full send buffer: lost, as on a wire; the client retries


class TFTPClient(asyncio.DatagramProtocol):
    def __init__(self):
        self.queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.queue.put_nowait((data, addr))

    def error_received(self, exc):
        self.queue.put_nowait((None, exc))


async def tftp_get(loop, server, name, expected):
    transport, proto = await loop.create_datagram_endpoint(TFTPClient, local_addr=("0.0.0.0", 0))
    try:
        rrq = b"\x00\x01" + name.encode() + b"\0octet\0blksize\0" + str(BLKSIZE).encode() + b"\0tsize\x000\0"
        last = (rrq, (server, 69))
        transport.sendto(*last)
        peer = None
        blksize = 512
        want = 1
        out = bytearray()
        tries = 0
        while True:
            try:
                data, addr = await asyncio.wait_for(proto.queue.get(), 1.0)
            except asyncio.TimeoutError:
                tries += 1
                if tries > 5:
                    raise RuntimeError(f"tftp timeout at block {want}")
                transport.sendto(*last)
                continue
            if data is None:
                raise RuntimeError(f"tftp socket error {addr}")
            if peer is None:
                peer = addr
            elif addr != peer:
                continue
            op = struct.unpack("!H", data[:2])[0]
            if op == 6:  # OACK
                fields = data[2:].split(b"\0")
                opts = dict(zip(fields[0::2], fields[1::2]))
                blksize = int(opts.get(b"blksize", b"512"))
                last = (b"\x00\x04\x00\x00", peer)
                transport.sendto(*last)
                tries = 0
            elif op == 3:
                block = struct.unpack("!H", data[2:4])[0]
                if block == (want & 0xFFFF):
                    out += data[4:]
                    want += 1
                    tries = 0
                last = (b"\x00\x04" + data[2:4], peer)
                transport.sendto(*last)
                if block == ((want - 1) & 0xFFFF) and len(data) - 4 < blksize:
                    break
            elif op == 5:
                raise RuntimeError("tftp error " + data[4:].split(b"\0")[0].decode(errors="replace"))
        if hashlib.sha256(out).hexdigest() != expected:
            raise RuntimeError(f"tftp content mismatch ({len(out)} bytes)")
        return len(out)
    finally:
        transport.close()


async def http_get(server, path, mac_text):
    """The machine's script; `mac_text` None: any iPXE script (a static one names no MAC)."""
    reader, writer = await asyncio.open_connection(server, HTTP_PORT)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {server}:{HTTP_PORT}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read(-1)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise RuntimeError(f"http status {status[:40]!r}")
    if not body.startswith(b"#!ipxe") or (mac_text is not None and mac_text.encode() not in body):
        raise RuntimeError("http body is not this machine's iPXE script")
    return len(body)


async def http_get_size(server, path, size):
    """A large file, counted as it streams (not kept): its length must be `size`."""
    reader, writer = await asyncio.open_connection(server, HTTP_PORT, limit=1 << 20)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {server}:{HTTP_PORT}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
            raise RuntimeError(f"http status {head[:40]!r}")
        got = 0
        while True:
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    finally:
        writer.close()
    if got != size:
        raise RuntimeError(f"http {path}: {got} bytes, not {size}")
    return got


def script_token(key, mac_text):
    """What the policy's ipxe.script_token(mac) gives under the server's key (http.script_key)."""
    return hmac.new(key.encode(), b"bootpolicy script v1\0" + mac_text.lower().encode(), hashlib.sha256).hexdigest()[:32]


async def one_client(i, loop, mux, server, expected, timings, key, big_size, static_script):
    mac = bytes([0x52, 0x54, 0x01, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF])
    mac_text = ":".join(f"{b:02x}" for b in mac)
    xid = random.getrandbits(32)
    t0 = time.monotonic()
    stage = "dhcp"
    try:
        fut = loop.create_future()
        mux.waiting[xid] = fut
        offer = None
        for attempt in range(4):
            mux.sendto(discover(xid, mac), ("255.255.255.255", 67))
            try:
                offer = await asyncio.wait_for(asyncio.shield(fut), 1.0 * (attempt + 1))
                break
            except asyncio.TimeoutError:
                continue
        del mux.waiting[xid]
        if offer is None:
            raise RuntimeError("no OFFER")
        _, siaddr, bootfile = offer
        if bootfile != BOOT_FILE or siaddr != server:
            raise RuntimeError(f"unexpected OFFER file={bootfile!r} next-server={siaddr}")
        t1 = time.monotonic()
        stage = "tftp"
        await tftp_get(loop, siaddr, bootfile, expected)
        t2 = time.monotonic()
        stage = "http"
        # The URL arch-aware hands iPXE: every simulated client shares one address, so only
        # the token makes the server believe which machine asks.
        token = script_token(key, mac_text)
        await http_get(server, f"/boot.ipxe?mac={mac_text.replace(':', '-')}&arch=bios&token={token}",
                       None if static_script else mac_text)
        if big_size:
            stage = "http-file"
            await http_get_size(server, "/" + BIG_FILE, big_size)
        t3 = time.monotonic()
        timings.append((t1 - t0, t2 - t1, t3 - t2, t3 - t0))
        return None
    except Exception as e:  # one failed client is a counted failure, never the end of the storm
        return f"{stage}: {e}"


async def storm(args):
    loop = asyncio.get_running_loop()
    dsock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    dsock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    dsock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, args.iface.encode())
    dsock.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE
    dsock.bind(("0.0.0.0", 68))
    dsock.setblocking(False)
    mux = DHCPMux(dsock)
    loop.add_reader(dsock.fileno(), mux.readable)
    timings = []
    t0 = time.monotonic()
    tasks = [asyncio.create_task(one_client(i, loop, mux, args.server, args.sha256, timings, args.key,
                                            args.http_bytes, args.static_script))
             for i in range(args.clients)]
    done, pending = await asyncio.wait(tasks, timeout=args.deadline)
    for t in pending:
        t.cancel()
    elapsed = time.monotonic() - t0
    errors = [t.result() for t in done if t.result()] + ["deadline"] * len(pending)
    loop.remove_reader(dsock.fileno())
    dsock.close()
    by_reason = {}
    for e in errors:
        by_reason[e[:60]] = by_reason.get(e[:60], 0) + 1

    def med(k):
        xs = sorted(t[k] for t in timings)
        return xs[len(xs) // 2] if xs else None
    return {"clients": args.clients, "ok": len(timings), "failures": len(errors), "failure_reasons": by_reason,
            "seconds_all_done": elapsed if not pending else None, "seconds": elapsed,
            "median_dhcp_s": med(0), "median_tftp_s": med(1), "median_http_s": med(2), "median_client_s": med(3)}


# ---------------------------------------------------------------- orchestration (root, host side)

REFERENCE = "dnsmasq+nginx"


def tree_cpu_seconds(pid):
    """CPU seconds of `pid` and its live descendants (nginx's workers are its master's
    children, and their time is in no field of the master's stat until they are reaped)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += cpu_seconds(p)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


NS_COUNTERS = {"Udp": ("InDatagrams", "RcvbufErrors", "InErrors", "SndbufErrors"),
               "TcpExt": ("ListenOverflows", "ListenDrops", "TCPTimeouts", "TCPSynRetrans")}


def ns_counters(ns, every=False):
    """The namespace's UDP and TCP counters above (/proc/net/snmp and /proc/net/netstat);
    `every`: all of those files' counters."""
    out = {}
    for f in ("snmp", "netstat"):
        text = subprocess.run(["ip", "netns", "exec", ns, "cat", f"/proc/net/{f}"], capture_output=True, text=True).stdout
        rows = [l.split() for l in text.splitlines()]
        for names, values in zip(rows[0::2], rows[1::2]):
            group = names[0].rstrip(":")
            for k, v in zip(names[1:], values[1:]):
                if every or k in NS_COUNTERS.get(group, ()):
                    out[f"{group}.{k}"] = int(v)
    return out


def softnet_dropped():
    """Packets the host dropped at a full per-CPU input backlog (/proc/net/softnet_stat, second
    column, summed over CPUs): a veth delivers through it. Host-wide, not per namespace."""
    with open("/proc/net/softnet_stat") as f:
        return sum(int(l.split()[1], 16) for l in f if l.strip())


def build_c_client():
    """bench/storm_client.c compiled into a fresh temp folder; the binary's path."""
    exe = os.path.join(tempfile.mkdtemp(prefix="bp-storm-client-"), "storm_client")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", exe, os.path.join(HERE, "storm_client.c"), "-lm"], check=True)
    return exe


def parse_c_result(line):
    """storm_client's key=value line as the record the Python client gives (ok, failures,
    failure_reasons, seconds, medians), with every other field it prints kept as well."""
    fields = dict(kv.split("=", 1) for kv in line.split())
    r = {}
    for k, v in fields.items():
        if k == "reasons":
            continue
        try:
            r[k] = int(v)
        except ValueError:
            r[k] = None if v == "nan" else float(v)
    reasons = {}
    if fields.get("reasons", "-") != "-":
        for item in fields["reasons"].split(","):
            stage, why, n = item.rsplit(":", 2)
            reasons[f"{stage}: {why.replace('_', ' ')}"] = int(n)
    r.update(ok=r["done"], failures=r["failed"], failure_reasons=reasons,
             seconds_all_done=r["seconds"] if r["all_done"] else None)
    return r



def start_servers(lab, kind, args, binary, root, config, confdir, log):
    """The processes serving one storm: bootpolicy alone, or dnsmasq and nginx."""
    if kind == "bootpolicy":
        return [lab.spawn(SRV, [binary, "serve", "--interface", SRV_IF, "--tftp-root", root, "--http-root", root, "--config", config,
                                "--http-port", str(HTTP_PORT), "--policy", "arch-aware",
                                "--log-level", args.log_level], log)]
    # The seed's working rule (ProxyDHCP, undionly.kpxe by TFTP), its TFTP raised to as many
    # transfers as clients (default 50), and nginx for the script and the files.
    dnsmasq = lab.spawn(SRV, ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", f"--interface={SRV_IF}",
                              "--bind-interfaces", f"--dhcp-range={SRV_ADDR},proxy", f"--dhcp-boot={BOOT_FILE},,{SRV_ADDR}",
                              "--pxe-prompt=PXE,0", "--enable-tftp", f"--tftp-root={root}",
                              f"--tftp-max={max(50, args.clients + 24)}", "--quiet-dhcp", "--log-facility=-",
                              f"--pid-file={confdir}/dnsmasq.pid"], log)
    write_nginx_conf(os.path.join(confdir, "nginx.conf"), confdir, SRV_ADDR, HTTP_PORT, root)
    nginx = lab.spawn(SRV, ["nginx", "-c", os.path.join(confdir, "nginx.conf"), "-g", "daemon off;"], log)
    return [dnsmasq, nginx]


def run(args):
    binary = os.path.abspath(args.binary)
    results = []
    root = tempfile.mkdtemp(prefix="bp-storm-root-")
    data = random.Random(1).randbytes(args.tftp_kb * 1024)
    with open(os.path.join(root, BOOT_FILE), "wb") as f:
        f.write(data)
    big = args.http_mb << 20
    if big:
        with open(os.path.join(root, BIG_FILE), "wb") as f:
            f.write(random.Random(2).randbytes(big))
    # What nginx serves for /boot.ipxe (any query): a fixed script, as a fixed-file setup has.
    with open(os.path.join(root, "boot.ipxe"), "w") as f:
        f.write("#!ipxe\nchain http://%s:%d/%s\n" % (SRV_ADDR, HTTP_PORT, BIG_FILE))
    os.chmod(root, 0o755)
    sha = hashlib.sha256(data).hexdigest()
    os.makedirs(args.logdir, exist_ok=True)
    # Every simulated client sends from the one client namespace's address: lift the
    # per-address TFTP share that protects a real server from one host holding every slot.
    confdir = tempfile.mkdtemp(prefix="bp-storm-conf-")
    os.chmod(confdir, 0o755)
    config = os.path.join(confdir, "bootpolicy.yaml")
    key = "storm-" + os.urandom(16).hex()
    keyfile = os.path.join(confdir, "script-key")
    with open(os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(key + "\n")
    with open(config, "w") as f:
        f.write(f"tftp:\n  max_transfers: {max(512, args.clients)}\n  max_transfers_per_client: {max(512, args.clients)}\n"
                f"http:\n  script_key: {keyfile}\n  max_connections_per_client: {max(64, args.clients + 24)}\n")
    servers = args.servers.split(",")
    if args.client == "c":
        client_exe = build_c_client()
        # The tokens the policy will check, one a line for client i: the C client has no HMAC.
        tokens = os.path.join(confdir, "tokens")
        with open(tokens, "w") as f:
            for i in range(args.clients):
                f.write(script_token(key, ":".join(f"{b:02x}" for b in (0x52, 0x54, 0x01, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF))) + "\n")
    with Lab() as lab:
        for rep in range(args.repeats):
            for kind in servers:  # alternated, so drift on a shared machine hits both alike
                logpath = os.path.join(args.logdir, f"storm-{kind}-{rep}.log")
                with open(logpath, "w") as log:
                    procs = start_servers(lab, kind, args, binary, root, config, confdir, log)
                probe = "/healthz" if kind == "bootpolicy" else "/boot.ipxe"
                deadline = time.time() + 30
                while time.time() < deadline and all(p.poll() is None for p in procs):
                    r = subprocess.run(["ip", "netns", "exec", CLI, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                        "--max-time", "1", f"http://{SRV_ADDR}:{HTTP_PORT}{probe}"],
                                       capture_output=True, text=True)
                    if r.stdout.strip() == "200":
                        break
                    time.sleep(0.3)
                else:
                    raise SystemExit(f"{kind} did not come up; see {logpath}")
                if kind != "bootpolicy":
                    time.sleep(1)  # dnsmasq has no health endpoint: give its sockets a moment
                rss_before = sum(status_kb(p.pid, "VmRSS") for p in procs)
                counters_before = {ns: ns_counters(ns, every=True) for ns in (SRV, CLI)}
                softnet_before = softnet_dropped()
                cpu_before = sum(tree_cpu_seconds(p.pid) for p in procs)
                if args.client == "c":
                    cmd = [client_exe, "--server", SRV_ADDR, "--iface", CLI_IF, "--clients", str(args.clients),
                           "--deadline", str(args.deadline), "--boot-file", BOOT_FILE,
                           "--boot-path", os.path.join(root, BOOT_FILE), "--tokens", tokens,
                           "--script", "/boot.ipxe?mac=%m&arch=bios&token=%t", "--http-port", str(HTTP_PORT),
                           "--blksize", str(BLKSIZE)]
                    cmd += ["--big-url", "/" + BIG_FILE, "--big-size", str(big)] if big else []
                    cmd += ["--check-mac"] if kind == "bootpolicy" else []  # nginx's script is one fixed file
                    cmd += ["--rcvbuf", str(args.client_rcvbuf)] if args.client_rcvbuf else []
                    cmd += ["--start", args.start_stage]
                else:
                    cmd = [sys.executable, os.path.abspath(__file__), "client",
                           "--server", SRV_ADDR, "--iface", CLI_IF, "--clients", str(args.clients),
                           "--deadline", str(args.deadline), "--sha256", sha, "--key", key, "--http-bytes", str(big)]
                    cmd += ["--static-script"] if kind != "bootpolicy" else []
                client = subprocess.Popen(["ip", "netns", "exec", CLI] + cmd,
                                          stdout=subprocess.PIPE, text=True, preexec_fn=__import__("benchlib").raise_nofile)
                lab.procs.append(client)
                peak_rss = 0
                while client.poll() is None:  # sample while the storm runs (bounded by the client's deadline)
                    peak_rss = max(peak_rss, sum(status_kb(p.pid, "VmRSS") for p in procs))
                    time.sleep(0.05)
                out = client.stdout.read()
                if client.returncode != 0 or not out.strip():
                    raise SystemExit(f"storm client failed (exit {client.returncode})")
                r = parse_c_result(out) if args.client == "c" else json.loads(out)
                r["client"] = args.client
                # Where lost datagrams went: receive-buffer overflows in each namespace, and
                # what bootpolicy counted of its DHCP answers.
                for ns, side in ((SRV, "server"), (CLI, "client")):
                    snmp = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"], capture_output=True, text=True).stdout
                    udp = [l.split() for l in snmp.splitlines() if l.startswith("Udp:")]
                    if len(udp) == 2:
                        r[f"{side}_udp"] = {k: int(v) for k, v in zip(udp[0][1:], udp[1][1:]) if k in ("InDatagrams", "RcvbufErrors", "InErrors", "SndbufErrors")}
                # The same counters as this storm's deltas (the namespaces live for every repeat),
                # TCP's too: a SYN dropped at a full listen queue costs its client a 1 s resend.
                r["softnet_dropped"] = softnet_dropped() - softnet_before
                for ns, side in ((SRV, "server"), (CLI, "client")):
                    after = ns_counters(ns, every=True)
                    delta = {k: v - counters_before[ns].get(k, 0) for k, v in after.items()}
                    r[f"{side}_counters"] = {f"{g}.{k}": delta.get(f"{g}.{k}", 0) for g, ks in NS_COUNTERS.items() for k in ks}
                    r[f"{side}_counters_nonzero"] = {k: v for k, v in delta.items() if v}
                if kind == "bootpolicy":
                    m = subprocess.run(["ip", "netns", "exec", CLI, "curl", "-s", "--max-time", "5", f"http://{SRV_ADDR}:{HTTP_PORT}/metrics"],
                                       capture_output=True, text=True).stdout
                    r["dhcp_metrics"] = [l for l in m.splitlines() if l.startswith("bootpolicy_dhcp_") and not l.startswith("#")][:40]
                # nginx's workers are children of its master: their memory is not in the sum.
                r.update(server=kind, repeat=rep, client_rcvbuf=args.client_rcvbuf, start_stage=args.start_stage, tftp_bytes=len(data), http_file_bytes=big, rss_before_kb=rss_before,
                         rss_peak_sampled_kb=peak_rss, vmhwm_kb=sum(status_kb(p.pid, "VmHWM") for p in procs),
                         server_cpu_s=round(sum(tree_cpu_seconds(p.pid) for p in procs) - cpu_before, 2),
                         server_alive=all(p.poll() is None for p in procs))
                results.append(r)
                print(f"storm {kind} rep={rep} client={args.client} ok={r['ok']}/{r['clients']} failures={r['failures']} "
                      f"all_done={r['seconds']:.2f}s medians dhcp/tftp/http/client={r['median_dhcp_s']}/{r['median_tftp_s']}/"
                      f"{r['median_http_s']}/{r['median_client_s']} server_cpu={r['server_cpu_s']}s "
                      f"client_cpu={r.get('client_cpu_s')}s VmHWM={r['vmhwm_kb']/1024:.1f}MB (before {rss_before/1024:.1f}MB) "
                      f"reasons={r['failure_reasons']} server={r['server_counters']} client={r['client_counters']}", file=sys.stderr, flush=True)
                for p in procs:
                    lab.stop(p)
    write_results(results, args.out)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("run")
    r.add_argument("--binary", default=".build/release/bootpolicy")
    r.add_argument("--clients", type=int, default=1000)
    r.add_argument("--repeats", type=int, default=3)
    r.add_argument("--deadline", type=float, default=90)
    r.add_argument("--log-level", default="warning")
    r.add_argument("--servers", default="bootpolicy", help=f"comma-separated: bootpolicy, {REFERENCE}")
    r.add_argument("--tftp-kb", type=int, default=70, help="size of the boot file each client fetches by TFTP")
    r.add_argument("--http-mb", type=int, default=0, help="a file of this size each client fetches over HTTP last")
    r.add_argument("--logdir", default="/tmp/bp-bench-logs")
    r.add_argument("--client", choices=("c", "python"), default="c",
                   help="load generator: bench/storm_client.c (default) or this script's asyncio client")
    r.add_argument("--client-rcvbuf", type=int, default=0,
                   help="C client only: fixed SO_RCVBUF per HTTP connection (default: kernel autotuning)")
    r.add_argument("--start-stage", choices=("dhcp", "tftp", "http"), default="dhcp",
                   help="C client only, a diagnostic: every client starts at this stage at once")
    r.add_argument("--out")
    c = sub.add_parser("client")
    c.add_argument("--server", required=True)
    c.add_argument("--iface", required=True)
    c.add_argument("--clients", type=int, default=1000)
    c.add_argument("--deadline", type=float, default=90)
    c.add_argument("--sha256", required=True)
    c.add_argument("--key", required=True, help="the server's script key (http.script_key)")
    c.add_argument("--http-bytes", type=int, default=0)
    c.add_argument("--static-script", action="store_true", help="the script is a fixed file (names no MAC)")
    args = ap.parse_args()
    if args.mode == "run":
        run(args)
    else:
        print(json.dumps(asyncio.run(storm(args))))


if __name__ == "__main__":
    main()
