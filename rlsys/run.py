"""Entry point: `python -m rlsys.run +exp=NAME [key=value ...]`.

Hydra composes conf/ against the structured schema (rlsys/config/schema.py), so unknown keys
and wrong types fail before anything starts. Each run writes to runs/<exp>/<time>/.
"""

from __future__ import annotations

import importlib
import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from rlsys.config.store import CONF_DIR, normalize_overrides, register_configs
from rlsys.config.validate import ConfigError, validate_config
from rlsys.runtime.artifacts import UnwritableDirError, check_writable_dir
from rlsys.runtime.rundir import write_run_metadata

# job name -> "module:function"; imported lazily so `--help` and config errors stay fast.
JOBS = {
    "smoke": "rlsys.jobs.smoke:run",
    "pipeline": "rlsys.stages.runner:run",
}

# job name -> "module:function(cfg)" that checks what that job will run before anything starts (the
# pipeline: every stage of the chain, rlsys/stages/validate.py); raises ConfigError naming the key.
CHECKS = {
    "pipeline": "rlsys.stages.validate:validate_chain",
}

log = logging.getLogger("rlsys")


def run_job(cfg: DictConfig) -> object:
    if cfg.job not in JOBS:
        raise SystemExit(f"config key 'job' = {cfg.job!r}: unknown job; known: {sorted(JOBS)}")
    module_name, fn_name = JOBS[cfg.job].split(":")
    try:
        return getattr(importlib.import_module(module_name), fn_name)(cfg)
    finally:
        import ray

        # A local cluster started by this job ends with it, also on errors and SIGTERM.
        if ray.is_initialized():
            ray.shutdown()


@hydra.main(config_path=CONF_DIR, config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    cfg.run_dir = HydraConfig.get().runtime.output_dir
    try:
        validate_config(cfg)
        if cfg.job in CHECKS:
            module_name, fn_name = CHECKS[cfg.job].split(":")
            getattr(importlib.import_module(module_name), fn_name)(cfg)
        # A read-only or full artifacts dir fails here, naming it, before anything is built or Ray starts.
        check_writable_dir(cfg.artifacts_dir, "artifacts_dir")
    except (ConfigError, UnwritableDirError) as exc:
        raise SystemExit(f"config error: {exc}") from None
    write_run_metadata(cfg.run_dir, OmegaConf.to_yaml(cfg, resolve=True), {"exp": cfg.exp_name, "job": cfg.job})
    log.info("run dir: %s", cfg.run_dir)
    run_job(cfg)


register_configs()

if __name__ == "__main__":
    sys.argv = normalize_overrides(sys.argv)
    main()
