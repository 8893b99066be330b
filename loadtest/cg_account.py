#!/usr/bin/env python3
"""Instructions per assertion from two callgrind runs of the same workload
(loadtest/instructions.sh): a short one and a long one that share start-up,
set-up and shutdown, so (long - short) / (answered_long - answered_short)
is the steady cost of one assertion. Split by symbol (self cost, every
thread), then by area; ring's own code apart from the rest.

  cg_account.py SHORT.out N_SHORT LONG.out N_LONG [--label L] [--json F]
  cg_account.py --compare OLD.json NEW.json     (two accounts side by side)
"""
import json
import re
import subprocess
import sys

# First match wins: a symbol's area by the crate or library it comes from.
AREAS = [
    ("ring (signature math and its SHA-256)", r"\bring::|ring_core_|\bGFp_|ecp_nistz256|p256_|nistz|sha256_block|bn_mul_mont|LIMBS_|CRYPTO_"),
    ("store: SQLite", r"sqlite3|rusqlite"),
    ("store: assertd-store (cache, writer, planner)", r"assertd_store::|moka::|quick_cache|\bsiphash|SipHasher|hashbrown"),
    ("HTTP/2 and tonic", r"\bh2::|\bhyper::|hyper_util::|\btonic::|\bhttp::|http_body|\bbytes::"),
    ("protobuf (prost, generated types)", r"\bprost::|assertd_api::"),
    ("tower stack and assertd's layers", r"\btower::|assertd::stack|tower_layer|tower_service"),
    ("metrics and tracing", r"\bmetrics::|metrics_exporter|metrics_util|\btracing::|tracing_core|tracing_subscriber|assertd::telemetry|assertd::trace"),
    ("parsing and checks (assertd-verify: CBOR, JSON, COSE)", r"assertd_verify::|serde_json|ciborium|\bserde::"),
    ("engine and policy (assertd: engine, service; assertd-policy)", r"assertd::engine|assertd::service|assertd::convert|assertd_policy::|assertd::authz|assertd::"),
    ("hashing outside ring (SipHash of hash maps)", r"core::hash::|\bsip::|hash_one|BuildHasher|SipHasher"),
    ("allocation", r"\bmi_|_mi_|mimalloc|\bmalloc|\bfree\b|\brealloc|\bcalloc|__rust_alloc|__rust_dealloc|__rust_realloc|alloc::alloc::"),
    ("runtime and threads (tokio, rayon, locks, futures, clocks)", r"\bquanta::|clock_gettime|\btokio::|\bmio::|\brayon|crossbeam|parking_lot|futures_util|futures_core|futures_channel|std::sync|std::thread|pthread_|__futex|futex|syscall|epoll"),
    ("memory copies and compares (libc)", r"\bmemcpy|\bmemmove|\bmemset|\bmemcmp|\bbcmp|__memcpy|__memmove|__memset|__memcmp|strlen"),
    ("Rust std and core (formatting, collections, ...)", r"\bcore::|\balloc::|\bstd::|hashbrown"),
]


def cycles(ev):
    """An estimate of cycles from callgrind's cache and branch simulation
    (CACHE_SIM=1): KCachegrind's cycle estimation, Ir + 10 per L1 miss and
    per mispredicted branch + 100 per last-level miss. Without the
    simulation: the instructions."""
    l1 = ev.get("I1mr", 0) + ev.get("D1mr", 0) + ev.get("D1mw", 0)
    ll = ev.get("ILmr", 0) + ev.get("DLmr", 0) + ev.get("DLmw", 0)
    return ev.get("Ir", 0) + 10 * l1 + 100 * ll + 10 * (ev.get("Bcm", 0) + ev.get("Bim", 0))


def symbols(path, metric="Ir"):
    """{symbol: self cost} of a callgrind file, and its total; `metric` is
    "Ir" (instructions) or "CEst" (estimated cycles, with CACHE_SIM=1)."""
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", path], capture_output=True, text=True, check=True
    ).stdout
    events = re.search(r"^Events shown:\s+(.*)$", text, re.M).group(1).split()
    total, table = None, {}
    for line in text.splitlines():
        line = re.sub(r"\(\s*[\d.]+%\)", "", line)
        tokens = line.split()
        if len(tokens) <= len(events) or not re.fullmatch(r"[\d,]+", tokens[0]):
            continue
        values = tokens[: len(events)]
        if not all(re.fullmatch(r"[\d,]+|\.", v) for v in values):
            continue
        ev = {e: (0 if v == "." else int(v.replace(",", ""))) for e, v in zip(events, values)}
        n = ev["Ir"] if metric == "Ir" else cycles(ev)
        rest = " ".join(tokens[len(events) :])
        if rest.startswith("PROGRAM TOTALS"):
            total = n
            continue
        rest = re.sub(r" \[[^\]]*\]$", "", rest)
        name = rest.split(":", 1)[1] if ":" in rest and not rest.startswith("<") and "::" not in rest.split(":", 1)[0] else rest
        name = re.sub(r"::h[0-9a-f]{16}$", "", name)
        table[name] = table.get(name, 0) + n
    return total, table


