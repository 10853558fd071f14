"""rlsys on a real two-node Ray cluster: `ray start --head` and `ray start --address=...` on this machine.

The second node runs with no rlsys on its path (cwd and TMPDIR in its own temp dir, no PYTHONPATH), so
code it runs must come through Ray's runtime_env, and the model a rollout actor starts from must come
through the object store: both are checked where they land (under that node's temp dir).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray_cluster import TwoNodeCluster
from rlsys_testing import BASE_STAGES, SHORT_EVAL, SMALL

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
pytestmark = pytest.mark.slow


# ---------------------------------------------------------------- pieces, on the test session's local Ray
def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_model_ships_through_the_object_store(ray_session, tiny_model_dir, tmp_path):
    from rlsys.rollout.model_ship import local_model_dir, materialize, pack_model_dir

    shipped = pack_model_dir(tiny_model_dir, chunk_bytes=100_000)  # several chunks per weight file
    assert max(len(refs) for refs in shipped.files.values()) > 1
    copy = Path(materialize(shipped, tmp_path / "cache"))
    assert copy.parent == tmp_path / "cache" and _digest(copy) == _digest(Path(tiny_model_dir))
    # A truncated copy (a writer killed mid-way) is replaced, not used.
    weights = next(p for p in copy.rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    assert _digest(Path(materialize(shipped, tmp_path / "cache"))) == _digest(Path(tiny_model_dir))
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [shipped.key]  # no staging dirs left
    assert local_model_dir(tiny_model_dir) == tiny_model_dir
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pack_model_dir(tmp_path / "missing")


def test_code_runtime_env_ships_the_checkout_without_outputs():
    from rlsys.runtime.ray_utils import code_runtime_env

    env = code_runtime_env(pythonpath=os.pathsep.join([str(TESTS), "/opt/elsewhere"]))
    assert env["working_dir"] == str(REPO)
    assert {".venv", ".git", "runs", "artifacts"} <= set(env["excludes"])
    # Inside the checkout: relative to the shipped copy (the workers' cwd); outside: left as it is.
    assert env["env_vars"]["PYTHONPATH"] == os.pathsep.join(["tests", "/opt/elsewhere"])


# ---------------------------------------------------------------- the two-node cluster
@pytest.fixture(scope="module")
def cluster():
    c = TwoNodeCluster(head_cpus=4, node_cpus=1)
    try:
        yield c
    finally:
        c.stop()
        assert not c.head.members() and not (c.node and c.node.members())


def _node_ids(cluster: TwoNodeCluster) -> dict[str, str]:
    """'head' / 'node' -> node id of the live nodes, by their labels."""
    out = {}
    for n in cluster.nodes():
        if n["alive"]:
            out["head" if "head_node" in n["resources"] else "node"] = n["id"]
    return out


PROBE = """
import json, os, sys
import ray, torch
from transformers import AutoModelForCausalLM
from rlsys.rollout.model_ship import pack_model_dir
from rlsys.rollout.pool import PoolPolicy, RolloutPool
from rlsys.rollout.types import GroupRequest
from rlsys.rollout.weight_sync import publish_version
from rlsys.rollout.worker import IN_PROCESS_ENV
from rlsys.runtime.ray_utils import ActorResources, code_runtime_env, init_ray

address, model = sys.argv[1], sys.argv[2]
init_ray(address=address, runtime_env=code_runtime_env())
engine = dict(dtype="float32", max_model_len=128, kv_cache_bytes=32 << 20, enforce_eager=True, in_process=True, seed=0)
pool = RolloutPool(pack_model_dir(model), worker_kwargs=engine, custom_resources={"rollout_node": 1.0},
                   resources=ActorResources(num_cpus=1.0, env_vars=dict(IN_PROCESS_ENV)), num_actors=1,
                   policy=PoolPolicy(request_timeout_s=300, start_timeout_s=300))
handle = pool.actors()[0]["handle"]
where = ray.get(handle.__ray_call__.remote(lambda self: dict(
    rlsys=__import__("rlsys").__file__, cwd=os.getcwd(), model=self.model_path,
    node=ray.get_runtime_context().get_node_id())), timeout=60)
request = [GroupRequest("q", prompt_token_ids=[5, 6, 7, 8], n=2, max_tokens=8, seed=3)]
before = pool.generate(request, timeout=300)[0]
# Version 1 through the object store: every weight halved, published in small buckets.
state = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).state_dict()
published = publish_version(((k, v * 0.5) for k, v in state.items()), bucket_bytes=200_000, version=1)
pool.sync_weights(published)
after = pool.generate([GroupRequest("q1", prompt_token_ids=[5, 6, 7, 8], n=2, max_tokens=8, seed=3)], timeout=300)[0]
pool.shutdown()
print(json.dumps(dict(where=where, buckets=len(published), versions=[before.policy_version, after.policy_version],
                      ok=[before.ok, after.ok], logprobs=[before.samples[0].logprobs, after.samples[0].logprobs],
                      driver_node=ray.get_runtime_context().get_node_id())))
