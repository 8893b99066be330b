#!/usr/bin/env python3
"""Replays Helm's install and upgrade order over a rendered chart, statically.

`helm template` renders every object; a real `helm install` then creates
them in an order, and a pod that names a ServiceAccount, Secret, ConfigMap
or claim that does not exist yet never starts (a hook Job then runs into its
deadline and the install fails). This replays that order (Helm 3,
pkg/action/hooks.go and pkg/releaseutil/kind_sorter.go):

  install: pre-install hooks by weight, then kind (InstallOrder), then name,
           each created and waited for; hooks with `hook-succeeded` deleted
           after all of them succeeded; then the release's objects; then
           post-install hooks; `helm test` runs the test hooks afterwards.
  upgrade: the previous release's objects exist (the same render stands in
           for them); pre-upgrade hooks as above; then the release's objects.

and fails when a pod template references something that does not exist at
that point and is not a declared prerequisite (Secrets and ConfigMaps the
operator creates before installing, with the keys they hold).

  install_order.py replay MANIFEST [--prereq Kind/name[=key,key]]... [--exact]
  install_order.py readme README HELM   (every quick start in README)

`--exact`: every declared prerequisite must be referenced (a quick start
lists exactly what its values need). `readme` finds each ```sh block that
runs `helm install`, takes the Secrets and ConfigMaps the block creates with
`kubectl create` as its prerequisites, renders the block's `helm install`
with `helm template`, and replays it with --exact.
"""
import re
import shlex
import subprocess
import sys

import yaml

INSTALL_ORDER = [
    "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
    "PodDisruptionBudget", "ServiceAccount", "Secret", "ConfigMap", "StorageClass",
    "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
    "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList",
    "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController",
    "ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob",
    "Ingress", "APIService",
]
ANY = None  # a prerequisite whose keys were not declared


def kind_rank(kind):
    return INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)


def annotations(obj):
    return (obj.get("metadata") or {}).get("annotations") or {}


def hook_events(obj):
    value = annotations(obj).get("helm.sh/hook", "")
    return {e.strip() for e in value.split(",") if e.strip()}


def hook_weight(obj):
    return int(annotations(obj).get("helm.sh/hook-weight", "0"))


def delete_policies(obj):
    value = annotations(obj).get("helm.sh/hook-delete-policy", "before-hook-creation")
    return {p.strip() for p in value.split(",")}


def pod_spec(obj):
    kind = obj["kind"]
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return spec["template"]["spec"]
    if kind == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    return None


def references(obj):
    """(kind, name, key or None) a pod of this object needs to start."""
    spec = pod_spec(obj)
    if spec is None:
        return []
    refs = [("ServiceAccount", spec.get("serviceAccountName") or "default", None)]
    refs += [("Secret", s["name"], None) for s in spec.get("imagePullSecrets") or []]
    for v in spec.get("volumes") or []:
        if "secret" in v and not v["secret"].get("optional"):
            keys = [i["key"] for i in v["secret"].get("items") or []] or [None]
            refs += [("Secret", v["secret"]["secretName"], k) for k in keys]
        if "configMap" in v and not v["configMap"].get("optional"):
            keys = [i["key"] for i in v["configMap"].get("items") or []] or [None]
            refs += [("ConfigMap", v["configMap"]["name"], k) for k in keys]
        if "persistentVolumeClaim" in v:
            refs.append(("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"], None))
        for source in (v.get("projected") or {}).get("sources") or []:
            for kind, field in (("Secret", "secret"), ("ConfigMap", "configMap")):
                if field in source and not source[field].get("optional"):
                    keys = [i["key"] for i in source[field].get("items") or []] or [None]
                    refs += [(kind, source[field]["name"], k) for k in keys]
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for e in c.get("env") or []:
            src = e.get("valueFrom") or {}
            for kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                if field in src and not src[field].get("optional"):
                    refs.append((kind, src[field]["name"], src[field]["key"]))
        for e in c.get("envFrom") or []:
            for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if field in e and not e[field].get("optional"):
                    refs.append((kind, e[field]["name"], None))
    return refs


