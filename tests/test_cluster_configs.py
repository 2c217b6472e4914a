"""The cluster configs users deploy with (no Ray started): the launcher YAMLs pass Ray's own validator and broken
copies fail it; every job command they (and README / docs/) show parses with that job's flags; the KubeRay manifests
agree with each other, with the pinned Ray, and with the Serve config of the search app."""

import copy
import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.serve.schema import ServeDeploySchema

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = [ROOT / "cluster.yaml", ROOT / "cluster" / "gcp.yaml"]
KUBERAY = sorted((ROOT / "cluster" / "kuberay").glob("*.yaml"))
IMAGE_TAG = f"{ray.__version__}-py311"
SHARED = "/mnt/genlab"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def validated(config: dict) -> dict:
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.mark.parametrize("path", LAUNCHER, ids=lambda p: p.name)
def test_launcher_config_passes_rays_validator(path):
    config = validated(load(path))
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    gpu_types = [t for t, spec in types.items() if spec["resources"].get("GPU", 0) >= 1]
    assert any(types[t]["resources"]["GPU"] == 1 for t in gpu_types), "a single-GPU worker type"
    assert any(types[t]["resources"]["GPU"] > 1 for t in gpu_types), "a multi-GPU worker type"
    assert all(types[t]["min_workers"] == 0 for t in gpu_types), "GPU nodes only on demand"
    assert config["idle_timeout_minutes"] > 0
    # the images are Ray's at our Ray version and Python; the project mounted and installed on every node
    assert config["docker"]["image"].startswith(f"rayproject/ray:{IMAGE_TAG}")
    assert config["docker"]["worker_image"] == f"rayproject/ray:{IMAGE_TAG}-gpu"
    assert config["file_mounts"] == {"~/genlab": "."}
    assert "pip install -q -e ~/genlab" in config["setup_commands"]
    assert {".venv", "runs"} <= set(config["rsync_exclude"])
    # the shared filesystem is mounted on the host and handed into the container at the same path
    assert any(f"-v {SHARED}:{SHARED}" == o for o in config["docker"]["run_options"])
    assert any(SHARED in c and "mount" in c for c in config["initialization_commands"])
    # the dashboard / job API stay on the head's loopback (reached over `ray dashboard`'s SSH tunnel)
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])