"""


def test_rollout_actor_on_the_labelled_node_gets_code_and_weights_through_ray(cluster, tiny_model_dir):
    ids = _node_ids(cluster)
    got = cluster.python(PROBE.replace("sys.argv[1], sys.argv[2]", f"{cluster.address!r}, {tiny_model_dir!r}"))
    where, node_dir = got["where"], str(cluster.node.temp_dir)
    assert where["node"] == ids["node"] and got["driver_node"] == ids["head"]
    # The code the actor runs is Ray's copy of the checkout on that node, not /work/main.
    assert where["rlsys"].startswith(node_dir) and "runtime_resources/working_dir_files" in where["rlsys"]
    assert where["cwd"].startswith(node_dir)
    # The model it started from was written there from the object store, byte for byte.
    assert where["model"].startswith(os.path.join(node_dir, "rlsys-models"))
    assert _digest(Path(where["model"])) == _digest(Path(tiny_model_dir))
    # A later weight version came through the object store too, and changed what the engine computes.
    assert got["ok"] == [True, True] and got["versions"] == [0, 1] and got["buckets"] > 1
    assert got["logprobs"][0] != got["logprobs"][1]
    # The driver's exit only disconnected it: both nodes still run.
    assert set(_node_ids(cluster)) == {"head", "node"}


# ---------------------------------------------------------------- a real run
SMALL_RUN = [
    *SMALL,
    *BASE_STAGES,
    "rollout.group_size=4", "rollout.max_tokens=64", "hints.rollouts_per_level=4", "hints.max_level=3",
    "stages.rl.rl.batch_groups=4", "stages.rl.rl.eval_every=0", "stages.rl.rl.save_every=0", "stages.rl.lr=1e-3",
    *SHORT_EVAL, "reward.correct_threshold=0.5",
    "stages.rl.reward_fns=[{_target_: rl_test_rewards.even_length, weight: 1.0}]",
]


def _steps(metrics: Path) -> list[dict]:
    if not metrics.exists():
        return []
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("step", 0) > 0 and "train/loss" in r]


def test_gspo_hints_on_two_nodes_rollouts_on_the_labelled_node_then_node_lost_mid_run(cluster, tmp_path, seeded_artifacts):
    # One run checks both: the rollout actor is placed on the labelled node (model and code brought there by
    # Ray), then that node is lost while it generates. A later weight version reaching a remote actor through
    # the object store is test_rollout_actor_on_the_labelled_node_gets_code_and_weights_through_ray.
    node = cluster.start_node()
    ids = _node_ids(cluster)
    run = tmp_path / "run"
    env = cluster.env() | {"PYTHONPATH": str(TESTS)}  # the reward plug-in; shipped as part of the checkout
    steps = 4
    # rollout.model_transfer stays "auto": a run that joined a cluster ships the model through the object store.
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlsys.run", "+exp=gspo_hints", "ray=cluster", f"ray.address={cluster.address}",
         "+rollout.resources={rollout_node: 1}", "rollout.pool.start_timeout_s=300",
         "rollout.pool.request_timeout_s=300", f"artifacts_dir={tmp_path / 'artifacts'}", f"hydra.run.dir={run}",
         *SMALL_RUN, f"stages.rl.rl.steps={steps}",
         # Rollouts long enough (seconds) that the node is lost while it holds groups.
         "stages.rl.rl.batch_groups=16", "rollout.group_size=8"],
        cwd=REPO, env=env, stdout=(tmp_path / "run.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    metrics = run / "stages" / "rl" / "metrics.jsonl"
    head_models = cluster.head.temp_dir / "rlsys-models"
    head_before = set(head_models.glob("*/config.json"))
    try:
        deadline = time.monotonic() + 1500
        while not _steps(metrics):
            assert proc.poll() is None, (tmp_path / "run.log").read_text()[-5000:]
            assert time.monotonic() < deadline, "no RL step within the time limit"
            time.sleep(0.5)
        # The rollout actor runs on the labelled node, from a model copy the object store brought there,
        # with the code Ray shipped there.
        assert list((node.temp_dir / "rlsys-models").glob("*/config.json")), f"no model copy under {node.temp_dir}"
        assert any("working_dir_files" in str(p) for p in node.temp_dir.rglob("rlsys/__init__.py"))
        # Lose it while it generates, so groups are in flight on it.
        assert node.wait_busy("ray::RolloutWorker", timeout=120, window=0.1), "the rollout actor never got busy"
        lost_at = time.monotonic()
        print(f"node killed at {time.strftime('%H:%M:%S')}")
        node.kill()  # the node is lost mid-run: its raylet, agents and the rollout actor, nothing else
        proc.wait(timeout=1500)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    log = (tmp_path / "run.log").read_text()
    assert proc.returncode == 0, log[-6000:]
    rows = _steps(metrics)
    assert [r["step"] for r in rows] == list(range(1, steps + 1)), log[-3000:]
    assert rows[-1]["policy_version"] == steps
    # Nothing lost: no group failed in any step.
    assert sum(r.get("pool/failed_groups", 0.0) for r in rows) == 0
    deaths = sum(r.get("pool/actor_deaths", 0.0) for r in rows)
    head_copy = set(head_models.glob("*/config.json")) - head_before
    # The dead actor was replaced on the head, which got its own copy of the model from the object store.
    assert deaths >= 1 and sum(r.get("pool/actors_replaced", 0.0) for r in rows) >= 1 and head_copy
    # The groups it held were sent again (to its replacement) and delivered once: the steps above are complete.
    assert sum(r.get("pool/redispatched", 0.0) for r in rows) >= 1
    print(f"run finished {time.monotonic() - lost_at:.0f} s after the node was lost")
    # rlsys left the cluster as it was given (minus the node the test killed).
    assert _node_ids(cluster) == {"head": ids["head"]}
