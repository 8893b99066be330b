#!/usr/bin/env python3
# Issue 26 section 4 measurement: a server (BINARY serve) limited to 256 file
# descriptors (prlimit) and 300 idle connections to its grpc or metrics port:
# the server CPU over 5 s (an accept loop spinning on EMFILE shows here).
# Usage: loadtest/probe-emfile.py BINARY grpc|metrics   (BENCHMARKS.md section 12)
import socket, subprocess, sys, time, os, re, tempfile
binary, port_kind = sys.argv[1], sys.argv[2]
d = tempfile.mkdtemp()
open(f"{d}/a.toml","w").write('[[relying_parties]]\nid = "login.example.com"\norigins = ["https://login.example.com"]\n')
p = subprocess.Popen(["prlimit", "--nofile=256", binary, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--config", f"{d}/a.toml", "--data-dir", f"{d}/data"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
line = p.stdout.readline()
addr = re.search(port_kind + r"=(\S+)", line).group(1)
host, port = addr.rsplit(":", 1)
def cpu():
    f = open(f"/proc/{p.pid}/stat").read().split(")")[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
socks = [socket.create_connection((host, int(port))) for _ in range(300)]
time.sleep(1)
c0, t0 = cpu(), time.time()
time.sleep(5)
c1, t1 = cpu(), time.time()
print(f"{os.path.basename(binary)} ulimit -n 256, 300 idle connections to {port_kind}: server CPU {100*(c1-c0)/(t1-t0):.0f}% of a core", flush=True)
p.kill()
