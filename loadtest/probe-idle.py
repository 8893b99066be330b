#!/usr/bin/env python3
# Issue 26 section 4 measurement: a server (BINARY serve, embedded defaults, loopback)
# and N idle connections to its metrics port: RSS before and after, how many
# stay open after 2 s and 35 s; then 500 connections each sending 300 KiB of
# unfinished headers. Usage: loadtest/probe-idle.py BINARY [N]   (BENCHMARKS.md section 12)
import socket, subprocess, sys, time, os, re, tempfile
binary, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8000
d = tempfile.mkdtemp()
open(f"{d}/a.toml","w").write('[[relying_parties]]\nid = "login.example.com"\norigins = ["https://login.example.com"]\n')
p = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--config", f"{d}/a.toml", "--data-dir", f"{d}/data"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
line = p.stdout.readline()
metrics = re.search(r"metrics=(\S+)", line).group(1)
host, port = metrics.rsplit(":", 1)
def rss():
    return int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{p.pid}/status").read()).group(1)) / 1024
time.sleep(1)
base = rss()
socks = []
for i in range(n):
    s = socket.create_connection((host, int(port)))
    socks.append(s)
time.sleep(2)
after = rss()
def open_count():
    c = 0
    for s in socks:
        s.setblocking(False)
        try:
            r = s.recv(1)
            if r == b"": continue
            c += 1
        except BlockingIOError:
            c += 1
        except OSError:
            pass
    return c
o1 = open_count()
print(f"{os.path.basename(binary)}: {n} idle metrics connections: RSS {base:.0f} -> {after:.0f} MiB (+{after-base:.0f}); open after 2 s: {o1}", flush=True)
time.sleep(33)
print(f"  after 35 s: open {open_count()}, RSS {rss():.0f} MiB", flush=True)
# slow headers: 500 connections with 300 KiB of unfinished headers
for s in socks: s.close()
socks = []
time.sleep(1)
base = rss()
for i in range(500):
    s = socket.create_connection((host, int(port)))
    s.setblocking(False)
    try:
        s.send(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * (300 * 1024))
    except (BlockingIOError, OSError):
        pass
    socks.append(s)
time.sleep(3)
print(f"  500 connections with 300 KiB of unfinished headers: RSS {base:.0f} -> {rss():.0f} MiB", flush=True)
p.kill()
