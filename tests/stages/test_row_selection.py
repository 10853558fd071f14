"""`stages.<name>.where`: keep the rows whose fields hold the listed values; a filter that matches nothing
or names a field no row has fails naming the key."""

import pytest
from hydra import compose, initialize_config_dir

from rlsys.config.store import register_configs
from rlsys.config.validate import ConfigError
from rlsys.run import CONF_DIR, normalize_overrides
from rlsys.stages.io import select_rows

ROWS = [{"id": "a", "tier": 1, "src": "x"}, {"id": "b", "tier": 3, "src": "x"}, {"id": "c", "tier": 3, "src": "y"}]


def test_rows_are_kept_by_every_field() -> None:
    assert [r["id"] for r in select_rows(ROWS, {"tier": [3]}, "k")] == ["b", "c"]
    assert [r["id"] for r in select_rows(ROWS, {"tier": [1, 3], "src": ["x"]}, "k")] == ["a", "b"]


def test_bad_filters_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"'stages\.rl\.where\.tier' = \[5\]: no row matches"):
        select_rows(ROWS, {"tier": [5]}, "stages.rl.where")
    with pytest.raises(ConfigError, match=r"'stages\.rl\.where\.level': no row has a field 'level'"):
        select_rows(ROWS, {"level": [1]}, "stages.rl.where")


def test_where_composes_from_the_command_line() -> None:
    # A new key in a config dict takes Hydra's "+" prefix.
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose(config_name="config", overrides=normalize_overrides(["+exp=gspo_hints", "+stages.rl.where.tier=[3]"]))
    assert [r["id"] for r in select_rows(ROWS, cfg.stages.rl.where, "stages.rl.where")] == ["b", "c"]
