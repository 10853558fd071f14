"""Video inputs: SlowFast frame planning (slowfast.py)."""

from rlsys.data.video.slowfast import (
    SlowFastConfig,
    SlowFastPlan,
    classify_frames,
    patch_similarity,
    plan_slowfast,
)

__all__ = ["SlowFastConfig", "SlowFastPlan", "classify_frames", "patch_similarity", "plan_slowfast"]
