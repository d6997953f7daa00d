#!/usr/bin/env python3
"""HTTPS: bootpolicy's http.tls against nginx with the same certificate, side by side, wrk.

Both serve one root inside bp-bench-srv over TLS (bootpolicy :8443, nginx :8444 with
`ssl`, one worker per core, access log off; the certificate and key are one pair made
here with openssl, RSA 2048, signed by a throwaway CA); wrk runs in bp-bench-cli. Each case
alternates the two servers `--repeats` times and reports medians and the ratio
bootpolicy / nginx:

- file-1m, file-64m: static files (TLS: bootpolicy reads 256 KiB chunks, nginx its
  output buffers; neither can use sendfile through user-space TLS);
- small-file: a 1 KB file on kept-alive connections (the per-request cost);
- handshakes: the same 1 KB file with `Connection: close`, so every request is a new TLS
  handshake (wrk resumes no sessions): handshakes/s.

    bench/https_bench.py --binary .build/release/bootpolicy [--repeats 3] [--seconds 8] [--cases ...] [--out F]
"""
import argparse, os, random, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import CLI, SRV, SRV_ADDR, SRV_IF, Lab, wrk_against_nginx, write_nginx_conf, write_results  # noqa: E402

BP_PORT, NGINX_PORT = 8443, 8444

def openssl(work, *args):
    subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/bootpolicy")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--cases", default="small-file,handshakes,file-1m,file-64m")
    ap.add_argument("--out")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    work = tempfile.mkdtemp(prefix="bp-https-bench-")
    root = os.path.join(work, "root")
    os.makedirs(root)
    rng = random.Random(5)
    for name, size in (("file-1m", 1 << 20), ("file-64m", 64 << 20), ("small-file", 1024)):
        with open(os.path.join(root, name), "wb") as f:
            f.write(rng.randbytes(size))
    for d in (root, work):
        os.chmod(d, 0o755)
    # One certificate for both servers: the same key size and chain, so the handshakes cost the same.
    openssl(work, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=bootpolicy bench CA")
    openssl(work, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={SRV_ADDR}")
    with open(os.path.join(work, "ext"), "w") as f:
        f.write(f"subjectAltName=IP:{SRV_ADDR}\n")
    openssl(work, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "1", "-extfile", "ext")
    cert, key = os.path.join(work, "server.pem"), os.path.join(work, "server.key")
    write_nginx_conf(os.path.join(work, "nginx.conf"), work, SRV_ADDR, NGINX_PORT, root, reuseport=True, tls=(cert, key))
    conf = os.path.join(work, "bootpolicy.yaml")
    with open(conf, "w") as f:
        # wrk is one address: the default 64 connections per client would refuse most of them.
        f.write(f"http:\n  port: 8080\n  max_connections_per_client: 4096\n  root: {root}\n"
                f"  tls: {{certificate: {cert}, key: {key}, port: {BP_PORT}}}\n")
    results = {"connections": args.connections, "seconds": args.seconds, "repeats": args.repeats, "cases": {},
               "certificate": "RSA 2048, one pair for both", "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()}
    with Lab() as lab:
        log = open(os.path.join(work, "servers.log"), "w")
        bp = lab.spawn(SRV, [binary, "serve", "--config", conf, "--interface", SRV_IF, "--no-dhcp", "--no-tftp",
                             "--log-level", "warning"], log)
        ng = lab.spawn(SRV, ["nginx", "-c", os.path.join(work, "nginx.conf"), "-g", "daemon off;"], log)
        deadline = time.time() + 30
        while time.time() < deadline:
            codes = [subprocess.run(["ip", "netns", "exec", CLI, "curl", "-s", "--cacert", os.path.join(work, "ca.pem"),
                                     "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1",
                                     f"https://{SRV_ADDR}:{port}/small-file"], capture_output=True, text=True).stdout
                     for port in (BP_PORT, NGINX_PORT)]
            if codes == ["200", "200"]:
                break
            if bp.poll() is not None or ng.poll() is not None:
                raise SystemExit(f"a server exited; see {work}/servers.log")
            time.sleep(0.3)
        else:
            raise SystemExit(f"servers did not come up over TLS; see {work}/servers.log")
        cases = [("small-file", "/small-file", ()), ("handshakes", "/small-file", ("Connection: close",)),
                 ("file-1m", "/file-1m", ()), ("file-64m", "/file-64m", ())]
        wanted = set(args.cases.split(","))
        for name, path, headers in [c for c in cases if c[0] in wanted]:
            c = args.connections if name != "file-64m" else min(args.connections, 16)
            urls = {"bootpolicy": f"https://{SRV_ADDR}:{BP_PORT}{path}", "nginx": f"https://{SRV_ADDR}:{NGINX_PORT}{path}"}
            results["cases"][name] = wrk_against_nginx(name, args.repeats, urls, args.seconds, c, headers)
        results["bootpolicy_alive"] = bp.poll() is None
    write_results(results, args.out)


if __name__ == "__main__":
    main()
