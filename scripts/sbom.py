#!/usr/bin/env python3
"""A CycloneDX 1.5 software bill of materials of the assertd binary, from
Cargo's own data: every package the `assertd` package needs to build and
run on x86_64 Linux (normal and build dependencies, not dev), with its
version, package URL, declared licence and, for crates.io packages, the
SHA-256 that Cargo.lock pins; and who depends on whom.

  cargo metadata --format-version 1 --locked --filter-platform x86_64-unknown-linux-gnu \
    | python3 scripts/sbom.py Cargo.lock OUT.cdx.json

With cyclonedx-python-lib importable (scripts/test installs it), the file
is validated against the CycloneDX 1.5 JSON schema.
"""
import json
import sys
import tomllib
import uuid


def purl(pkg):
    return f"pkg:cargo/{pkg['name']}@{pkg['version']}"


def main(lock_path, out_path):
    meta = json.load(sys.stdin)
    lock = tomllib.load(open(lock_path, "rb"))
    checksums = {(p["name"], p["version"]): p.get("checksum") for p in lock["package"]}
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = next(p["id"] for p in meta["packages"] if p["name"] == "assertd" and p["source"] is None)

    # What building and running assertd takes: normal and build edges.
    shipped, todo = set(), [root]
    edges = {}
    while todo:
        pid = todo.pop()
        if pid in shipped:
            continue
        shipped.add(pid)
        deps = [d["pkg"] for d in nodes[pid]["deps"] if any(k["kind"] in (None, "build") for k in d["dep_kinds"])]
        edges[pid] = sorted(set(deps))
        todo.extend(deps)

    components = []
    for pid in sorted(shipped - {root}, key=lambda i: (packages[i]["name"], packages[i]["version"])):
        p = packages[pid]
        c = {"type": "library", "bom-ref": purl(p), "name": p["name"], "version": p["version"], "purl": purl(p)}
        if p.get("license"):
            c["licenses"] = [{"expression": p["license"]}]
        if p.get("description"):
            c["description"] = " ".join(p["description"].split())
        digest = checksums.get((p["name"], p["version"]))
        if digest:
            c["hashes"] = [{"alg": "SHA-256", "content": digest}]
        if p["source"] is None:
            c["scope"] = "required"
        components.append(c)
    r = packages[root]
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "component": {
                "type": "application",
                "bom-ref": purl(r),
                "name": r["name"],
                "version": r["version"],
                "purl": purl(r),
                "licenses": [{"expression": r["license"]}],
            },
            "tools": {"components": [{"type": "application", "name": "scripts/sbom.py (cargo metadata, Cargo.lock)"}]},
        },
        "components": components,
        "dependencies": [{"ref": purl(packages[pid]), "dependsOn": sorted({purl(packages[d]) for d in deps})} for pid, deps in sorted(edges.items())],
    }
    # Every shipped registry package is pinned by Cargo.lock's hash.
    unpinned = [c["name"] for c in components if "hashes" not in c and not c.get("scope")]
    assert not unpinned, f"not pinned by Cargo.lock: {unpinned}"
    unlicensed = [c["name"] for c in components if "licenses" not in c]
    assert not unlicensed, f"no declared licence: {unlicensed}"
    text = json.dumps(bom, indent=1, sort_keys=True)
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError:
        print("cyclonedx-python-lib not importable: the SBOM is not schema-checked", file=sys.stderr)
    else:
        error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
        assert error is None, f"not valid CycloneDX 1.5: {error}"
    open(out_path, "w").write(text + "\n")
    print(f"SBOM: {len(components)} components of {r['name']} {r['version']} -> {out_path}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
