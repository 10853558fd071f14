"""Ray runtime: start or join a cluster, and named groups of actors of one role.

Failures surface as `ActorFailure` naming the actor and the call, never as a silent hang:
every blocking wait has a timeout.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

log = logging.getLogger(__name__)


class ActorFailure(RuntimeError):
    """An actor died, raised, or did not answer in time; the message names it and the call."""


# Set by init_ray: the address of the cluster this process joined (None: it started a local Ray).
_JOINED: str | None = None


def code_runtime_env(excludes: Sequence[str] | None = None, pythonpath: str | None = None) -> dict[str, Any]:
    """Ray `runtime_env` that ships this rlsys checkout to every node of a cluster.

    From a source checkout (pyproject.toml beside the package) the whole repository is the job's
    `working_dir` (so `rewards`, `hints` and test plug-ins come along); Ray makes it each worker's
    cwd and puts it first on sys.path. An installed rlsys ships as `py_modules`. `pythonpath`
    entries inside the repository become paths relative to the shipped copy; entries outside
    it stay as they are and must exist on every node. `excludes`: gitignore-style patterns left out
    (default: `ray.code_excludes`).
    """
    import rlsys

    if excludes is None:
        from rlsys.config.schema import RayConfig

        excludes = RayConfig().code_excludes
    package = Path(rlsys.__file__).resolve().parent
    root = package.parent
    env: dict[str, Any]
    if (root / "pyproject.toml").is_file():
        env = {"working_dir": str(root), "excludes": list(excludes)}
    else:
        env = {"py_modules": [str(package)]}
    entries = []
    for entry in (pythonpath or "").split(os.pathsep):
        if not entry:
            continue
        path = Path(entry).resolve()
        if "working_dir" in env and (path == root or root in path.parents):
            # Relative to the worker's cwd, which is the shipped copy of the repository.
            entries.append(str(path.relative_to(root)) or ".")
        else:
            log.warning("PYTHONPATH entry %s is not shipped to the cluster: it must exist on every node", entry)
            entries.append(entry)
    if entries:
        env["env_vars"] = {"PYTHONPATH": os.pathsep.join(entries)}
    return env


def init_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    include_dashboard: bool = False,
    namespace: str = "rlsys",
    object_store_memory: int | None = None,
    env_vars: dict[str, str] | None = None,
    runtime_env: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Start a local Ray (dashboard off unless asked), or join `address` ("auto" or host:port).

    Joining only connects this process as a driver: rlsys never starts, stops or changes a cluster
    it was given (`ray.shutdown()` then only disconnects). `runtime_env` (e.g. `code_runtime_env()`)
    is the job's; `env_vars` are added to it.

    Ray 2.60 resolves a loopback node address to the machine's own IP and its gRPC servers
    listen on all interfaces; nothing here can narrow that, so run on a trusted network.

    Returns the cluster's total resources. Idempotent within a process.
    """
    global _JOINED
    if not ray.is_initialized():
        job_env = dict(runtime_env or {})
        if env_vars:
            job_env["env_vars"] = {**job_env.get("env_vars", {}), **env_vars}
        if address:
            ray.init(address=address, namespace=namespace, runtime_env=job_env or None, log_to_driver=True)
            _JOINED = address
        else:
            ray.init(
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                include_dashboard=include_dashboard,
                namespace=namespace,
                object_store_memory=object_store_memory,
                runtime_env=job_env or None,
            )
    resources = ray.cluster_resources()
    log.info("ray resources: %s", {k: v for k, v in resources.items() if not k.startswith("node:")})
    return resources


def joined_cluster() -> str | None:
    """The address of the cluster this process joined (actors may run on other machines); None for a local Ray."""
    return _JOINED


def init_ray_from_config(ray_cfg: Any) -> dict[str, float]:
    pythonpath = os.environ.get("PYTHONPATH")
    ship = ray_cfg.ship_code if ray_cfg.ship_code is not None else bool(ray_cfg.address)
    if ship:
        # Code and plug-in modules reach other nodes through Ray, not a shared file system.
        runtime_env, env_vars = code_runtime_env(list(ray_cfg.code_excludes), pythonpath), None
    else:
        # Plug-in modules outside the package must be importable in every worker.
        runtime_env, env_vars = None, {"PYTHONPATH": pythonpath} if pythonpath else None
    return init_ray(
        address=ray_cfg.address,
        num_cpus=ray_cfg.num_cpus,
        num_gpus=ray_cfg.num_gpus,
        include_dashboard=ray_cfg.include_dashboard,
        namespace=ray_cfg.namespace,
        object_store_memory=ray_cfg.object_store_memory,
        env_vars=env_vars,
        runtime_env=runtime_env,
    )


