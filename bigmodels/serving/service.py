"""Run the model service: start it, deploy and undeploy model sources, and read
what it is doing -- from the app, the CLI, tests and benchmarks alike.

The service lives on this server's Ray cluster (``bigmodels.cluster.runtime``):
Serve's HTTP proxy on ``127.0.0.1:<port>`` (loopback; the reverse proxy beside
the app exposes ``/v1/``), the gateway at ``/``, and one Serve application per
deployed model source, named after its model id. Which sources are deployed,
with which settings, is recorded in the service store, so the gateway, the app
and the CLI agree without asking each other.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import ray
from ray import serve

from bigmodels.cluster import runtime
from bigmodels.models.checkpoints import checkpoint_digest
from bigmodels.models.shipped import load_metrics
from bigmodels.runs.sources import ModelSource
from bigmodels.runs.store import RunStore, StoreError
from bigmodels.serving.deployments import (
    GATEWAY_APP, GATEWAY_DEPLOYMENT, LOGGING, MODEL_DEPLOYMENT, Gateway, ModelServer,
)
from bigmodels.serving.errors import ServiceProblem
from bigmodels.serving.metrics import Summary, summarise
from bigmodels.serving.settings import (
    AUTOSCALE_TARGET_ONGOING, DEFAULT_PORT, DEPLOY_TIMEOUT_S, ENV_SERVE_PORT, HOST, REPLICA_CPUS, REPLICA_GPUS,
    DeploySettings,
)
from bigmodels.serving.store import Deployment, ServiceStore, app_name
from bigmodels.serving.outside_loop import call_outside_loop

SERVE_NAMESPACE = "serve"  # where Serve keeps its controller and replica actors


class ServiceError(ServiceProblem, RuntimeError):
    """The service could not do what was asked; ``reason`` and ``values`` say why, for a person."""


@dataclass(frozen=True)
class ModelStatus:
    deployment: Deployment
    status: str  # Serve's application status: DEPLOYING, RUNNING, UNHEALTHY, ... or MISSING
    replicas: dict[str, int]  # replica state -> count
    message: str

    @property
    def running_replicas(self) -> int:
        return self.replicas.get("RUNNING", 0)


def port_from_env() -> int:
    try:
        return int(os.environ.get(ENV_SERVE_PORT) or DEFAULT_PORT)
    except ValueError:
        return DEFAULT_PORT


def base_url(home=None) -> str | None:
    """The service's URL when it was started for this home (None before)."""
    return ServiceStore(home).value("url")


def model_id_for(source: ModelSource) -> str:
    """The id in the API's URLs: the architecture for shipped weights, the run id for a run."""
    return source.model_name if source.origin == "shipped" else source.run_id


def source_accuracy(source: ModelSource, home=None) -> float | None:
    """The measured test accuracy: metrics.json for shipped weights, the run's record for a run."""
    if source.origin == "shipped":
        return load_metrics().get(source.model_name, {}).get("accuracy")
    try:
        return RunStore(home).get(source.run_id).final_accuracy
    except (StoreError, KeyError, ValueError):
        return None