BREAKAGES = {
    "top-level key typo": lambda c: c.update(idle_timeout_minuts=c.pop("idle_timeout_minutes")),
    "node-type key typo": lambda c: next(iter(c["available_node_types"].values())).update(min_worker=1),
    "undeclared head type": lambda c: c.update(head_node_type="ray.head.default"),
    "min workers over max": lambda c: c.update(max_workers=0) or [
        t.update(min_workers=1) for t in c["available_node_types"].values()],
    "resources not integers": lambda c: next(iter(c["available_node_types"].values())).update(resources={"GPU": 0.5}),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
@pytest.mark.parametrize("path", LAUNCHER, ids=lambda p: p.name)
def test_a_broken_copy_fails_the_validator(path, breakage):
    config = load(path)
    BREAKAGES[breakage](config)
    with pytest.raises(Exception) as err:
        validated(config)
    assert type(err.value).__name__ in ("ValidationError", "ValueError"), err.value


def job_commands() -> list[tuple[str, str, list[str]]]:
    """(where, job script, argv) for every `python jobs/<x>.py ...` a cluster file shows or README / docs/*.md
    submit to a cluster (`--address`)."""
    found = []
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    sources = [(p, p.read_text()) for p in LAUNCHER + KUBERAY + docs]
    for path, text in sources:
        if path.suffix == ".yaml":  # the comments, and the YAML strings as the cluster sees them (folded joined)
            comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
            text = "\n".join(comments + [s for s in _strings(yaml.safe_load(text)) if "jobs/" in s])
        else:  # a shell command continued with a trailing backslash is one command
            text = re.sub(r"\\\n\s*", " ", text)
        for line in text.splitlines():
            if path.suffix == ".md" and "--address" not in line:
                continue  # the docs' other commands run on this machine's embedded Ray (tests/test_jobs.py)
            for match in re.finditer(r"python (jobs/\w+\.py)([^\n`|#]*)", line):
                found.append((path.name, match.group(1), shlex.split(match.group(2))))
    return found


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def parse_job_flags(script: str, argv: list[str]):
    source = (ROOT / script).read_text()
    target = re.search(r"\bcli\((\w+)\)", source).group(1)  # the job's `cli(Args)` (genlab.core.cli)
    spec = importlib.util.spec_from_file_location(f"job_{Path(script).stem}", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve a job's string annotations through sys.modules
    spec.loader.exec_module(module)
    from genlab.core.cli import cli

    return cli(getattr(module, target), argv)


def test_every_cluster_job_command_parses_with_the_jobs_flags():
    commands = job_commands()
    gpu = [(where, script, argv) for where, script, argv in commands if "--ray.use-gpu" in argv]
    assert {"cluster.yaml", "gcp.yaml", "rayjob-ddpm.yaml", "cluster.md"} <= {w for w, _, _ in gpu}, gpu
    for where, script, argv in commands:
        args = parse_job_flags(script, argv)  # tyro exits (SystemExit) on a flag the job does not take
        if "--ray.use-gpu" in argv:
            assert args.ray.use_gpu and args.ray.num_workers >= 1 and args.ray.cpus_per_worker >= 1, (where, argv)
            assert args.ray.storage.startswith(f"{SHARED}/"), f"{where}: runs must go to the shared filesystem"
            assert args.ray.max_failures >= 1, f"{where}: spot/preemptible nodes need worker restarts"


def test_gpu_commands_fit_the_worker_types_they_target():
    """cpus-per-worker must fit next to one GPU on some GPU node type, or the autoscaler cannot place the
    worker (Ray asks for {CPU: n, GPU: 1} per worker)."""
    for path in LAUNCHER:
        types = validated(load(path))["available_node_types"].values()
        for where, script, argv in job_commands():
            if where != path.name or "--ray.use-gpu" not in argv:
                continue
            ray_cfg = parse_job_flags(script, argv).ray
            fits = [t for t in types if t["resources"].get("GPU", 0) >= 1
                    and t["resources"]["CPU"] // t["resources"]["GPU"] >= ray_cfg.cpus_per_worker]
            assert fits, f"{where}: --ray.cpus-per-worker {ray_cfg.cpus_per_worker} fits no GPU node type"


def test_a_job_flag_that_does_not_exist_is_caught():
    with pytest.raises(SystemExit):
        parse_job_flags("jobs/ddpm.py", ["--ray.use-gpus"])


def pod_templates(manifest: dict) -> list[dict]:
    spec = manifest["spec"]
    cluster = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or spec
    return [cluster["headGroupSpec"]] + cluster["workerGroupSpecs"]


RAY_MANIFESTS = [p for p in KUBERAY if "apiVersion: ray.io/v1" in p.read_text()]


@pytest.mark.parametrize("path", RAY_MANIFESTS, ids=lambda p: p.name)
def test_kuberay_job_api_is_no_open_door(path):
    """A head whose dashboard (the job API: whoever reaches it runs code) listens beyond loopback needs token
    auth, and the pods a NetworkPolicy that admits only the cluster's own pods and the operator to it."""
    manifest = load(path)
    spec = manifest["spec"]
    cluster = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or spec
    host = cluster["headGroupSpec"]["rayStartParams"].get("dashboard-host", "127.0.0.1")
    if host not in ("127.0.0.1", "localhost"):
        assert cluster.get("authOptions", {}).get("mode") == "token", f"{path.name}: dashboard on {host} without auth"
    for group in pod_templates(manifest):
        for container in group["template"]["spec"]["containers"]:
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            assert env.get("RAY_AUTH_MODE") != "disabled", f"{path.name}: auth switched off in {container['name']}"
    assert "RAY_AUTH_MODE=disabled" not in (ROOT / "cluster" / "Dockerfile").read_text()
    policy = load(ROOT / "cluster" / "kuberay" / "network-policy.yaml")
    assert policy["kind"] == "NetworkPolicy" and policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["podSelector"]["matchExpressions"] == [{"key": "ray.io/cluster", "operator": "Exists"}]
    dashboard_rules = [r for r in policy["spec"]["ingress"] if {"port": 8265, "protocol": "TCP"} in r.get("ports", [])]
    assert dashboard_rules and all(r.get("from") for r in dashboard_rules)  # never the dashboard to everyone
    assert all(r.get("from") or r.get("ports") for r in policy["spec"]["ingress"])  # no rule admits all on all ports


@pytest.mark.parametrize("path", RAY_MANIFESTS, ids=lambda p: p.name)
def test_kuberay_manifest_structure(path):
    manifest = load(path)
    assert manifest["apiVersion"] == "ray.io/v1"
    assert manifest["kind"] in ("RayCluster", "RayJob", "RayService")
    spec = manifest["spec"]
    cluster = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or spec
    assert cluster["rayVersion"] == ray.__version__
    claim = load(ROOT / "cluster" / "kuberay" / "storage.yaml")
    assert claim["kind"] == "PersistentVolumeClaim" and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for group in pod_templates(manifest):
        pod = group["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == "genlab:0.1.0"  # built by cluster/Dockerfile
        assert {"name": "genlab-shared", "mountPath": SHARED} in container["volumeMounts"]
        assert {"name": "genlab-shared", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}} in pod[
            "volumes"]
        gpus = int(group["rayStartParams"].get("num-gpus", 0))
        assert int(container["resources"]["limits"].get("nvidia.com/gpu", 0)) == gpus
        assert int(group["rayStartParams"]["num-cpus"]) <= int(container["resources"]["limits"]["cpu"])
        if "groupName" in group:
            assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    if manifest["kind"] == "RayJob":
        assert "jobs/ddpm.py" in spec["entrypoint"] and spec["shutdownAfterJobFinishes"] is True
    if manifest["kind"] in ("RayCluster", "RayJob"):
        assert any(int(g["rayStartParams"].get("num-gpus", 0)) for g in pod_templates(manifest)), "a GPU group"


@pytest.mark.parametrize("app_name", ["search", "generate"])
def test_rayservice_carries_the_apps_serve_config(app_name):
    service = load(ROOT / "cluster" / "kuberay" / f"rayservice-{app_name}.yaml")
    assert service["kind"] == "RayService" and service["metadata"]["name"] == f"genlab-{app_name}"
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(config)  # Ray's own schema of a Serve config
    (app,) = config["applications"]
    (local,) = load(ROOT / "jobs" / f"serve_{app_name}.yaml")["applications"]
    assert {k: app[k] for k in ("name", "route_prefix", "import_path", "args")} == {
        k: local[k] for k in ("name", "route_prefix", "import_path", "args")}
    assert [d["name"] for d in app["deployments"]] == [d["name"] for d in local["deployments"]]
    index_store = next(d for d in app["deployments"] if d["name"] == "IndexStore")
    assert index_store["num_replicas"] == 1  # the one writer of the index
    # every replica at its largest count fits the cluster at its largest
    cpus = sum(d["ray_actor_options"]["num_cpus"] * d.get("num_replicas", d.get("autoscaling_config", {}).get(
        "max_replicas", 1)) for d in app["deployments"])
    cluster = service["spec"]["rayClusterConfig"]
    capacity = int(cluster["headGroupSpec"]["rayStartParams"]["num-cpus"]) + sum(
        g["maxReplicas"] * int(g["rayStartParams"]["num-cpus"]) for g in cluster["workerGroupSpecs"])
    assert cpus <= capacity, (cpus, capacity)


def test_generate_serve_config_is_the_search_app_with_the_pipeline_stages():
    (search,) = load(ROOT / "jobs" / "serve_search.yaml")["applications"]
    config = load(ROOT / "jobs" / "serve_generate.yaml")
    ServeDeploySchema.model_validate(config)
    (app,) = config["applications"]
    assert app["import_path"] == search["import_path"] and app["args"]["pipeline"]
    names = [d["name"] for d in app["deployments"]]
    assert names == [d["name"] for d in search["deployments"]] + ["PriorStage", "ImageGenerator"]
    cpus = sum(d["ray_actor_options"]["num_cpus"] * d.get("num_replicas", d.get("autoscaling_config", {}).get(
        "max_replicas", 1)) for d in app["deployments"])
    assert cpus <= 2, cpus  # fits this 2-core machine at its largest


@pytest.mark.parametrize("path", ["jobs/serve_search.yaml", "jobs/serve_generate.yaml",
                                  "cluster/kuberay/rayservice-search.yaml", "cluster/kuberay/rayservice-generate.yaml"])
def test_every_serve_config_gives_the_index_replica_its_search_threads(path):
    """A config's ray_actor_options replace the decorator's whole dict (Serve's override_deployment_info): each
    committed config must repeat the index replica's environment, or its scan runs on one thread."""
    from genlab.serve.search_backends import SEARCH_ENV, IndexStore

    config = load(ROOT / path)
    if config.get("kind") == "RayService":
        config = yaml.safe_load(config["spec"]["serveConfigV2"])
    (app,) = config["applications"]
    index_store = next(d for d in app["deployments"] if d["name"] == "IndexStore")
    assert index_store["ray_actor_options"]["runtime_env"] == {"env_vars": SEARCH_ENV}
    assert IndexStore.ray_actor_options["runtime_env"] == {"env_vars": SEARCH_ENV}


def test_dockerfile_builds_on_rays_image_at_our_version():
    dockerfile = (ROOT / "cluster" / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{IMAGE_TAG}-gpu" in dockerfile
    assert "pip install --no-cache-dir -e /home/ray/genlab" in dockerfile
    assert f"ln -s {SHARED}/runs /home/ray/genlab/runs" in dockerfile