def provides(obj):
    """{(kind, name): keys or ANY} this object makes exist."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    made = {(kind, name): set((obj.get("data") or {}).keys()) | set((obj.get("stringData") or {}).keys())
            if kind in ("Secret", "ConfigMap") else ANY}
    if kind == "Certificate":  # cert-manager writes the key pair (and the CA) into spec.secretName
        made[("Secret", obj["spec"]["secretName"])] = {"tls.crt", "tls.key", "ca.crt"}
    return made


class Replay:
    def __init__(self, docs, prereqs):
        self.docs = docs
        self.prereqs = prereqs
        self.used = set()
        self.problems = []

    def check(self, obj, existing, when):
        for kind, name, key in references(obj):
            where = f"{when}: {obj['kind']}/{obj['metadata']['name']} needs {kind}/{name}" + (f" key {key}" if key else "")
            if kind == "ServiceAccount" and name == "default":
                continue
            if (kind, name) in self.prereqs:
                self.used.add((kind, name))
                keys = self.prereqs[(kind, name)]
                if key is not None and keys is not ANY and key not in keys:
                    self.problems.append(f"{where}: the prerequisite holds only {sorted(keys)}")
                continue
            if (kind, name) not in existing:
                self.problems.append(f"{where}, which does not exist then (not created before it, not a prerequisite)")
                continue
            keys = existing[(kind, name)]
            if key is not None and keys is not ANY and key not in keys:
                self.problems.append(f"{where}: it holds only {sorted(keys)}")

    def hooks(self, event, existing, when):
        hooks = [d for d in self.docs if event in hook_events(d)]
        hooks.sort(key=lambda d: (hook_weight(d), kind_rank(d["kind"]), d["kind"], d["metadata"]["name"]))
        live = dict(existing)
        for h in hooks:
            live.update(provides(h))
            self.check(h, live, f"{when} hook (weight {hook_weight(h)})")
        # After all of them succeeded, `hook-succeeded` ones are deleted.
        for h in hooks:
            if "hook-succeeded" not in delete_policies(h):
                existing.update(provides(h))

    def run(self, event):
        release = [d for d in self.docs if not hook_events(d)]
        existing = {}
        if event == "upgrade":
            for d in release:
                existing.update(provides(d))
        self.hooks(f"pre-{event}", existing, f"pre-{event}")
        for d in sorted(release, key=lambda d: (kind_rank(d["kind"]), d["metadata"]["name"])):
            existing.update(provides(d))
        # The release's objects are created together; their controllers
        # retry until what the pods name exists, but it must exist.
        for d in release:
            self.check(d, existing, f"{event}")
        self.hooks(f"post-{event}", existing, f"post-{event}")
        self.hooks("test", existing, "helm test")


def replay(manifest_text, prereqs, exact):
    docs = [d for d in yaml.safe_load_all(manifest_text) if d]
    problems, used = [], set()
    for event in ("install", "upgrade"):
        r = Replay(docs, prereqs)
        r.run(event)
        problems += r.problems
        used |= r.used
    if exact:
        problems += [f"prerequisite {k}/{n} is never used" for k, n in sorted(set(prereqs) - used)]
    return sorted(set(problems))


def parse_prereq(text):
    kind_name, _, keys = text.partition("=")
    kind, name = kind_name.split("/", 1)
    return (kind, name), (set(keys.split(",")) if keys else ANY)


def kubectl_objects(block):
    """Secrets and ConfigMaps a shell block creates with `kubectl create`."""
    made = {}
    for m in re.finditer(r"kubectl create (secret (generic|tls)|configmap) ([a-z0-9.-]+)(.*)", block):
        kind = "Secret" if m.group(1).startswith("secret") else "ConfigMap"
        rest = m.group(4)
        keys = set(re.findall(r"--from-(?:literal|file)=([A-Za-z0-9._-]+)=", rest))
        keys |= {p.rsplit("/", 1)[-1] for p in re.findall(r"--from-file=([^=\s]+)(?=\s|$)", rest)}
        if m.group(2) == "tls":
            keys |= {"tls.crt", "tls.key"}
        made[(kind, m.group(3))] = keys
    return made


def readme(path, helm):
    text = open(path).read()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    starts = [b for b in blocks if "helm install" in b]
    if not starts:
        return ["no quick start (a ```sh block with helm install) in " + path]
    problems = []
    for n, block in enumerate(starts, 1):
        joined = block.replace("\\\n", " ")
        line = [l for l in joined.split("\n") if l.strip().startswith("helm install")][0]
        args = shlex.split(line.split("#", 1)[0])
        assert args[:2] == ["helm", "install"], args
        rendered = subprocess.run([helm, "template"] + args[2:], capture_output=True, text=True)
        name = f"quick start {n} ({args[2]} {' '.join(args[4:])})"
        if rendered.returncode != 0:
            problems.append(f"{name}: helm template failed: {rendered.stderr.strip()}")
            continue
        prereqs = kubectl_objects(joined)
        problems += [f"{name}: {p}" for p in replay(rendered.stdout, prereqs, exact=True)]
        print(f"{name}: {len(prereqs)} prerequisites: {', '.join(f'{k}/{n}' for k, n in sorted(prereqs))}")
    return problems


def main(argv):
    if argv[1] == "replay":
        prereqs, exact, path = {}, False, None
        args = iter(argv[2:])
        for a in args:
            if a == "--prereq":
                k, v = parse_prereq(next(args))
                prereqs[k] = v
            elif a == "--exact":
                exact = True
            else:
                path = a
        problems = replay(open(path).read(), prereqs, exact)
    elif argv[1] == "readme":
        problems = readme(argv[2], argv[3])
    else:
        sys.exit(__doc__)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