def start(home=None, port: int | None = None) -> str:
    """Serve's proxy and the gateway on this home's cluster (idempotent); the URL."""
    runtime.connect(home)
    store = ServiceStore(home)
    wanted = port or store.value("port") or port_from_env()
    try:
        serve.start(http_options={"host": HOST, "port": int(wanted)}, proxy_location="HeadOnly",
                    logging_config=LOGGING)
        if GATEWAY_APP not in serve.status().applications:  # a second start must not restart the gateway
            serve.run(Gateway.bind(str(Path(store.folder).parent)), name=GATEWAY_APP, route_prefix="/")
    except Exception as exc:  # Serve reports a taken port or a failed replica in many types
        raise ServiceError("start_failed", detail=str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from exc
    url = f"http://{HOST}:{int(wanted)}"
    store.set_value("port", int(wanted))
    store.set_value("url", url)
    return url


def direct_url(home=None, timeout_s: float = 10.0) -> str | None:
    """The gateway replica's own URL when Serve runs with direct ingress (its throughput-optimized
    modes, ``settings.SERVE_MODES``): what a load balancer in front of the replicas would send
    to, past Serve's proxy. None in Serve's standard mode. It changes when the gateway's replica
    is replaced, so the service's URL stays the proxy's."""
    from ray.serve.context import _get_global_client

    runtime.connect(home)
    try:
        controller = _get_global_client()._controller
        groups = ray.get(controller.get_target_groups.remote(app_name=GATEWAY_APP, from_proxy_manager=True),
                         timeout=timeout_s)
    except Exception:  # no Serve on the cluster
        return None
    for group in groups:
        for target in group.targets:
            if str(getattr(group.protocol, "value", group.protocol)) == "HTTP" and \
                    target.name.startswith(f"SERVE_REPLICA::{GATEWAY_APP}#"):
                return f"http://{target.ip}:{target.port}"
    return None


def running(home=None) -> bool:
    """Is the gateway up on this home's cluster (without starting anything)?"""
    if runtime.cluster_address(home, start=False) is None:
        return False
    runtime.connect(home)
    try:
        return GATEWAY_APP in serve.status().applications
    except Exception:  # no Serve controller on the cluster yet
        return False


def replica_resources(settings: DeploySettings) -> dict[str, float]:
    """What one replica reserves on the cluster (Ray's resource names)."""
    return {"CPU": REPLICA_CPUS, "GPU": REPLICA_GPUS if settings.device == "cuda" else 0}


def room_problem(settings: DeploySettings, free: dict[str, float]) -> tuple[str, dict] | None:
    """("no_room", values) when the replicas a deploy must start at once (all of them, or
    the first one when autoscaling) do not fit in what the cluster has free; else None."""
    replicas = 1 if settings.autoscale else settings.replicas
    for resource, each in replica_resources(settings).items():
        asked, have = each * replicas, max(0.0, free.get(resource, 0.0))
        if asked > 0 and asked > have + 1e-6:
            return "no_room", {"resource": resource, "asked": round(asked, 2), "free": round(have, 2),
                               "replicas": replicas}
    return None


def free_resources(model_id: str, home=None) -> dict[str, float]:
    """What the cluster has free for ``model_id``'s replicas: what no one holds, and what its
    own running replicas hold (a new deploy of the model replaces them)."""
    free = {k: float(v) for k, v in ray.available_resources().items()}
    for status in statuses(home):
        if status.deployment.model_id == model_id:
            for resource, each in replica_resources(status.deployment.settings).items():
                free[resource] = free.get(resource, 0.0) + each * sum(status.replicas.values())
    return free


def deploy(source: ModelSource, settings: DeploySettings = DeploySettings(), home=None,
           timeout_s: float = DEPLOY_TIMEOUT_S) -> Deployment:
    """Serve ``source`` (replacing its earlier deployment with the new settings); returns when
    its replicas are up. Refused at once, with the numbers, when they cannot fit on the
    cluster; rolled back (to the earlier deployment, or none) when they are not all up within
    ``timeout_s``. Recorded from the start, so the page shows it, deploying, with its Undeploy."""
    problems = settings.problems()
    if problems:
        reason, values = problems[0]
        raise ServiceError(reason, **values)
    if not source.checkpoint.is_file():
        raise ServiceError("no_checkpoint", path=str(source.checkpoint))
    runtime.connect(home)
    model_id = model_id_for(source)
    refused = room_problem(settings, free_resources(model_id, home))
    if refused is not None:
        raise ServiceError(refused[0], **refused[1])
    store = ServiceStore(home)
    earlier = next((d for d in store.deployments() if d.model_id == model_id), None)
    deployment = Deployment(model_id, source.id, source.model_name, source.origin, str(source.checkpoint),
                            checkpoint_digest(source.checkpoint), source_accuracy(source, home), settings, time.time())
    store.record_deployment(deployment)
    try:
        _run_app(deployment)
        _wait_running(deployment.app_name, timeout_s)
    except ServiceError:
        _roll_back(deployment, earlier, store)
        raise
    except Exception as exc:
        _roll_back(deployment, earlier, store)
        raise ServiceError("deploy_failed", detail=_first_line(exc)) from exc
    return deployment


def _run_app(deployment: Deployment) -> None:
    """Hand the deployment to Serve without waiting for its replicas (``_wait_running`` does)."""
    from ray.serve.api import _run  # serve.run without its unbounded wait for RUNNING

    settings = deployment.settings
    options = {"ray_actor_options": {"num_cpus": REPLICA_CPUS, "num_gpus": replica_resources(settings)["GPU"]},
               "user_config": {"max_batch_size": settings.max_batch_size, "batch_wait_ms": settings.batch_wait_ms}}
    if settings.autoscale:
        options["autoscaling_config"] = {"min_replicas": 1, "max_replicas": settings.replicas,
                                         "target_ongoing_requests": AUTOSCALE_TARGET_ONGOING,
                                         "upscale_delay_s": 2, "downscale_delay_s": 30}
    else:
        options["num_replicas"] = settings.replicas
    app = ModelServer.options(**options).bind(deployment.model_id, deployment.checkpoint, settings.device)
    _run(app, _blocking=False, name=deployment.app_name, route_prefix=None)


def _wait_running(name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        app = serve.status().applications.get(name)
        status = str(getattr(app.status, "value", app.status)) if app is not None else "MISSING"
        if status == "RUNNING":
            return
        if status in ("DEPLOY_FAILED", "MISSING", "DELETING"):  # a failed replica, or undeployed meanwhile
            raise ServiceError("deploy_failed", detail=(app.message if app is not None else "") or status)
        if time.monotonic() > deadline:
            raise ServiceError("deploy_timeout", seconds=f"{timeout_s:.0f}")
        time.sleep(0.5)


def _roll_back(deployment: Deployment, earlier: Deployment | None, store: ServiceStore) -> None:
    """A deploy that failed leaves what was there before: the earlier deployment, or none."""
    try:
        if earlier is not None:
            store.record_deployment(earlier)
            _run_app(earlier)
        else:
            store.forget_deployment(deployment.model_id)
            serve.delete(deployment.app_name)
    except Exception:  # the rollback is best effort; the store says what is left, the page can undeploy it
        pass


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def undeploy(model_id: str, home=None) -> bool:
    store = ServiceStore(home)
    known = {d.model_id for d in store.deployments()}
    if model_id not in known:
        return False
    runtime.connect(home)
    store.forget_deployment(model_id)  # first: the gateway stops routing to it within a second
    serve.delete(app_name(model_id))
    return True


def statuses(home=None) -> list[ModelStatus]:
    """Every recorded deployment with what Serve says of it."""
    deployments = ServiceStore(home).deployments()
    if not deployments:
        return []
    runtime.connect(home)
    try:
        apps = serve.status().applications
    except Exception:
        apps = {}
    out = []
    for d in deployments:
        app = apps.get(d.app_name)
        if app is None:
            out.append(ModelStatus(d, "MISSING", {}, ""))
            continue
        inner = app.deployments.get(MODEL_DEPLOYMENT)
        out.append(ModelStatus(d, str(getattr(app.status, "value", app.status)),
                               dict(inner.replica_states) if inner else {}, app.message or (inner.message if inner else "")))
    return out


def gateway():
    """A handle to the gateway for callers outside any event loop (the app's script threads,
    the CLI, tests): its router runs on Serve's own loop thread. Serve's throughput-optimized
    mode makes a handle route on the caller's running loop by default, and such a handle
    refuses to work on a plain thread."""
    handle = serve.get_app_handle(GATEWAY_APP)  # cached by Serve's client: initialised once
    if not handle.is_initialized:
        handle._init(_run_router_in_separate_loop=True)
    return handle


def records(home=None, since: float = 0.0, timeout_s: float = 10.0) -> list[dict]:
    """The gateway's request log since ``since`` (wall clock)."""
    runtime.connect(home)
    return call_outside_loop(lambda: gateway().records.remote(since).result(timeout_s=timeout_s))


def flush_usage(home=None, timeout_s: float = 10.0) -> None:
    runtime.connect(home)
    call_outside_loop(lambda: gateway().flush.remote().result(timeout_s=timeout_s))


def metrics(home=None, window_s: float = 60.0, model: str | None = None) -> Summary:
    now = time.time()
    return summarise(records(home, now - window_s), now, window_s, model)


def replica_actors(model_id: str) -> list[str]:
    """The Ray actor names of a model's replicas (to find one to kill in a fault test)."""
    prefix = f"SERVE_REPLICA::{app_name(model_id)}#{MODEL_DEPLOYMENT}#"
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == SERVE_NAMESPACE and a["name"].startswith(prefix)]


def kill_replica(actor_name: str) -> None:
    """Kill one replica the hard way (as a crash would); Serve starts a new one."""
    ray.kill(ray.get_actor(actor_name, namespace=SERVE_NAMESPACE), no_restart=True)


def shutdown(home=None) -> None:
    """Every Serve application of this cluster, the proxy and the controller."""
    runtime.connect(home)
    try:
        flush_usage(home)  # the gateway writes it as it stops too; this is the early, sure way
    except Exception:  # no gateway, or one that does not answer: nothing more to save here
        pass
    serve.shutdown()
    store = ServiceStore(home)
    for d in store.deployments():
        store.forget_deployment(d.model_id)


__all__ = ["GATEWAY_APP", "GATEWAY_DEPLOYMENT", "ModelStatus", "ServiceError", "base_url", "deploy", "direct_url",
           "flush_usage",
           "kill_replica", "metrics", "model_id_for", "records", "replica_actors", "running", "shutdown", "start",
           "statuses", "undeploy"]
