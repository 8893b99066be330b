#!/usr/bin/env bash
# Chart tests: helm lint, helm template (default = single replica on SQLite;
# ci/ha-values.yaml = replicas on PostgreSQL with everything optional on),
# the rendered manifests validated offline against the Kubernetes schemas
# (kubernetes-validate --strict), the rendered assertd.toml checked by
# `assertd config check`, and values the chart must refuse.
#
# Usage: helm/test-chart.sh HELM ASSERTD   (paths to the helm and assertd binaries)
# Needs python3 with kubernetes_validate importable.
set -uo pipefail
cd "$(dirname "$0")"
helm="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
assertd="$2"
work="$(mktemp -d)"
# Plaintext gRPC is refused unless acknowledged (issue 26): the renders below
# acknowledge it (a mesh does mTLS), except the checks of that refusal.
ack="--set tls.insecurePlaintextAcknowledged=true"
trap 'rm -rf "$work"' EXIT
pass=0
fail=0
check() {
  local name="$1"
  shift
  if "$@" >"$work/log" 2>&1; then
    pass=$((pass + 1))
    echo "ok   $name"
  else
    fail=$((fail + 1))
    echo "FAIL $name"
    sed 's/^/     /' "$work/log" | tail -20
  fi
}
refuses() {
  # The command must fail, and say the expected thing.
  local expect="$1"
  shift
  ! "$@" >"$work/refused" 2>&1 && grep -q -- "$expect" "$work/refused"
}
config_of() {
  # The assertd.toml inside a rendered ConfigMap.
  python3 - "$1" <<'PY'
import sys
text = open(sys.argv[1]).read()
for doc in text.split("\n---"):
    if "kind: ConfigMap" in doc and "assertd.toml: |" in doc:
        lines = doc.split("assertd.toml: |", 1)[1].split("\n")[1:]
        print("\n".join(l[4:] for l in lines if l.startswith("    ") or not l.strip()))
        break
PY
}