def get(refs: Any, *, timeout: float | None, what: str) -> Any:
    """`ray.get` that turns death, errors and timeouts into ActorFailure naming `what`."""
    try:
        return ray.get(refs, timeout=timeout)
    except GetTimeoutError as exc:
        raise ActorFailure(f"{what}: no answer within {timeout} s") from exc
    except RayActorError as exc:
        raise ActorFailure(f"{what}: actor died ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from exc
    except RayTaskError as exc:
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        raise ActorFailure(f"{what}: raised {cause.__class__.__name__}: {cause}") from exc


def make_placement_group(bundles: list[dict[str, float]], strategy: str = "PACK", timeout: float = 60.0) -> PlacementGroup:
    """Reserve resources up front (e.g. one GPU bundle per rank for colocated roles)."""
    pg = placement_group(bundles, strategy=strategy)
    try:
        ray.get(pg.ready(), timeout=timeout)
    except GetTimeoutError as exc:
        remove_placement_group(pg)
        raise ActorFailure(
            f"placement group {bundles} ({strategy}) not satisfiable within {timeout} s; "
            f"cluster has {ray.cluster_resources()}"
        ) from exc
    return pg


@dataclass
class ActorResources:
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    env_vars: dict[str, str] = field(default_factory=dict)
    placement_group: PlacementGroup | None = None
    # Bundle index per actor rank when a placement group is used.
    bundle_indices: Sequence[int] | None = None


class ActorGroup:
    """N actors of one role, named `<name>-<rank>`, created and shut down together."""

    def __init__(
        self,
        actor_cls: type,
        num_actors: int,
        *,
        name: str,
        resources: ActorResources | None = None,
        init_kwargs: Callable[[int], dict[str, Any]] | dict[str, Any] | None = None,
        timeout: float = 600.0,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self.resources = resources or ActorResources()
        self._remote_cls = actor_cls if hasattr(actor_cls, "remote") else ray.remote(actor_cls)
        self._init_kwargs = init_kwargs
        self.actors: list[Any] = []
        for _ in range(num_actors):
            self.add_actor()

    def _kwargs_for(self, rank: int) -> dict[str, Any]:
        if callable(self._init_kwargs):
            return self._init_kwargs(rank)
        return dict(self._init_kwargs or {})

    def add_actor(self) -> Any:
        """Create one more actor (rank = current size) and return its handle."""
        rank = len(self.actors)
        res = self.resources
        options: dict[str, Any] = {
            "name": f"{self.name}-{rank}-{os.getpid()}-{id(self):x}",
            "num_cpus": res.num_cpus,
            "num_gpus": res.num_gpus,
            "max_concurrency": 4,
        }
        if res.env_vars:
            options["runtime_env"] = {"env_vars": dict(res.env_vars)}
        if res.placement_group is not None:
            index = res.bundle_indices[rank] if res.bundle_indices is not None else rank
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=res.placement_group, placement_group_bundle_index=index
            )
        actor = self._remote_cls.options(**options).remote(**self._kwargs_for(rank))
        self.actors.append(actor)
        return actor

    def __len__(self) -> int:
        return len(self.actors)

    def call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> list[Any]:
        """Call `method` on every actor with the same arguments; wait for all."""
        refs = [getattr(actor, method).remote(*args, **kwargs) for actor in self.actors]
        return self.wait(refs, method, timeout)

    def call_each(self, method: str, per_actor_args: Sequence[tuple], timeout: float | None = None) -> list[Any]:
        """Call `method` on actor i with `per_actor_args[i]`; wait for all."""
        if len(per_actor_args) != len(self.actors):
            raise ValueError(f"{self.name}.{method}: {len(per_actor_args)} argument sets for {len(self.actors)} actors")
        refs = [getattr(actor, method).remote(*args) for actor, args in zip(self.actors, per_actor_args)]
        return self.wait(refs, method, timeout)

    def wait(self, refs: list[Any], method: str, timeout: float | None = None) -> list[Any]:
        """Collect results in rank order under one shared deadline."""
        deadline = time.monotonic() + (timeout or self.timeout)
        results = []
        for rank, ref in enumerate(refs):
            remaining = max(0.0, deadline - time.monotonic())
            results.append(get(ref, timeout=remaining, what=f"{self.name}[{rank}].{method}"))
        return results

    def shutdown(self) -> None:
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception as exc:  # already dead actors are fine to skip
                log.debug("kill %s: %s", self.name, exc)
        self.actors = []
