"""Elastic rollout benchmark (#26): RL step time and rollout tokens/s with 1, 2 and 3 rollout actors on this
machine and with one actor per node on a real two-node Ray cluster; the time from a node joining to its first
group served, and from a node's death to the groups its actor held completing elsewhere.

    .venv/bin/python scripts/bench_elastic.py --steps 6            # everything, one round
    .venv/bin/python scripts/bench_elastic.py --parts local --rounds 2

`local` runs the main job (`+exp=gspo_hints`, from the cached `sft_more` model, same seed, evaluation off) with
`rollout.num_actors=N`; `cluster` runs it with `ray=cluster` on two `ray start` nodes on loopback
(tests/runtime/ray_cluster.py), each offering one `rollout_slot`, and `+rollout.resources={rollout_slot: 1}`, so one
actor runs per node. RL step time is the median over steps 2.. (step 1 includes the first weight sync and warm-up).
`events` drives a RolloutPool on the cluster directly, with a steady backlog: the second node joins mid-way (the
autoscaler sees the room and starts an actor there), then is killed while its actor holds groups; times are this
process's wall clock around the pool's own records (the actor each result names, the groups each actor holds).
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from statistics import mean, median
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "runtime"))
from ray_cluster import TwoNodeCluster  # noqa: E402  (test helper: a real two-node cluster on loopback)

COMMON = ["stages.rl.rl.eval_every=0", "stages.rl.rl.eval_before=false", "stages.rl.rl.save_every=0",
          "rollout.pool.start_timeout_s=600", "rollout.pool.request_timeout_s=600"]


class SlotCluster(TwoNodeCluster):
    """The two-node test cluster with a `rollout_slot` on each node: one rollout actor per node; the second node
    starts only when asked (`start_node`)."""

    def __init__(self, head_cpus: int, join: bool) -> None:
        self._join = join
        super().__init__(head_cpus=head_cpus, node_cpus=1)

    def _start(self, name: str, args: list[str], cpus: int, resources: dict[str, float]) -> Any:
        return super()._start(name, args, cpus, {**resources, "rollout_slot": 1.0})

    def start_node(self) -> Any:
        if not self._join:
            self._join = True  # the constructor's call: the node joins later
            return None
        return super().start_node()


def run_rl(name: str, args: argparse.Namespace, extra: list[str], env: dict[str, str] | None = None) -> Path:
    run_dir = REPO / "runs" / "bench_elastic" / f"{name}-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    cmd = [sys.executable, "-m", "rlsys.run", "+exp=gspo_hints", f"hydra.run.dir={run_dir}",
           f"stages.rl.rl.steps={args.steps}", f"stages.rl.seed={args.seed}", *COMMON, *extra, *args.extra]
    print("$", " ".join(cmd), flush=True)
    with (REPO / "runs" / "bench_elastic" / f"{name}.log").open("w") as log:
        subprocess.run(cmd, cwd=REPO, check=True, env=env, stdout=log, stderr=subprocess.STDOUT)
    return run_dir


def summarize(run_dir: Path) -> dict[str, float]:
    recs = [json.loads(line) for line in (run_dir / "stages" / "rl" / "metrics.jsonl").read_text().splitlines()
            if line.strip()]
    steps = [r for r in recs if "time/step_s" in r]
    later = steps[1:] or steps
    # pool/tokens_per_s covers the whole step (training included): tokens = rate x window (about the step).
    tokens = sum(r.get("pool/tokens_per_s", 0.0) * r["time/step_s"] for r in later)
    return {"steps": len(steps), "step_s": median(r["time/step_s"] for r in later),
            "steps_2on_s": sum(r["time/step_s"] for r in later),
            "rollout_s": median(r.get("time/rollout_s", 0.0) for r in later),
            "train_s": median(r.get("time/train_s", 0.0) for r in later),
            "tokens_per_s": mean(r.get("pool/tokens_per_s", 0.0) for r in later),
            "tokens_per_collect_s": tokens / max(sum(r.get("time/rollout_s", 0.0) for r in later), 1e-9),
            "groups": sum(r.get("pool/delivered", 0.0) for r in later),
            "actors": mean(r.get("pool/actors", 0.0) for r in later),
            "busy_share": mean(r.get("pool/busy_share", 0.0) for r in later),
            "lost": sum(r.get("pool/failed_groups", 0.0) for r in steps)}


def local_variant(n: int) -> list[str]:
    # The same logical CPUs for every variant (learner 1 + up to 3 actors + reward workers): Ray books more than
    # the machine's 2 cores, the actors and the learner share them.
    return [f"rollout.num_actors={n}", f"rollout.pool.max_actors={max(n, 1)}", "ray.num_cpus=6"]


def cluster_rl(args: argparse.Namespace) -> dict[str, float]:
    cluster = SlotCluster(head_cpus=5, join=True)
    try:
        extra = ["ray=cluster", f"ray.address={cluster.address}", "+rollout.resources={rollout_slot: 1}",
                 "rollout.num_actors=2", "rollout.pool.max_actors=2"]
        return summarize(run_rl("cluster2", args, extra, env=cluster.env()))
    finally:
        cluster.stop()


# ---------------------------------------------------------------- join and loss, on a pool driven directly
def events(args: argparse.Namespace) -> dict[str, float]:
    cluster = SlotCluster(head_cpus=4, join=False)
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.update(cluster.auth_env)
    import ray

    from rlsys.rollout.model_ship import pack_model_dir
    from rlsys.rollout.pool import PoolPolicy, RolloutPool
    from rlsys.rollout.types import GroupRequest
    from rlsys.rollout.worker import IN_PROCESS_ENV
    from rlsys.runtime.ray_utils import ActorResources, code_runtime_env, init_ray

    model = args.model or str(max((REPO / "artifacts" / "stages" / "sft_more").glob("*/model"), key=os.path.getmtime))
    marks: dict[str, float] = {}
    try:
        init_ray(address=cluster.address, runtime_env=code_runtime_env())
        engine = dict(dtype="float32", max_model_len=512, kv_cache_bytes=64 << 20, enforce_eager=True,
                      in_process=True, seed=0)
        # The built-in backlog policy: 2 actors while more than one group per actor is outstanding, when they fit.
        pool = RolloutPool(pack_model_dir(model), worker_kwargs=engine, custom_resources={"rollout_slot": 1.0},
                           resources=ActorResources(num_cpus=1.0, env_vars=dict(IN_PROCESS_ENV)), num_actors=1,
                           auto_scale=True, policy=PoolPolicy(min_actors=1, max_actors=2, autoscale=True,
                                                              target_backlog=2, scale_down_delay_s=600,
                                                              request_timeout_s=600, start_timeout_s=600))
        first = {a["name"] for a in pool.actors()}
        served: list[tuple[float, str, str]] = []  # (wall time, actor, request id) per result
        stop = threading.Event()
        count = iter(range(1 << 30))

        def feed() -> None:
            # Keep about 6 groups outstanding (3 per actor when there are two): a steady backlog.
            while not stop.is_set():
                want = 6 - pool.pending()
                if want > 0:
                    pool.submit([GroupRequest(f"g{next(count)}", prompt_token_ids=list(range(5, 37)), n=8,
                                              max_tokens=args.max_tokens, seed=0) for _ in range(want)])
                for res in pool.iter_results(timeout=600):
                    assert res.error is None, res.error
                    served.append((time.time(), res.actor, res.request_id))
                    if stop.is_set() or pool.pending() < 3:
                        break

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        time.sleep(args.warm_s)  # the head's actor alone, serving
        marks["join_started"] = time.time()
        node = cluster.start_node()
        # Joined: the node is in the GCS's table, alive (the `ray start` returned and registered it).
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            time.sleep(0.05)
        marks["joined"] = time.time()
        new = wait_for(lambda: next((a["name"] for a in pool.actors() if a["name"] not in first), None), 600)
        marks["scaled_up"] = time.time()
        wait_for(lambda: any(a["name"] == new and a["state"] == "ready" for a in pool.actors()), 600)
        marks["new_ready"] = time.time()
        wait_for(lambda: any(actor == new for _, actor, _ in served), 600)
        marks["new_first_served"] = next(t for t, actor, _ in served if actor == new)
        # Lose the node while its actor holds groups: those groups must complete on the head's actor.
        held = wait_for(lambda: set(pool._slots[new].outstanding) if new in pool._slots  # noqa: SLF001
                        and pool._slots[new].outstanding else None, 600)  # noqa: SLF001
        marks["killed"] = time.time()
        node.kill()
        wait_for(lambda: pool.failure_counts().get("pool/actor_deaths", 0.0) >= 1, 600, 0.02)
        marks["death_seen"] = time.time()
        done = wait_for(lambda: {r: (t, a) for t, a, r in served if r in held} if held <= {r for _, _, r in served}
                        else None, 600)
        marks["held_done"] = max(t for t, _ in done.values())
        assert all(a != new for _, a in done.values()), done
        stop.set()
        feeder.join(timeout=600)
        pool.shutdown()
    finally:
        cluster.stop()
    return {"join_to_scale_s": marks["scaled_up"] - marks["joined"],
            "join_to_ready_s": marks["new_ready"] - marks["joined"],
            "join_to_first_served_s": marks["new_first_served"] - marks["joined"],
            "groups_held_at_kill": float(len(held)),
            "kill_to_death_seen_s": marks["death_seen"] - marks["killed"],
            "kill_to_held_done_s": marks["held_done"] - marks["killed"]}


def wait_for(check: Any, timeout: float, every_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s")
        time.sleep(every_s)
    return got


def fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def table(rows: dict[str, list[dict[str, float]]]) -> str:
    keys = list(next(iter(rows.values()))[0])
    lines = [f"| variant | {' | '.join(keys)} |", "|---|" + "---|" * len(keys)]
    for name, runs in rows.items():
        lines += [f"| {name} | " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in runs]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["local", "cluster", "events"],
                        choices=["local", "cluster", "events"])
    parser.add_argument("--actors", nargs="+", type=int, default=[1, 2, 3], help="local variants")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=1, help="local variants alternate within each round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="", help="events: model dir (default: the newest cached sft_more)")
    parser.add_argument("--max-tokens", type=int, default=192, help="events: tokens per sample")
    parser.add_argument("--warm-s", type=float, default=20.0, help="events: seconds before the node joins")
    parser.add_argument("--summarize", nargs="+", default=[], metavar="RUN_DIR", help="only tabulate finished runs")
    parser.add_argument("extra", nargs="*", help="overrides for every RL run (after --)")
    args = parser.parse_args()
    if args.summarize:
        print(table({Path(d).name: [summarize(Path(d))] for d in args.summarize}))
        return
    (REPO / "runs" / "bench_elastic").mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, float]]] = {}
    if "local" in args.parts:
        for _ in range(args.rounds):
            for n in args.actors:
                rows.setdefault(f"local, {n} actor(s)", []).append(summarize(run_rl(f"local{n}", args,
                                                                                    local_variant(n))))
    if "cluster" in args.parts:
        rows["2 nodes, 1 actor each"] = [cluster_rl(args)]
    if rows:
        print("\n" + table(rows), flush=True)
    if "events" in args.parts:
        got = events(args)
        print("\n| " + " | ".join(got) + " |\n|" + "---|" * len(got) + "\n| "
              + " | ".join(fmt(v) for v in got.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
