"""When the Ray cluster gains a node, the autoscaling pool grows onto it and serves the backlog."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
import ray

from rlsys.rollout.pool import PoolPolicy, RolloutPool
from rlsys.rollout.types import GroupRequest
from rlsys.runtime.ray_utils import ActorResources

pytestmark = pytest.mark.slow

# Only the node started below offers this resource, so before it joins the pool has no room.
SLOT = "rollout_growth_test_slot"


def start_node() -> Any:
    """A second raylet on this machine joining the test cluster, as a new host would.

    Started the way Ray's own `cluster_utils` adds worker nodes: `ray start` would also write
    /tmp/ray/ray_current_cluster, which makes every later `ray.init()` on the machine try to join
    this short-lived cluster.
    """
    from ray._private.node import Node
    from ray._private.parameter import RayParams

    params = RayParams(
        gcs_address=ray.get_runtime_context().gcs_address, num_cpus=1, num_gpus=0, resources={SLOT: 1.0},
        object_store_memory=100 << 20, include_log_monitor=False, node_manager_port=0,
        min_worker_port=0, max_worker_port=0,
    )
    params.dashboard_agent_listen_port = None
    return Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)


def test_pool_grows_onto_a_node_that_joins(ray_session, tiny_model_dir, engine_kwargs):
    pool = RolloutPool(
        tiny_model_dir, worker_kwargs=engine_kwargs, num_actors=0, auto_scale=True,
        policy=PoolPolicy(min_actors=0, max_actors=2, target_backlog=4, request_timeout_s=120, scale_down_delay_s=600),
        resources=ActorResources(num_cpus=0.5), custom_resources={SLOT: 1.0}, name="grow",
    )
    node = None
    try:
        requests = [GroupRequest(f"grow-{i}", prompt_token_ids=[5, 6, 7 + i], n=2, max_tokens=16, seed=i) for i in range(8)]
        pool.submit(requests)
        # Backlog wants two actors, but no node can place one yet.
        assert pool.cluster_capacity() == 0
        assert pool.autoscale() == 0 and pool.size() == 0
        node = start_node()
        deadline = time.monotonic() + 60
        while ray.cluster_resources().get(SLOT, 0) < 1:
            assert time.monotonic() < deadline, "the new node did not register"
            time.sleep(0.2)
        new_node = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and SLOT in n["Resources"])

        got = list(pool.iter_results(timeout=180))
        assert Counter(r.request_id for r in got) == Counter(r.request_id for r in requests)
        assert all(r.ok for r in got), [r.error for r in got]
        # The node holds one slot: the pool grew to what fits, not to the policy's two.
        assert pool.size() == 1 and pool.metrics()["rollout_pool/scale_events"] >= 1
        handle = pool.actors()[0]["handle"]
        where = ray.get(handle.__ray_call__.remote(lambda _self: ray.get_runtime_context().get_node_id()), timeout=60)
        assert where == new_node
    finally:
        pool.shutdown()
        if node is not None:
            node.kill_all_processes(check_alive=False, allow_graceful=True, wait=True)
