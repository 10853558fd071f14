"""An RL stage refuses rows that no reward entry scores (they would score 0 in every sample, silently)."""

from __future__ import annotations

import pytest

from rlsys.config.validate import ConfigError
from rlsys.reward.workers import check_reward_coverage

MATH = {"_target_": "rewards.math.math_reward", "weight": 1.0, "data_sources": ["rlsys/math", "rlsys/visual"]}


def _cfg(*fns: dict) -> dict:
    return {"fns": list(fns), "num_workers": 1, "timeout_s": 10.0, "on_error_score": 0.0}


def test_rows_of_a_source_without_reward_are_refused_naming_the_key() -> None:
    rows = [{"data_source": "rlsys/math"}] * 3 + [{"data_source": "rlsys/video"}] * 2
    with pytest.raises(ConfigError, match=r"config key 'stages.video_rl.reward_fns': no reward entry applies to "
                                          r"data_source 'rlsys/video' \(2 of the stage's 5 rows\)"):
        check_reward_coverage(_cfg(MATH), "stages.video_rl.reward_fns", rows)


def test_covered_sources_and_catch_all_entries_pass() -> None:
    rows = [{"data_source": "rlsys/math"}, {"data_source": "rlsys/visual"}]
    check_reward_coverage(_cfg(MATH), "reward.fns", rows)
    # An entry without data_sources applies to every row, a row without a data_source included.
    anything = {"_target_": "rewards.math.math_reward", "weight": 1.0}
    check_reward_coverage(_cfg(anything), "reward.fns", rows + [{"data_source": "mine"}, {}])


def test_the_shipped_default_covers_every_suite() -> None:
    from omegaconf import OmegaConf

    from rlsys.run import CONF_DIR

    shipped = OmegaConf.to_container(OmegaConf.load(f"{CONF_DIR}/reward/math.yaml"))
    rows = [{"data_source": s} for s in ("rlsys/math", "rlsys/visual", "rlsys/video")]
    check_reward_coverage(shipped, "reward.fns", rows)