check "helm lint (default values)" "$helm" lint --strict assertd $ack
check "helm lint (HA values)" "$helm" lint --strict assertd $ack -f assertd/ci/ha-values.yaml
check "helm template (default values)" sh -c "'$helm' template t assertd $ack > '$work/default.yaml'"
check "helm template (HA values)" sh -c "'$helm' template t assertd $ack -f assertd/ci/ha-values.yaml > '$work/ha.yaml'"
check "kubernetes-validate --strict (default)" python3 -m kubernetes_validate --strict --quiet "$work/default.yaml"
check "kubernetes-validate --strict (HA)" python3 -m kubernetes_validate --strict --quiet "$work/ha.yaml"
check "default objects" sh -c "grep -q 'kind: PersistentVolumeClaim' '$work/default.yaml' && grep -q 'clusterIP: None' '$work/default.yaml' && grep -q 'type: Recreate' '$work/default.yaml' && grep -q 'checksum/config' '$work/default.yaml' && grep -q 'helm.sh/hook: test' '$work/default.yaml'"
check "HA objects" sh -c "grep -q 'kind: HorizontalPodAutoscaler' '$work/ha.yaml' && grep -q 'kind: ServiceMonitor' '$work/ha.yaml' && grep -q 'kind: NetworkPolicy' '$work/ha.yaml' && grep -q 'grafana_dashboard' '$work/ha.yaml' && grep -q 'ASSERTD_DATABASE_URL' '$work/ha.yaml' && ! grep -q 'kind: PersistentVolumeClaim' '$work/ha.yaml'"
sre_values() {
  local f="$work/sre.yaml"
  "$helm" template t assertd $ack -f assertd/ci/sre-values.yaml > "$f" &&
    python3 -m kubernetes_validate --strict --quiet "$f" &&
    grep -q 'kind: ServiceAccount' "$f" && grep -q 'serviceAccountName: idp-assertd' "$f" &&
    grep -q 'image: "registry.example/example/assertd@sha256:0123456789abcdef' "$f" && ! grep -q 'ghcr.io' "$f" &&
    grep -q 'sidecar.istio.io/inject: "false"' "$f" && grep -q 'name: TZ' "$f" &&
    ! grep -q 'runAsUser' "$f" && grep -q 'runAsNonRoot: true' "$f" &&
    [ "$(python3 -c "
import sys, re
docs = open('$f').read().split('\n---')
dep = [d for d in docs if 'kind: Deployment' in d][0]
pod = dep.split('template:', 1)[1]
print('team: identity' in pod.split('spec:', 1)[0])")" = True ] &&
    grep -q 'runAsUser: 65532' "$work/default.yaml" && grep -q 'serviceAccountName: default' "$work/default.yaml"
}
check "SRE values: global.imageRegistry (a mirror), name overrides, digest, pod labels (commonLabels too), extraEnv, ServiceAccount, no fixed UID (OpenShift)" sre_values
checksum_restart_settings_only() {
  local sum
  sum() { "$helm" template t assertd $ack "$@" | grep 'checksum/config' | head -1; }
  [ "$(sum)" = "$(sum --set-string 'policy=[[relying_parties]]
id = "other.example.com"
origins = ["https://other.example.com"]')" ] &&
    [ "$(sum)" != "$(sum --set limits.maxBatchSize=512)" ] &&
    [ "$(sum)" != "$(sum --set cache.maxEntries=5)" ]
}
install_order() {
  # Helm's install and upgrade order, replayed (install_order.py): no hook
  # or pod names a ServiceAccount, Secret or ConfigMap that does not exist
  # at that point and is not a prerequisite the operator creates first.
  local tls="Secret/assertd-tls=tls.crt,tls.key,ca.crt" db="Secret/assertd-database=database-url"
  local ha="--prereq $db --prereq Secret/assertd-database-ca=ca.crt --prereq Secret/assertd-database-client=tls.crt,tls.key --prereq $tls --prereq Secret/assertd-challenges"
  "$helm" template t assertd $ack -f assertd/ci/sre-values.yaml --set store.backend=postgres --set store.postgres.migrations=hook \
    --set store.postgres.existingSecret=assertd-database --set store.postgres.migrationSecret=assertd-ddl > "$work/order-sre.yaml" &&
    python3 install_order.py replay "$work/order-sre.yaml" --exact --prereq Secret/idp-assertd-tokens=gateway,admin --prereq $db \
      --prereq Secret/assertd-ddl=database-url &&
    grep -q 'serviceAccountName: idp-assertd-hooks' "$work/order-sre.yaml" &&
    python3 - "$work/order-sre.yaml" <<'PY' &&
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ServiceAccount"]
hook = [d for d in docs if d["metadata"]["name"] == "idp-assertd-hooks"][0]
assert hook["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("role/assertd"), hook
PY
    python3 install_order.py replay "$work/ha.yaml" --exact $ha &&
    python3 install_order.py replay "$work/default.yaml" --exact --prereq Secret/t-assertd-tokens=gateway,admin &&
    (cd .. && python3 helm/install_order.py readme helm/assertd/README.md "$helm")
}
check "install order replayed: hooks' ServiceAccount, Secrets and ConfigMaps exist when they run; each README quick start with exactly its Secrets" install_order
check "a policy edit reloads in place; restart-only settings roll the pods (checksum)" checksum_restart_settings_only
config_check_hook() {
  local f="$work/ha.yaml"
  # The hook Job checks the very config the pods get, with their environment
  # and challenge keys, before install and upgrade.
  grep -q 'helm.sh/hook: pre-install,pre-upgrade' "$f" && grep -q 'args: \["config", "check", "/etc/assertd/assertd.toml"\]' "$f" &&
    python3 - "$f" <<'PY' &&
import sys
docs = open(sys.argv[1]).read().split("\n---")
cms = [d for d in docs if "kind: ConfigMap" in d and "assertd.toml: |" in d]
hook = [d for d in cms if "config-check" in d][0]
main = [d for d in cms if "config-check" not in d][0]
body = lambda d: d.split("assertd.toml: |", 1)[1]
assert body(hook) == body(main), "the hook checks another config than the pods get"
job = [d for d in docs if "kind: Job" in d][0]
assert "ASSERTD_DATABASE_URL" in job and "secretName: assertd-challenges" in job, job
PY
  ! "$helm" template t assertd $ack --set configCheckHook.enabled=false | grep -q 'config-check'
}
check "config check hook: the pods' config, environment and keys, before install and upgrade" config_check_hook
alerts() {
  # Rendered, checked and unit-tested by promtool (Debian's prometheus
  # package); every alert links a runbook that exists in docs/runbooks.
  # (kubernetes-validate knows no CRDs: promtool checks the rules.)
  refuses "prometheusRule.runbookBaseUrl" "$helm" template t assertd $ack --set prometheusRule.enabled=true &&
    "$helm" template t assertd $ack --set prometheusRule.enabled=true \
      --set prometheusRule.runbookBaseUrl=https://github.com/example/assertd/blob/main/docs/runbooks > "$work/rule.yaml" &&
    python3 - "$work/rule.yaml" "$work/rules.yaml" <<'PY' &&
import sys, yaml, os
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "PrometheusRule"]
spec = docs[0]["spec"]
yaml.safe_dump(spec, open(sys.argv[2], "w"))
for r in spec["groups"][0]["rules"]:
    name = r["alert"]
    assert r["annotations"]["runbook_url"].endswith(f"/{name}.md"), name
    assert os.path.exists(f"../docs/runbooks/{name}.md"), f"no runbook for {name}"
    assert f"[{name}]({name}.md)" in open("../docs/runbooks/README.md").read(), f"{name} is not in docs/runbooks/README.md"
    assert f"alertname: {name}\n" in open("alerts.test.yaml").read(), f"no promtool test of {name} in alerts.test.yaml"
PY
    promtool check rules "$work/rules.yaml" >/dev/null && cp alerts.test.yaml "$work/" && promtool test rules "$work/alerts.test.yaml" >/dev/null &&
    ! grep -q 'kind: PrometheusRule' "$work/default.yaml"
}
check "alerts: PrometheusRule checked and unit-tested by promtool, a runbook per alert (optional)" alerts
dashboard() {
  # Every panel's query parses (promtool, as recording rules) and reads
  # only metrics assertd exports (the table in docs/operations.md).
  python3 - assertd/dashboards/assertd.json ../docs/operations.md "$work/dashboard-rules.yaml" <<'PY' &&
import json, re, sys
dash = json.load(open(sys.argv[1]))
doc = open(sys.argv[2]).read().split("\n## Metrics\n", 1)[1]
known = set(re.findall(r"^\| `([a-z_]+)`", doc, re.M))
rules, seen = [], set()
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
for p in panels(dash["panels"]):
    for t in p.get("targets", []):
        # Grafana's interval variables stand for a duration.
        expr = re.sub(r"\$__[a-z_]+interval", "5m", t["expr"], flags=re.I)
        rules.append({"record": f"dashboard:panel_{p['id']}_{t['refId'].lower()}", "expr": expr})
        for m in re.findall(r"\b((?:assertd|process)_[a-z_]+)", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", m)
            assert m in known or base in known, f"panel {p['id']} ({p['title']}) reads {m}, which assertd does not export"
            seen.add(base if base in known else m)
        # Reasons count on allowed verdicts too: a panel of them says which.
        assert "assertd_verdict_reasons_total" not in expr or "decision=" in expr, f"panel {p['id']} ({p['title']}) reads reasons without a decision"
assert any(p.get("type") == "row" and p["title"] == "Adoption" for p in dash["panels"]), "no Adoption row"
adoption = {"assertd_credentials", "assertd_users_by_strongest_credential", "assertd_registrations_total", "assertd_sign_ins_total", "assertd_report_only_verdicts_total"}
assert adoption <= seen, f"the Adoption row does not read {adoption - seen}"
import yaml
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[3], "w"))
PY
    promtool check rules "$work/dashboard-rules.yaml" >/dev/null
}
check "dashboard: every query parses and reads only exported metrics; an Adoption row (kinds, strongest, registrations, sign-ins, report-only)" dashboard
migrate_hook() {
  local f="$work/migrate.yaml"
  "$helm" template t assertd $ack -f assertd/ci/ha-values.yaml --set store.postgres.migrations=hook --set store.postgres.migrationSecret=assertd-ddl > "$f" &&
    python3 -m kubernetes_validate --strict --quiet "$f" &&
    grep -q 'args: \["migrate", "--config", "/etc/assertd/assertd.toml"\]' "$f" && grep -q 'name: assertd-ddl' "$f" &&
    grep -q 'migrate = false' "$f" && ! grep -q 'migrate = false' "$work/ha.yaml" && ! grep -q 'kind: Job' <(grep -A3 'name: t-assertd-migrate' "$work/ha.yaml")
}
check "migrations in a hook Job with a DDL role; pods without DDL rights (store.postgres.migrations=hook)" migrate_hook
egress() {
  local f="$work/egress.yaml"
  "$helm" template t assertd $ack -f assertd/ci/ha-values.yaml --set networkPolicy.egress.enabled=true \
    --set 'networkPolicy.egress.postgresTo[0].ipBlock.cidr=10.0.5.0/24' > "$f" &&
    python3 -m kubernetes_validate --strict --quiet "$f" &&
    grep -q 'policyTypes: \["Ingress", "Egress"\]' "$f" && grep -q 'cidr: 10.0.5.0/24' "$f" && grep -q 'port: 5432' "$f" &&
    grep -q 'policyTypes: \["Ingress"\]' "$work/ha.yaml"
}
check "NetworkPolicy egress (optional): DNS and PostgreSQL only" egress
pdb_only_when_satisfiable() {
  # One replica: a budget would block every node drain, so none renders.
  ! grep -q 'kind: PodDisruptionBudget' "$work/default.yaml" &&
    grep -q 'kind: PodDisruptionBudget' "$work/ha.yaml" &&
    ! "$helm" template t assertd $ack -f assertd/ci/ha-values.yaml --set podDisruptionBudget.minAvailable=3 | grep -q 'kind: PodDisruptionBudget' &&
    "$helm" template t assertd $ack -f assertd/ci/ha-values.yaml --set podDisruptionBudget.minAvailable=50% | grep -q 'minAvailable: 50%' &&
    ! "$helm" template t assertd $ack -f assertd/ci/ha-values.yaml --set podDisruptionBudget.minAvailable=100% | grep -q 'kind: PodDisruptionBudget'
}
check "PodDisruptionBudget only when it allows a disruption (none for one replica)" pdb_only_when_satisfiable
readiness_through_outages() {
  # Pods stay ready through a database outage unless told to follow it; a
  # budget never holds a drain on unready pods.
  config_of "$work/ha.yaml" > "$work/ha-ready.toml" && grep -qx 'readiness_follows_store = false' "$work/ha-ready.toml" &&
    "$helm" template t assertd $ack -f assertd/ci/ha-values.yaml --set store.readinessFollowsStore=true > "$work/follows.yaml" &&
    config_of "$work/follows.yaml" > "$work/follows.toml" && grep -qx 'readiness_follows_store = true' "$work/follows.toml" &&
    grep -q 'unhealthyPodEvictionPolicy: AlwaysAllow' "$work/ha.yaml"
}
check "readiness through a database outage (readinessFollowsStore off by default); PDB evicts unready pods" readiness_through_outages
secure() {
  # Every pod the chart runs (server, hooks, test), every container.
  python3 - "$work/default.yaml" "$work/ha.yaml" <<'PY'
import sys, yaml
seen = 0
for f in sys.argv[1:]:
    for d in yaml.safe_load_all(open(f)):
        if not d or d["kind"] not in ("Deployment", "Job", "Pod"):
            continue
        spec = d["spec"] if d["kind"] == "Pod" else d["spec"]["template"]["spec"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}, d["metadata"]["name"]
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "privileged": False, "capabilities": {"drop": ["ALL"]}}, (d["metadata"]["name"], sc)
            seen += 1
