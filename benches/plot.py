"""Draws BENCHMARKS.md's plot from loadtest/sweep.sh's JSON reports.

Usage: python3 benches/plot.py REPORT_DIR OUT.png
Left: end-to-end throughput as a share of raw ring ES256 on the same core,
by batch size. Right: p50 / p99 latency of answered requests and the share
refused with RESOURCE_EXHAUSTED, by offered load (x capacity), batch 64.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

d, out = sys.argv[1], sys.argv[2]
load = lambda name: json.load(open(f"{d}/sweep-{name}.json"))
raw = load("raw")["raw_ring_es256_verifies_per_second"]

batches = [1, 4, 16, 64, 256]
share = [load(f"batch-{b}")["assertions_per_second"] / raw for b in batches]

xs = [0.3, 0.5, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0]
runs = [load(f"load-{x}") for x in xs]
p50 = [r["latency"]["p50_ms"] for r in runs]
p99 = [r["latency"]["p99_ms"] for r in runs]
refused = []
for r in runs:
    rej = r["errors"].get("ResourceExhausted", 0)
    refused.append(100.0 * rej / max(1, rej + r["rpcs"]))

fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
a.plot(batches, share, marker="o")
a.set_xscale("log", base=2)
a.set_xticks(batches, [str(x) for x in batches])
a.set_ylim(0, 1.05)
a.axhline(1.0, color="grey", lw=0.8, ls="--")
a.axhline(0.85, color="tab:red", lw=0.8, ls=":", label="target 0.85 (batch 64)")
a.set_xlabel("assertions per request")
a.set_ylabel("assertions/s ÷ raw ring ES256 (same core)")
a.set_title(f"Throughput by batch size (raw ring: {raw:,.0f}/s)")
a.legend(loc="lower right")

b.plot(xs, p50, marker="o", label="p50 (answered)")
b.plot(xs, p99, marker="o", label="p99 (answered)")
b.set_xlabel("offered load (× capacity), batch 64, open loop")
b.set_ylabel("latency from intended send time (ms)")
b.set_title("Latency and load shedding by offered load")
b2 = b.twinx()
b2.bar(xs, refused, width=0.05, alpha=0.3, color="tab:red", label="refused %")
b2.set_ylabel("refused with RESOURCE_EXHAUSTED (%)")
b2.set_ylim(0, 100)
lines, labels = b.get_legend_handles_labels()
l2, lab2 = b2.get_legend_handles_labels()
b.legend(lines + l2, labels + lab2, loc="upper left")
fig.tight_layout()
fig.savefig(out, dpi=110)
print(f"wrote {out}")