def area(symbol):
    for name, pattern in AREAS:
        if re.search(pattern, symbol):
            return name
    return "other"


def account(short, n_short, long_, n_long, label, metric="Ir"):
    t0, s0 = symbols(short, metric)
    t1, s1 = symbols(long_, metric)
    n = n_long - n_short
    if n <= 0:
        sys.exit(f"the long run answered {n_long} assertions, the short {n_short}: nothing to divide by")
    per = {k: (s1.get(k, 0) - s0.get(k, 0)) / n for k in set(s0) | set(s1)}
    areas = {}
    for k, v in per.items():
        areas[area(k)] = areas.get(area(k), 0) + v
    ring = areas.get(AREAS[0][0], 0)
    total = (t1 - t0) / n
    outside = {k: v for k, v in areas.items() if k != AREAS[0][0]}
    top = sorted(((v, k) for k, v in per.items() if area(k) != AREAS[0][0]), reverse=True)[:20]
    return {
        "label": label,
        "metric": "estimated cycles" if metric == "CEst" else "instructions",
        "assertions": n,
        "instructions_per_assertion": round(total),
        "inside_ring": round(ring),
        "outside_ring": round(total - ring),
        "outside_ring_by_area": {k: round(v) for k, v in sorted(outside.items(), key=lambda kv: -kv[1])},
        "top_symbols_outside_ring": [{"symbol": k[:160], "area": area(k), "per_assertion": round(v)} for v, k in top],
    }


def show(a):
    print(f"\n{a['label']}: {a['assertions']} assertions in the difference ({a.get('metric', 'instructions')})")
    print(f"  per assertion              {a['instructions_per_assertion']:>12,}")
    print(f"  inside ring                {a['inside_ring']:>12,}")
    print(f"  outside ring               {a['outside_ring']:>12,}")
    for k, v in a["outside_ring_by_area"].items():
        print(f"    {v:>10,}  {k}")
    print("  top symbols outside ring:")
    for s in a["top_symbols_outside_ring"]:
        print(f"    {s['per_assertion']:>10,}  {s['symbol'][:110]}")


def compare(old, new):
    a, b = json.load(open(old)), json.load(open(new))
    print(f"{'':52} {'old':>12} {'new':>12} {'new/old':>8}")
    rows = [("instructions per assertion", a["instructions_per_assertion"], b["instructions_per_assertion"]),
            ("inside ring", a["inside_ring"], b["inside_ring"]), ("outside ring", a["outside_ring"], b["outside_ring"])]
    for k in sorted(set(a["outside_ring_by_area"]) | set(b["outside_ring_by_area"])):
        rows.append(("  " + k, a["outside_ring_by_area"].get(k, 0), b["outside_ring_by_area"].get(k, 0)))
    for k, x, y in rows:
        print(f"{k[:52]:52} {x:>12,} {y:>12,} {y / x if x else float('nan'):>8.3f}")


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv and argv[0] == "--compare":
        compare(argv[1], argv[2])
        sys.exit(0)
    label, out = "", None
    if "--label" in argv:
        i = argv.index("--label")
        label = argv[i + 1]
        del argv[i : i + 2]
    if "--json" in argv:
        i = argv.index("--json")
        out = argv[i + 1]
        del argv[i : i + 2]
    a = account(argv[0], int(argv[1]), argv[2], int(argv[3]), label)
    show(a)
    if out:
        json.dump(a, open(out, "w"), indent=1)
    with open(argv[2]) as f:
        simulated = "D1mr" in f.read(4096)
    if simulated:
        c = account(argv[0], int(argv[1]), argv[2], int(argv[3]), label, "CEst")
        show(c)
        if out:
            json.dump(c, open(out.replace(".json", "-cycles.json"), "w"), indent=1)