assert seen >= 5, seen
PY
}
check "security context: every pod and container of the chart (server, hooks, test)" secure
escape_hatches() {
  # What platform teams set, each reaching the object it is for.
  cat > "$work/hatches.yaml" <<'YAML'
global:
  imageRegistry: mirror.example:5000
  imagePullSecrets: [mirror-pull, {name: org-pull}]
imagePullSecrets: [assertd-pull, mirror-pull]
image: {repository: assertd}
priorityClassName: identity-critical
extraVolumes: [{name: audit, persistentVolumeClaim: {claimName: assertd-audit}}]
extraVolumeMounts: [{name: audit, mountPath: /var/log/assertd}]
extraContainers: [{name: shipper, image: fluent-bit:3, volumeMounts: [{name: audit, mountPath: /logs, readOnly: true}]}]
initContainers: [{name: wait, image: busybox:1, command: ["true"]}]
probes: {readinessFailureThreshold: 4, startupPeriodSeconds: 5, startupFailureThreshold: 60, timeoutSeconds: 3}
podSecurityContext: {extra: {supplementalGroups: [4000], fsGroupChangePolicy: OnRootMismatch}}
containerSecurityContext: {runAsUser: 70000}
autoscaling: {behavior: {scaleDown: {stabilizationWindowSeconds: 600}}}
podDisruptionBudget: {maxUnavailable: 1}
serviceMonitor: {enabled: true, scrapeTimeout: 5s, relabelings: [{targetLabel: cluster, replacement: eu-1}], metricRelabelings: [{sourceLabels: [__name__], regex: go_.*, action: drop}]}
topologySpread: {constraints: [{maxSkew: 2, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app.kubernetes.io/name: assertd}}}]}
YAML
  "$helm" template t assertd $ack -f assertd/ci/ha-values.yaml -f "$work/hatches.yaml" > "$work/hatches-out.yaml" &&
    python3 -m kubernetes_validate --strict --quiet "$work/hatches-out.yaml" &&
    python3 - "$work/hatches-out.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
