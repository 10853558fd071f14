"""Does a VLM's vision tower encode what the questions ask? A linear probe on the tokens the LM receives.

    .venv/bin/python scripts/diag_vision_probe.py vl_init=artifacts/stages/vl_init/<hash>/model \
        vit=artifacts/stages/vit_pretrain/<hash>/model --rows /tmp/vcount/vl_sft_train.jsonl [--n-train 1200]

`--rows` is a jsonl of the visual suite's shapes rows (e.g. `vl_sft_train` of a count-only suite), each with its
`scene`. For every image the merger's output tokens (what the language model sees in place of the image) are
mean- and max-pooled; a ridge regression fitted on the first `--n-train` images predicts the number of objects
in the scene, scored on the rest as exact-count accuracy (the prediction rounded) and mean absolute error, next
to always answering the training set's most common count. A tower whose probe beats that baseline carries the
count; one that does not, cannot give it to the LM either.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from pathlib import Path

import torch


def pooled_features(model_dir: str, images: list[str], batch: int = 32) -> torch.Tensor:
    """[N, 2D]: mean and max over each image's merger tokens."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from rlsys.learner.vl_inputs import image_inputs

    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            inputs = image_inputs(processor, images[start:start + batch])
            per_image = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"]).pooler_output
            out += [torch.cat([t.mean(0), t.max(0).values]) for t in per_image]
    return torch.stack(out)


def ridge_fit(x: torch.Tensor, y: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Standardise x, solve (XᵀX + αI) w = Xᵀ(y − ȳ); returns (w, mean, std) with the intercept ȳ folded in w[-1]."""
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    z = (x - mean) / std
    w = torch.linalg.solve(z.T @ z + alpha * torch.eye(z.shape[1], dtype=z.dtype), z.T @ (y - y.mean()))
    return torch.cat([w, y.mean().reshape(1)]), mean, std


def ridge_predict(x: torch.Tensor, w: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return ((x - mean) / std) @ w[:-1] + w[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="name=model_dir of a vision-language model")
    parser.add_argument("--rows", type=Path, required=True)
    parser.add_argument("--n-train", type=int, default=1200)
    parser.add_argument("--alpha", type=float, default=10.0)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("scene", {}).get("kind") == "shapes"]
    if len(rows) <= args.n_train:
        raise SystemExit(f"{args.rows}: {len(rows)} shapes rows, need more than --n-train {args.n_train}")
    images = [str(args.rows.parent / r["images"][0]) for r in rows]
    y = torch.tensor([float(len(r["scene"]["objects"])) for r in rows], dtype=torch.float64)
    train, test = slice(0, args.n_train), slice(args.n_train, None)
    mode = Counter(y[train].tolist()).most_common(1)[0][0]
    print(f"{len(rows)} images, counts {sorted(Counter(y.tolist()).items())}; most common in train: {mode:g}")
    print("| model | exact count (probe) | exact count (most common) | MAE (probe) | MAE (mean) |\n|---|---|---|---|---|")
    for spec in args.models:
        name, path = spec.split("=", 1)
        x = pooled_features(path, images).double()
        w, mean, std = ridge_fit(x[train], y[train], args.alpha)
        pred = ridge_predict(x[test], w, mean, std)
        exact = (pred.round() == y[test]).double().mean().item()
        base = (y[test] == mode).double().mean().item()
        mae = (pred - y[test]).abs().mean().item()
        base_mae = statistics.mean(abs(v - y[train].mean().item()) for v in y[test].tolist())
        print(f"| {name} | {exact:.3f} | {base:.3f} | {mae:.2f} | {base_mae:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
