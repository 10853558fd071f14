"""Short-input accuracy of a model with its RoPE base scaled and no training: what the long-context stage's base
change alone costs (docs/benchmarks/video.md, long-context annealing).

    .venv/bin/python scripts/diag_rope_scale.py --model artifacts/stages/vl_pretrain/<hash>/model --scales 1 2 8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 8.0])
    ap.add_argument("--context", type=int, default=4096, help="max_position_embeddings of the scaled copies")
    args = ap.parse_args()

    from hydra import compose, initialize_config_dir

    from rlsys.config.store import register_configs
    from rlsys.eval.scoring import evaluate_model
    from rlsys.jobs.long_context import write_scaled_model
    from rlsys.run import CONF_DIR, normalize_overrides
    from rlsys.runtime.ray_utils import init_ray

    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose(config_name="config", overrides=normalize_overrides(["+exp=gspo_hints", "eval.max_ifeval=0"]))
    init_ray(num_cpus=2)
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            model = write_scaled_model(args.model, Path(tmp) / f"x{scale:g}", scale, args.context)
            out = evaluate_model(cfg, model)
            print(f"| x{scale:g} | " + " | ".join(f"{out[k]:.3f}" for k in sorted(out) if k.startswith("eval/math_acc"))
                  + " |", flush=True)


if __name__ == "__main__":
    main()