one = lambda k: [d for d in docs if d["kind"] == k][0]
pod = one("Deployment")["spec"]["template"]["spec"]
c = pod["containers"][0]
assert pod["priorityClassName"] == "identity-critical"
assert [s["name"] for s in pod["imagePullSecrets"]] == ["mirror-pull", "org-pull", "assertd-pull"], pod["imagePullSecrets"]
assert c["image"].startswith("mirror.example:5000/assertd:"), c["image"]
assert {"name": "audit", "persistentVolumeClaim": {"claimName": "assertd-audit"}} in pod["volumes"]
assert {"name": "audit", "mountPath": "/var/log/assertd"} in c["volumeMounts"]
assert [x["name"] for x in pod["containers"]] == ["assertd", "shipper"] and pod["initContainers"][0]["name"] == "wait"
assert c["readinessProbe"]["failureThreshold"] == 4 and c["startupProbe"]["periodSeconds"] == 5
assert c["startupProbe"]["failureThreshold"] == 60 and c["livenessProbe"]["timeoutSeconds"] == 3
assert pod["securityContext"]["supplementalGroups"] == [4000] and pod["securityContext"]["runAsNonRoot"] is True
assert c["securityContext"]["runAsUser"] == 70000 and c["securityContext"]["readOnlyRootFilesystem"] is True
assert one("HorizontalPodAutoscaler")["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
pdb = one("PodDisruptionBudget")["spec"]
assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb, pdb
ep = one("ServiceMonitor")["spec"]["endpoints"][0]
assert ep["scrapeTimeout"] == "5s" and ep["relabelings"][0]["targetLabel"] == "cluster" and ep["metricRelabelings"][0]["action"] == "drop"
spread = pod["topologySpreadConstraints"]
assert len(spread) == 1 and spread[0]["whenUnsatisfiable"] == "DoNotSchedule", spread
for job in [d for d in docs if d["kind"] == "Job"]:
    spec = job["spec"]["template"]["spec"]
    assert spec["priorityClassName"] == "identity-critical" and spec["securityContext"]["supplementalGroups"] == [4000]
    assert [s["name"] for s in spec["imagePullSecrets"]] == ["mirror-pull", "org-pull", "assertd-pull"]
    assert spec["containers"][0]["image"] == c["image"]
PY
}
backup_cronjob() {
  "$helm" template t assertd $ack --set backup.enabled=true --set backup.keep=3 > "$work/backup.yaml" &&
    python3 -m kubernetes_validate --strict --quiet "$work/backup.yaml" &&
    python3 install_order.py replay "$work/backup.yaml" --exact --prereq Secret/t-assertd-tokens=gateway,admin &&
    python3 - "$work/backup.yaml" <<'PY' &&
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
cron = [d for d in docs if d["kind"] == "CronJob"][0]
pod = cron["spec"]["jobTemplate"]["spec"]["template"]
spec = pod["spec"]
assert cron["spec"]["concurrencyPolicy"] == "Forbid"
assert spec["containers"][0]["args"] == ["backup", "--config", "/etc/assertd/assertd.toml", "--to", "/backup", "--keep", "3"], spec["containers"][0]["args"]
claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
assert claims == {"data": "t-assertd-data", "backup": "t-assertd-backup"}, claims
service = [d for d in docs if d["kind"] == "Service"][0]["spec"]["selector"]
server = [d for d in docs if d["kind"] == "Deployment"][0]["spec"]["template"]["metadata"]["labels"]
near = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
assert near["topologyKey"] == "kubernetes.io/hostname" and all(server[k] == v for k, v in near["labelSelector"]["matchLabels"].items())
assert not all(pod["metadata"]["labels"].get(k) == v for k, v in service.items()), "the Service selects the backup pod"
pvc = [d for d in docs if d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == "t-assertd-backup"][0]
assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
PY
    refuses "database's own backups" "$helm" template t assertd $ack -f assertd/ci/ha-values.yaml --set backup.enabled=true &&
    refuses "persistence.enabled" "$helm" template t assertd $ack --set backup.enabled=true --set persistence.enabled=false &&
    ! grep -q 'kind: CronJob' "$work/default.yaml"
}
check "backups (optional): a CronJob running assertd backup beside the server's pod into a kept claim; refused for PostgreSQL" backup_cronjob
check "escape hatches: priority, extra volumes/containers, probes, security contexts, HPA behavior, PDB maxUnavailable, ServiceMonitor relabelings, spread, global registry and pull secrets" escape_hatches
selectors() {
  # No selector of the server's picks a hook Job's or the test pod's pods.
  "$helm" template t assertd $ack -f assertd/ci/ha-values.yaml --set store.postgres.migrations=hook > "$work/sel.yaml" &&
    python3 - "$work/sel.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
def labels(d):
    return d["metadata"]["labels"] if d["kind"] == "Pod" else d["spec"]["template"]["metadata"]["labels"]
server = labels([d for d in docs if d["kind"] == "Deployment"][0])
others = [(d["metadata"]["name"], labels(d)) for d in docs if d["kind"] in ("Job", "Pod")]
assert len(others) == 3, [n for n, _ in others]
selectors = []
for d in docs:
    k, s = d["kind"], d.get("spec", {})
    if k == "Service": selectors.append((k, s["selector"]))
    if k in ("Deployment", "PodDisruptionBudget"): selectors.append((k, s["selector"]["matchLabels"]))
    if k == "NetworkPolicy": selectors.append((k, s["podSelector"]["matchLabels"]))
    if k == "Deployment":
        selectors += [("spread", t["labelSelector"]["matchLabels"]) for t in s["template"]["spec"].get("topologySpreadConstraints", [])]
assert len(selectors) >= 6, selectors
matches = lambda sel, l: all(l.get(k) == v for k, v in sel.items())
for kind, sel in selectors:
    assert matches(sel, server), (kind, sel, server)
    for name, l in others:
        assert not matches(sel, l), f"{kind} selector {sel} picks {name}'s pods ({l})"
    for name, l in others:
        assert l["app.kubernetes.io/instance"] == "t" and l["app.kubernetes.io/component"], l
PY
}
check "selectors: Services, PDB, NetworkPolicy, Deployment and spread pick the server's pods, never a hook's or the test pod" selectors
check "native gRPC probes on the health port" sh -c "grep -q 'service: readiness' '$work/default.yaml' && grep -q 'service: liveness' '$work/default.yaml' && grep -A1 'grpc:\$' '$work/default.yaml' | grep -q 'port: 8081'"
check "plaintext only by explicit opt-in (acknowledged)" grep -q 'insecure_allow_plaintext = true' "$work/default.yaml"
check "refuses plaintext bearer tokens without acknowledgement (the bare default)" refuses "tls.insecurePlaintextAcknowledged=true" "$helm" template t assertd
tls_one_value_away() {
  "$helm" template t assertd --set tls.existingSecret=my-tls > "$work/tls1.yaml" &&
    grep -q 'insecure_allow_plaintext = false' "$work/tls1.yaml" && grep -q 'secretName: my-tls' "$work/tls1.yaml" &&
    "$helm" template t assertd --set tls.certManager.enabled=true --set tls.certManager.issuerRef.name=ca > "$work/tls2.yaml" &&
    grep -q 'insecure_allow_plaintext = false' "$work/tls2.yaml" && grep -q 'kind: Certificate' "$work/tls2.yaml"
}
check "TLS one value away (a Secret, or cert-manager with its issuer), no acknowledgement needed" tls_one_value_away
metrics_from_monitoring() {
  python3 - "$work/default.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "NetworkPolicy"]
rules = docs[0]["spec"]["ingress"]
metrics = [r for r in rules if any(p["port"] == "metrics" for p in r["ports"])][0]
assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}], metrics
PY
}
check "metrics port only from the monitoring namespace by default" metrics_from_monitoring
authenticated() {
  local f="$work/default.yaml"
  grep -q 'token_sha256_env = \["ASSERTD_TOKEN_SHA256_GATEWAY"\]' "$f" && grep -q 'name: t-assertd-tokens' "$f" &&
    grep -q 'kind: NetworkPolicy' "$f" && ! grep -q 'insecure_allow_unauthenticated' "$f"
}
check "the default install authenticates callers (tokens from a Secret, NetworkPolicy on)" authenticated
mtls_clients() {
  local f="$work/ha.yaml"
  grep -q 'certificate_names = \["spiffe://cluster.local/ns/identity/sa/gateway"\]' "$f" && ! grep -q 'token_sha256_env' "$f" &&
    ! grep -q 'insecure_allow_unauthenticated' "$f" && grep -q 'kubernetes.io/metadata.name: identity' "$f"
}
check "mtls mode: certificate identities, gateways by namespace (HA)" mtls_clients
insecure_acknowledged() {
  "$helm" template t assertd $ack --set auth.mode=insecure --set auth.insecureAcknowledged=true > "$work/insecure.yaml" &&
    grep -q 'insecure_allow_unauthenticated = true' "$work/insecure.yaml" && ! grep -q '\[\[clients\]\]' "$work/insecure.yaml"
}
check "insecure mode renders only when acknowledged" insecure_acknowledged
cert_manager() {
  "$helm" template t assertd $ack --namespace idp --set tls.enabled=true --set tls.certManager.enabled=true \
    --set tls.certManager.issuerRef.name=internal-ca --set tls.certManager.issuerRef.kind=ClusterIssuer > "$work/cm.yaml" &&
    python3 -m kubernetes_validate --strict --quiet "$work/cm.yaml" &&
    grep -q 'kind: Certificate' "$work/cm.yaml" && grep -q 'secretName: t-assertd-tls' "$work/cm.yaml" &&
    grep -q -- '- t-assertd.idp.svc.cluster.local' "$work/cm.yaml" && grep -q 'kind: ClusterIssuer' "$work/cm.yaml" &&
    [ "$(grep -c 'secretName: t-assertd-tls' "$work/cm.yaml")" -eq 3 ] &&
    ! grep -q 'kind: Certificate' "$work/default.yaml"
}
check "cert-manager Certificate: serving and client CA Secret, Service names (optional)" cert_manager
check "refuses cert-manager without an issuer" refuses "issuerRef.name" "$helm" template t assertd $ack --set tls.enabled=true --set tls.certManager.enabled=true
tls_mounts() {
  local f="$work/ha.yaml"
  grep -q 'insecure_allow_plaintext = false' "$f" && grep -q 'client_ca_file = "/etc/assertd/client-ca/ca.crt"' "$f" &&
    grep -q 'secretName: assertd-tls' "$f" && grep -q 'mountPath: /etc/assertd/tls' "$f"
}
check "mutual TLS from Secrets (HA)" tls_mounts
postgres_tls() {
  local f="$work/ha.yaml"
  grep -q 'sslmode = "verify-full"' "$f" && grep -q 'ssl_root_cert = "/etc/assertd/postgres-ca/ca.crt"' "$f" &&
    grep -q 'ssl_key = "/etc/assertd/postgres-client/tls.key"' "$f" && grep -q 'secretName: assertd-database-ca' "$f" &&
    grep -q 'mountPath: /etc/assertd/postgres-client' "$f" && ! grep -q 'insecure_allow_unverified_postgres' "$f"
}
check "PostgreSQL TLS: verify-full, CA and client certificate from Secrets (HA)" postgres_tls
challenges() {
  local f="$work/ha.yaml"
  grep -q 'keys = \[{ id = "k2026-12", secret_file = "/etc/assertd/challenges/k2026-12" }, { id = "k2026-11", secret_file = "/etc/assertd/challenges/k2026-11" }\]' "$f" &&
    grep -q 'secretName: assertd-challenges' "$f" && grep -q 'mountPath: /etc/assertd/challenges' "$f" &&
    ! grep -q '\[challenges\]' "$work/default.yaml"
}
check "issued challenges: keys from a Secret, the first signs (HA; off by default)" challenges
check "refuses challenge key ids without their Secret" refuses "challenges.secret" "$helm" template t assertd $ack --set 'challenges.keyIds={k1}'
check "refuses a challenge Secret without key ids" refuses "challenges.keyIds" "$helm" template t assertd $ack --set challenges.secret=s
access_passes() {
  "$helm" template t assertd $ack --set temporaryAccessPass.secret=assertd-tap --set 'temporaryAccessPass.keyIds={t2026-12}' \
    --set temporaryAccessPass.requireOneTime=true > "$work/tap.yaml" &&
    grep -q 'keys = \[{ id = "t2026-12", secret_file = "/etc/assertd/temporary-access-pass/t2026-12" }\]' "$work/tap.yaml" &&
    grep -q 'require_one_time = true' "$work/tap.yaml" && grep -q 'max_lifetime_seconds = 28800' "$work/tap.yaml" &&
    [ "$(grep -c 'mountPath: /etc/assertd/temporary-access-pass' "$work/tap.yaml")" = 2 ] &&
    [ "$(grep -c 'secretName: assertd-tap' "$work/tap.yaml")" = 2 ] && ! grep -q 'temporary_access_pass' "$work/default.yaml" &&
    mkdir -p "$work/tap" && head -c 32 /dev/urandom | base64 > "$work/tap/t2026-12" &&
    config_of "$work/tap.yaml" | sed "s|/etc/assertd/temporary-access-pass/|$work/tap/|g" > "$work/tap.toml" &&
    env ASSERTD_TOKEN_SHA256_GATEWAY="$(printf %064d 1)" ASSERTD_TOKEN_SHA256_ADMIN="$(printf %064d 2)" "$assertd" config check "$work/tap.toml" > /dev/null
}
check "temporary access passes: keys from a Secret in the pods and the config check, a valid config (off by default)" access_passes
check "the event log's retention (7 days by default)" grep -q 'retention_days = 7' "$work/default.yaml"
check "refuses pass key ids without their Secret" refuses "temporaryAccessPass.secret" "$helm" template t assertd $ack --set 'temporaryAccessPass.keyIds={t1}'
check "schema refuses a pass lifetime under 10 minutes" refuses "minLifetimeSeconds" "$helm" template t assertd $ack --set temporaryAccessPass.minLifetimeSeconds=60
shared_signals() {
  cat > "$work/ssf-values.yaml" <<'YAML'
sharedSignals:
  issuer: https://assertd.example.com/
  keySecret: assertd-ssf
  keyId: k2026-12
  receivers:
    - name: siem
      endpointUrl: https://siem.example.com/ssf
      audience: https://siem.example.com
      authorizationSecret: assertd-ssf-siem
      events: [session-revoked, credential-change]
    - name: gateway
      endpointUrl: https://gateway.example.com/ssf
      audience: https://gateway.example.com
      rpIds: [example.com]
YAML
  "$helm" template t assertd $ack -f "$work/ssf-values.yaml" > "$work/ssf.yaml" &&
    python3 -m kubernetes_validate --strict --quiet "$work/ssf.yaml" &&
    grep -q 'signing_key_file = "/etc/assertd/shared-signals/key/key.pem"' "$work/ssf.yaml" &&
    grep -q 'authorization_header_file = "/etc/assertd/shared-signals/siem/authorization"' "$work/ssf.yaml" &&
    [ "$(grep -c 'mountPath: /etc/assertd/shared-signals/key' "$work/ssf.yaml")" = 2 ] &&
    [ "$(grep -c 'secretName: assertd-ssf-siem' "$work/ssf.yaml")" = 2 ] && ! grep -q 'shared_signals' "$work/default.yaml" &&
    mkdir -p "$work/ssf/key" "$work/ssf/siem" &&
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ssf/key/key.pem" 2>/dev/null &&
    echo "Bearer t0ken" > "$work/ssf/siem/authorization" &&
    config_of "$work/ssf.yaml" | sed "s|/etc/assertd/shared-signals/|$work/ssf/|g" > "$work/ssf.toml" &&
    env ASSERTD_TOKEN_SHA256_GATEWAY="$(printf %064d 1)" ASSERTD_TOKEN_SHA256_ADMIN="$(printf %064d 2)" "$assertd" config check "$work/ssf.toml" > /dev/null
}
check "shared signals: the key and authorization Secrets in the pods and the config check, a valid config (off by default)" shared_signals
check "refuses receivers without a signing key" refuses "sharedSignals.keySecret" "$helm" template t assertd $ack \
  --set sharedSignals.issuer=https://a.example --set sharedSignals.keyId=k --set 'sharedSignals.receivers[0].name=r' \
  --set 'sharedSignals.receivers[0].endpointUrl=https://r.example' --set 'sharedSignals.receivers[0].audience=r'
