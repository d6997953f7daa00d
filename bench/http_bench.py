#!/usr/bin/env python3
"""HTTP: bootpolicy against nginx, side by side in one run, with wrk.

Both serve one root inside bp-bench-srv (bootpolicy on :8080, nginx on :8081, sendfile on,
access log off, one worker per core); wrk runs in bp-bench-cli. Each case alternates the two
servers `--repeats` times and reports requests/s and MB/s medians and the ratio
bootpolicy / nginx:

- file-1m, file-64m: a static file (bootpolicy streams it with sendfile, as nginx does);
- script: bootpolicy's generated per-machine iPXE script (`/boot.ipxe?mac=..&token=..`,
  arch-aware's http hook, a Lua decision per request) against nginx serving the same bytes
  as a static file (what a fixed-file setup does);
- small-file: a 1 KB static file, for the per-request cost without Lua.

    bench/http_bench.py --binary .build/release/bootpolicy [--repeats 3] [--seconds 8] [--cases small-file,script] [--out F]
"""
import argparse, hashlib, hmac, os, random, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import CLI, SRV, SRV_ADDR, SRV_IF, Lab, wrk_against_nginx, write_nginx_conf, write_results  # noqa: E402

BP_PORT, NGINX_PORT = 8080, 8081
MAC = "52:54:00:78:00:01"



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/bootpolicy")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--cases", default="small-file,script,file-1m,file-64m",
                    help="comma-separated subset of the cases, for a quick look")
    ap.add_argument("--out")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    work = tempfile.mkdtemp(prefix="bp-http-bench-")
    root = os.path.join(work, "root")
    os.makedirs(root)
    rng = random.Random(3)
    for name, size in (("file-1m", 1 << 20), ("file-64m", 64 << 20), ("small-file", 1024)):
        with open(os.path.join(root, name), "wb") as f:
            f.write(rng.randbytes(size))
    os.chmod(root, 0o755)
    os.chmod(work, 0o755)
    key_text = "bench-" + os.urandom(16).hex()
    key = os.path.join(work, "script-key")
    with open(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(key_text + "\n")
    token = hmac.new(key_text.encode(), b"bootpolicy script v1\0" + MAC.encode(), hashlib.sha256).hexdigest()[:32]
    script_path = f"/boot.ipxe?mac={MAC.replace(':', '-')}&arch=bios&token={token}"
    write_nginx_conf(os.path.join(work, "nginx.conf"), work, SRV_ADDR, NGINX_PORT, root, reuseport=True)
    results = {"connections": args.connections, "seconds": args.seconds, "repeats": args.repeats, "cases": {}}
    with Lab() as lab:
        log = open(os.path.join(work, "bootpolicy.log"), "w")
        # wrk is one address: the default 64 connections per client would refuse 36 of its 100
        # and measure reconnects (the first figures here did).
        conf = os.path.join(work, "bootpolicy.yaml")
        with open(conf, "w") as f:
            f.write("http:\n  max_connections_per_client: 1024\n")
        bp = lab.spawn(SRV, [binary, "serve", "--config", conf, "--interface", SRV_IF, "--no-dhcp", "--no-tftp", "--http-port", str(BP_PORT),
                             "--http-root", root, "--policy", "arch-aware", "--script-key", key, "--log-level", "warning"], log)
        ng = lab.spawn(SRV, ["nginx", "-c", os.path.join(work, "nginx.conf"), "-g", "daemon off;"], log)
        deadline = time.time() + 30
        while time.time() < deadline:
            codes = [subprocess.run(["ip", "netns", "exec", CLI, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                     "--max-time", "1", f"http://{SRV_ADDR}:{port}/small-file"],
                                    capture_output=True, text=True).stdout for port in (BP_PORT, NGINX_PORT)]
            if codes == ["200", "200"]:
                break
            if bp.poll() is not None or ng.poll() is not None:
                raise SystemExit(f"a server exited; see {work}/bootpolicy.log")
            time.sleep(0.3)
        else:
            raise SystemExit(f"servers did not come up; see {work}/bootpolicy.log")
        # nginx serves the script bootpolicy generates, byte for byte, as a static file.
        script = subprocess.run(["ip", "netns", "exec", CLI, "curl", "-sS", f"http://{SRV_ADDR}:{BP_PORT}{script_path}"],
                                capture_output=True).stdout
        if not script.startswith(b"#!ipxe") or MAC.encode() not in script:
            raise SystemExit(f"bootpolicy did not generate the machine's script: {script[:200]!r}")
        with open(os.path.join(root, "script.ipxe"), "wb") as f:
            f.write(script)
        cases = [("small-file", "/small-file", "/small-file"), ("script", script_path, "/script.ipxe"),
                 ("file-1m", "/file-1m", "/file-1m"), ("file-64m", "/file-64m", "/file-64m")]
        wanted = set(args.cases.split(","))
        for name, bp_path, ng_path in [c for c in cases if c[0] in wanted]:
            # Fewer connections for 64 MB: 100 x 64 MB in flight measures the veth, not the server.
            c = args.connections if name != "file-64m" else min(args.connections, 16)
            urls = {"bootpolicy": f"http://{SRV_ADDR}:{BP_PORT}{bp_path}", "nginx": f"http://{SRV_ADDR}:{NGINX_PORT}{ng_path}"}
            results["cases"][name] = wrk_against_nginx(name, args.repeats, urls, args.seconds, c)
        results["bootpolicy_alive"] = bp.poll() is None
    write_results(results, args.out)


if __name__ == "__main__":
    main()
