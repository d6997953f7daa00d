"""Shared pieces of the bench scripts: the two namespaces joined by a veth, /proc readers.

Everything runs inside bp-bench-srv (server, 192.168.78.1 on bpb-s) and bp-bench-cli (load
generator, 192.168.78.10 on bpb-c); these addresses exist only there. `Lab` is a context
manager: the namespaces are deleted on exit, on exceptions and on SIGTERM. `Lab(ipv6=True)`
also gives the two ends fd78::1/64 and fd78::10/64 (no duplicate address detection, so they
and the link-local addresses are usable at once), again only inside the namespaces.
"""
import os, resource, signal, subprocess, sys

SRV, CLI = "bp-bench-srv", "bp-bench-cli"
SRV_IF, CLI_IF = "bpb-s", "bpb-c"
SRV_ADDR, CLI_ADDR = "192.168.78.1", "192.168.78.10"
SRV_ADDR6, CLI_ADDR6, PREFIX6 = "fd78::1", "fd78::10", "fd78::/64"
TICKS = os.sysconf("SC_CLK_TCK")


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, **kw)


def netns_down():
    for ns in (SRV, CLI):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def netns_up(ipv6=False):
    netns_down()
    sh("ip", "netns", "add", SRV)
    sh("ip", "netns", "add", CLI)
    sh("ip", "link", "add", SRV_IF, "type", "veth", "peer", "name", CLI_IF)
    sh("ip", "link", "set", SRV_IF, "netns", SRV)
    sh("ip", "link", "set", CLI_IF, "netns", CLI)
    for ns, ifname, addr in ((SRV, SRV_IF, SRV_ADDR), (CLI, CLI_IF, CLI_ADDR)):
        sh("ip", "-n", ns, "addr", "add", addr + "/24", "dev", ifname)
        if ipv6:
            # Before the link comes up: its link-local address skips DAD too.
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{ifname}.accept_dad=0")
        sh("ip", "-n", ns, "link", "set", ifname, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    if ipv6:
        for ns, ifname, addr in ((SRV, SRV_IF, SRV_ADDR6), (CLI, CLI_IF, CLI_ADDR6)):
            sh("ip", "-n", ns, "-6", "addr", "add", addr + "/64", "dev", ifname, "nodad")
        wait_ipv6_ready()


def wait_ipv6_ready(timeout=10):
    """Until neither end has a tentative IPv6 address (link-local included), at most `timeout` s."""
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = "".join(subprocess.run(["ip", "-n", ns, "-6", "addr", "show", "dev", ifname], capture_output=True,
                                     text=True).stdout for ns, ifname in ((SRV, SRV_IF), (CLI, CLI_IF)))
        if "tentative" not in out and out.count("scope link") >= 2:
            return True
        time.sleep(0.1)
    return False


def raise_nofile():
    """For children: 1,000 concurrent clients need more than the default 1,024 descriptors."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Lab:
    """Namespaces up on enter; every started process stopped and namespaces deleted on exit."""

    def __init__(self, ipv6=False):
        self.procs = []
        self.ipv6 = ipv6

    def __enter__(self):
        signal.signal(signal.SIGTERM, self._on_term)
        netns_up(ipv6=self.ipv6)
        return self

    def _on_term(self, *_):
        self.close()
        sys.exit(1)

    def spawn(self, ns, cmd, log):
        # Benches run as root with roots in root's 0700 temp folders: a serve keeps root there
        # (started as root it would give root up for bootpolicy/nobody, who cannot read them).
        if len(cmd) > 1 and cmd[1] == "serve" and "--user" not in cmd:
            cmd = cmd + ["--user", "root"]
        # `ip netns exec` execs the command, so the Popen pid is the server's own pid.
        p = subprocess.Popen(["ip", "netns", "exec", ns] + cmd, stdout=log, stderr=subprocess.STDOUT,
                             preexec_fn=raise_nofile)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def close(self):
        for p in self.procs:
            try:
                self.stop(p)
            except Exception:
                pass
        netns_down()

    def __exit__(self, *exc):
        self.close()
        return False


def wait_answering(p, probe, timeout=30):
    """Polls `probe()` (a short load-generator run that says whether the server answered) until
    it does, the server exits, or `timeout` seconds pass."""
    import time
    deadline = time.time() + timeout
    while time.time() < deadline and p.poll() is None:
        if probe():
            return True
        time.sleep(0.3)
    return False


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status_kb(pid, key):
    """A kB field of /proc/PID/status: VmRSS (now) or VmHWM (peak)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def write_results(results, out):
    """Results as JSON to the --out file, or to stdout."""
    import json
    text = json.dumps(results, indent=1)
    if out:
        with open(out, "w") as f:
            f.write(text)
    else:
        print(text)


NGINX_CONF = """worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen {addr}:{port}{listen};
    root {root};{tls}
  }}
}}
"""


def write_nginx_conf(path, dir, addr, port, root, reuseport=False, tls=None):
    """nginx as the benches run it beside bootpolicy: one worker per core, sendfile and
    tcp_nopush on, access log off, every temp path in `dir`. `tls`: (certificate, key) for
    HTTPS on that port (TLS 1.2 and 1.3; sendfile then does not apply)."""
    import os
    listen = (" ssl" if tls else "") + (" reuseport" if reuseport else "")
    ssl = (f"\n    ssl_certificate {tls[0]};\n    ssl_certificate_key {tls[1]};\n    ssl_protocols TLSv1.2 TLSv1.3;"
           if tls else "")
    with open(path, "w") as f:
        f.write(NGINX_CONF.format(workers=os.cpu_count() or 2, dir=dir, addr=addr, port=port, root=root,
                                  listen=listen, tls=ssl))


def wrk(url, seconds, connections, headers=(), threads=2):
    """One wrk run from the client namespace: requests/s, MB/s, non-2xx count, socket
    errors and the median latency as wrk prints them."""
    import re
    cmd = ["ip", "netns", "exec", CLI, "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    tr = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    scale = {"B": 1 / 1e6, "KB": 1 / 1024, "MB": 1, "GB": 1024}[tr.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    p50 = re.search(r"50%\s+([\d.]+)(\w+)", out)
    return {"rps": rps, "mb_s": float(tr.group(1)) * scale, "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": sock.group(1) if sock else "", "p50": p50.group(0).split()[1] if p50 else ""}


def median(xs):
    """The middle value (the upper one of an even count), 0 for none."""
    s = sorted(xs)
    return s[len(s) // 2] if s else 0


def wrk_against_nginx(name, repeats, urls, seconds, connections, headers=()):
    """One case of the HTTP benches: wrk on bootpolicy's URL, then nginx's, `repeats` times
    alternating (so drift on a shared machine falls on both), each run printed; returns the
    case record: median req/s and MB/s of each, the ratio bootpolicy / nginx, non-2xx count
    and every run. `urls`: {"bootpolicy": url, "nginx": url}."""
    runs = {"bootpolicy": [], "nginx": []}
    for rep in range(repeats):
        for server in ("bootpolicy", "nginx"):
            r = wrk(urls[server], seconds, connections, headers)
            runs[server].append(r)
            print(f"{name} {server} rep={rep}: {r['rps']:.0f} req/s {r['mb_s']:.0f} MB/s p50 {r['p50']}"
                  f"{' non-2xx ' + str(r['non2xx']) if r['non2xx'] else ''}"
                  f"{' socket errors: ' + r['socket_errors'] if r['socket_errors'] else ''}", file=sys.stderr, flush=True)
    bp_rps = median([r["rps"] for r in runs["bootpolicy"]])
    ng_rps = median([r["rps"] for r in runs["nginx"]])
    case = {"bootpolicy_rps": bp_rps, "nginx_rps": ng_rps, "ratio": round(bp_rps / ng_rps, 2) if ng_rps else None,
            "bootpolicy_mb_s": median([r["mb_s"] for r in runs["bootpolicy"]]),
            "nginx_mb_s": median([r["mb_s"] for r in runs["nginx"]]),
            "errors": sum(r["non2xx"] for rs in runs.values() for r in rs), "runs": runs}
    print(f"== {name}: bootpolicy {bp_rps:.0f}/s, nginx {ng_rps:.0f}/s, ratio {case['ratio']}", file=sys.stderr, flush=True)
    return case
