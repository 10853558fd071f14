"""A named group of real Ray actors: creation, fan-out calls, clear failures, shutdown."""

from __future__ import annotations

import os
import time

import pytest
import ray

from rlsys.runtime.ray_utils import ActorFailure, ActorGroup, ActorResources

pytestmark = pytest.mark.slow


class Echo:
    def __init__(self, rank: int, tag: str) -> None:
        self.rank = rank
        self.tag = tag

    def whoami(self) -> tuple[int, str, int]:
        return self.rank, self.tag, os.getpid()

    def add(self, x: int) -> int:
        return self.rank + x

    def boom(self) -> None:
        raise ValueError("bad input row 3")

    def die(self) -> None:
        os._exit(1)

    def sleep(self, s: float) -> None:
        time.sleep(s)


def test_group_calls_failures_and_shutdown(ray_session):
    group = ActorGroup(
        Echo, 3, name="echo", resources=ActorResources(num_cpus=0.1),
        init_kwargs=lambda rank: {"rank": rank, "tag": f"t{rank}"}, timeout=60,
    )
    who = group.call("whoami")
    assert [w[:2] for w in who] == [(0, "t0"), (1, "t1"), (2, "t2")]
    assert len({w[2] for w in who}) == 3
    assert group.call_each("add", [(10,), (20,), (30,)]) == [10, 21, 32]

    with pytest.raises(ActorFailure, match=r"echo\[0\]\.boom: raised ValueError: bad input row 3"):
        group.call("boom")
    with pytest.raises(ActorFailure, match=r"no answer within"):
        group.call("sleep", 30, timeout=1.0)
    with pytest.raises(ActorFailure, match=r"echo\[0\]\.die: actor died"):
        group.call("die")

    actors = list(group.actors)
    group.shutdown()
    assert len(group) == 0
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actors[1].whoami.remote(), timeout=30)