check "schema refuses a plaintext receiver" refuses "endpointUrl" "$helm" template t assertd $ack --set sharedSignals.issuer=https://a.example \
  --set 'sharedSignals.receivers[0].name=r' --set 'sharedSignals.receivers[0].endpointUrl=http://r.example' --set 'sharedSignals.receivers[0].audience=r'
attestation_roots() {
  "$helm" template t assertd $ack --set registration.attestationRootsConfigMap=roots --set 'registration.attestationRoots[0].format=apple' \
    --set 'registration.attestationRoots[0].key=apple.pem' > "$work/roots.yaml" &&
    grep -q 'file = "/etc/assertd/attestation-roots/apple.pem"' "$work/roots.yaml" && grep -q 'name: roots' "$work/roots.yaml" &&
    [ "$(grep -c 'mountPath: /etc/assertd/attestation-roots' "$work/roots.yaml")" = 2 ] && ! grep -q 'attestation_roots' "$work/default.yaml"
}
check "attestation roots: a ConfigMap mounted in the pods and the config check, one [[attestation_roots]] per format (none by default)" attestation_roots
check "refuses attestation roots without their ConfigMap" refuses "attestationRootsConfigMap" "$helm" template t assertd $ack --set 'registration.attestationRoots[0].format=apple' --set 'registration.attestationRoots[0].key=a.pem'
check "refuses an attestation roots ConfigMap without roots" refuses "registration.attestationRoots" "$helm" template t assertd $ack --set registration.attestationRootsConfigMap=roots
fido_metadata() {
  "$helm" template t assertd $ack --set 'metadata.volume.persistentVolumeClaim.claimName=fido-mds' --set metadata.rootConfigMap=fido-root > "$work/mds.yaml" &&
    grep -q 'path = "/var/lib/assertd-metadata/blob.jwt"' "$work/mds.yaml" && grep -q 'root_file = "/etc/assertd/metadata-root/root.pem"' "$work/mds.yaml" &&
    grep -q 'claimName: fido-mds' "$work/mds.yaml" && [ "$(grep -c 'mountPath: /var/lib/assertd-metadata' "$work/mds.yaml")" = 2 ] &&
    ! grep -q '\[metadata\]' "$work/default.yaml"
}
check "FIDO metadata: a BLOB from a volume, its root from a ConfigMap, in the pods and the config check (off by default)" fido_metadata
aaguid_names() {
  "$helm" template t assertd $ack --set metadata.aaguidNamesConfigMap=passkey-names > "$work/names.yaml" &&
    grep -q 'aaguid_names_file = "/etc/assertd/aaguid-names/aaguids.json"' "$work/names.yaml" &&
    ! grep -q 'path = "/var/lib/assertd-metadata' "$work/names.yaml" &&
    [ "$(grep -c 'mountPath: /etc/assertd/aaguid-names' "$work/names.yaml")" = 2 ] &&
    [ "$(grep -c 'name: passkey-names' "$work/names.yaml")" = 2 ]
}
check "AAGUID names from a ConfigMap, without metadata, in the pods and the config check" aaguid_names
check "refuses a metadata BLOB without its root" refuses "metadata.rootConfigMap" "$helm" template t assertd $ack --set 'metadata.volume.emptyDir.medium=Memory'
tracing_otlp() {
  grep -q 'otlp_endpoint = "http://otel-agent.observability:4317"' "$work/ha.yaml" && grep -q 'sample_ratio = 0.05' "$work/ha.yaml" &&
    ! grep -q '\[tracing\]' "$work/default.yaml"
}
check "traces over OTLP to a collector (HA; off by default)" tracing_otlp
adoption_values() {
  "$helm" template t assertd $ack --set adoption.gaugesIntervalSeconds=0 --set adoption.reportOnlyLogPerSecond=5 > "$work/adoption.yaml" &&
    config_of "$work/adoption.yaml" > "$work/adoption.toml" && config_of "$work/default.yaml" > "$work/adoption-default.toml" &&
    grep -qx 'gauges_interval_seconds = 0' "$work/adoption.toml" && grep -qx 'report_only_log_per_second = 5' "$work/adoption.toml" &&
    grep -qx 'gauges_interval_seconds = 300' "$work/adoption-default.toml" &&
    refuses "gaugesIntervalSeconds" "$helm" template t assertd $ack --set adoption.gaugesIntervalSeconds=-1
}
check "adoption gauges' interval and the report-only log rate (values)" adoption_values
long_names() {
  # Helm's longest release name (53 characters): every Service and Job name
  # (DNS labels, the job-name label) within 63, the rest valid.
  local release=a-release-name-of-fifty-three-characters-for-the-char
  [ "${#release}" = 53 ] &&
    "$helm" template "$release" assertd $ack -f assertd/ci/ha-values.yaml --set store.postgres.migrations=hook > "$work/long.yaml" &&
    python3 - "$work/long.yaml" <<'PY' &&
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = {"Service", "Job", "Deployment", "Pod", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
names = [(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in kinds]
assert any(k == "Job" for k, _ in names) and sum(k == "Service" for k, _ in names) >= 2, names
long = [(k, n, len(n)) for k, n in names if len(n) > 63]
assert not long, long
PY
    python3 -m kubernetes_validate --strict --quiet "$work/long.yaml"
}
check "a 53-character release name: Services and Jobs within 63 characters" long_names
check "refuses an https OTLP endpoint (schema)" refuses "otlpEndpoint" "$helm" template t assertd $ack --set tracing.otlpEndpoint=https://collector:4317
config_of "$work/default.yaml" > "$work/default.toml"
# The HA config reads its challenge keys from files: stand them in.
mkdir -p "$work/challenges"
head -c 32 /dev/urandom | base64 > "$work/challenges/k2026-12"
head -c 32 /dev/urandom | base64 > "$work/challenges/k2026-11"
config_of "$work/ha.yaml" | sed "s|/etc/assertd/challenges/|$work/challenges/|g" > "$work/ha.toml"
check "rendered config is valid (default)" env ASSERTD_TOKEN_SHA256_GATEWAY="$(printf %064d 1)" ASSERTD_TOKEN_SHA256_ADMIN="$(printf %064d 2)" "$assertd" config check "$work/default.toml"
check "the rendered default config refuses to start without its token hashes" refuses "ASSERTD_TOKEN_SHA256_GATEWAY is not set" "$assertd" config check "$work/default.toml"
check "rendered config is valid (HA)" env ASSERTD_DATABASE_URL=postgres://x@127.0.0.1/x "$assertd" config check "$work/ha.toml"
"$helm" template t assertd $ack -f assertd/ci/ha-values.yaml --set store.postgres.tls.mode=require --set store.postgres.tls.caSecret= > "$work/unchecked.yaml"
config_of "$work/unchecked.yaml" > "$work/unchecked.toml"
check "an unchecked PostgreSQL beyond loopback is refused by the rendered config" refuses "insecure_allow_unverified_postgres" env ASSERTD_DATABASE_URL=postgres://x@db.internal/x "$assertd" config check "$work/unchecked.toml"
check "refuses SQLite with 2 replicas" refuses "supports one replica" "$helm" template t assertd $ack --set replicaCount=2
check "refuses more PostgreSQL connections than the budget" refuses "over store.postgres.connectionBudget" "$helm" template t assertd $ack -f assertd/ci/ha-values.yaml --set store.postgres.poolSize=16
check "refuses PostgreSQL without a secret" refuses "existingSecret" "$helm" template t assertd $ack --set store.backend=postgres
check "refuses TLS without a secret" refuses "tls.existingSecret" "$helm" template t assertd $ack --set tls.enabled=true
check "refuses insecure mode without acknowledgement" refuses "auth.insecureAcknowledged" "$helm" template t assertd $ack --set auth.mode=insecure
check "refuses mtls mode without client certificates" refuses "tls.clientAuth=true" "$helm" template t assertd $ack --set auth.mode=mtls
printf 'auth:\n  clients:\n    - name: x\n      relyingParties: ["*"]\n      rpcs: ["verify"]\n' > "$work/nocert.yaml"
check "refuses mtls clients without certificate names" refuses "needs certificateNames" "$helm" template t assertd $ack -f assertd/ci/ha-values.yaml -f "$work/nocert.yaml"
check "schema refuses an unknown auth mode" refuses "auth.mode" "$helm" template t assertd $ack --set auth.mode=open
check "schema refuses an unknown backend" refuses "store.backend" "$helm" template t assertd $ack --set store.backend=mysql
check "schema refuses an unknown value" refuses "additional properties" "$helm" template t assertd $ack --set nope=1
check "schema refuses a bad port" refuses "ports.grpc" "$helm" template t assertd $ack --set ports.grpc=70000

echo "chart: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
