#!/usr/bin/env bash
# open loop, counting, batch 64, at RATE RPC/s, CREDENTIALS credentials; per-thread account and latency
set -euo pipefail
cd /work/main
. loadtest/lib.sh
bin=${BIN:-/tmp/bin-new}
bench_calibrate 0
bench_start $'[pool]\nthreads = 1' 0
snap() { for t in /proc/$pid/task/*; do echo "$(cat $t/comm | tr -d ' ') $(grep -E '^(voluntary|nonvoluntary)_ctxt' $t/status | awk '{print $2}' | tr '\n' ' ') $(cut -d')' -f2 $t/stat | awk '{print $12, $13}')"; done | sort; }
taskset -c 1 "$bin/assertd-loadgen" run --target "http://$addr" --batch 64 --connections 2 --warmup ${WARMUP:-2} \
      --duration ${SECS:-8} --mode open --rate ${RATE:-90} --server-pid "$pid" --counting --credentials ${CREDENTIALS:-20000} --pool $(((${SECS:-8} + 3) * 30000)) 2>/dev/null | tail -1 > /tmp/probe/open.json &
gen=$!
answered() { curl -s "$metrics/metrics" | awk '/^assertd_assertions_total/ {s += $2} END {printf "%d", s}'; }
until [ "$(answered)" -gt 0 ]; do sleep 0.2; done
sleep ${WARMUP:-2}
snap > /tmp/probe/before; a0=$(answered)
sleep $(( ${SECS:-8} - 3 ))
snap > /tmp/probe/after; a1=$(answered)
wait $gen
curl -s "$metrics/metrics" | grep -E "^assertd_(store_duration|stage|pool_wait|admission_queue)" | grep -E "_sum|_count" | head -20 > /tmp/probe/open-metrics
python3 - "$((a1-a0))" "$raw" <<'PY'
import json,sys
n=int(sys.argv[1]); raw=float(sys.argv[2])
r=json.load(open('/tmp/probe/open.json'))
pure=64/raw*1000
print(f"rate {r['assertions_per_second']:.0f}/s p50 {r['latency']['p50_ms']:.2f} p99 {r['latency']['p99_ms']:.2f} ms = {r['latency']['p99_ms']/pure:.1f}x pure {pure:.2f} ms; cpu {r['server_cpu_per_assertion_us']:.1f} us; errors {r['errors']}")
def load(p):
    d={}
    for l in open(p):
        f=l.split(); k=f[0]; d.setdefault(k,[0,0,0,0])
        for i in range(4): d[k][i]+=int(f[i+1])
    return d
b=load('/tmp/probe/before'); a=load('/tmp/probe/after')
for k in a:
    z=b.get(k,[0,0,0,0]); v=a[k][0]-z[0]; nv=a[k][1]-z[1]; ut=(a[k][2]-z[2])*1e4/n; st=(a[k][3]-z[3])*1e4/n
    if ut+st>0.05: print(f"  {k:20s} vol {v/n*64:.2f}/batch nonvol {nv/n*64:.2f}/batch user {ut:.1f} us sys {st:.1f} us per assertion")
PY
