"""A stand-in for RolloutWorker in pool tests: same protocol, no vLLM, misbehaves on request.

Kept in its own module with light imports: every actor process imports it on start.
"""

from __future__ import annotations

import asyncio
import os

from rlsys.rollout.types import GroupRequest, GroupResult, Sample


class StandIn:
    def __init__(self, model_path: str, name: str, fail_init: bool = False, policy_version: int = 0) -> None:
        if fail_init:
            raise RuntimeError("cannot load model")
        self.name = name
        self.version = policy_version
        self.loaded: list[int] = []

    async def generate_group(self, req: GroupRequest) -> GroupResult:
        meta = req.meta
        if any(self.name.startswith(p) for p in meta.get("hang_on", [])):
            await asyncio.sleep(meta.get("hang_s", 60))
        if meta.get("die"):
            os._exit(1)
        if meta.get("raise"):
            raise RuntimeError("engine step failed")
        await asyncio.sleep(meta.get("work_s", 0.01))
        samples = [Sample([1, 2], "ab", [-0.1, -0.2], "length") for _ in range(req.n)]
        return GroupResult(req.request_id, [7], samples, self.version, self.name, None, req.meta)

    async def generate_groups(self, reqs: list[GroupRequest]) -> list[GroupResult]:
        return list(await asyncio.gather(*(self.generate_group(r) for r in reqs)))

    async def stats(self) -> dict:
        return {"pid": float(os.getpid())}

    async def sync_from_object_store(self, refs: list, version: int) -> float:
        for ref in refs:
            await ref
        self.version = version
        self.loaded.append(version)
        return 0.001

    async def ping(self) -> str:
        return self.name
