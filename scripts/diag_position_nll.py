"""Next-token loss by position on sequences longer than the model was trained on.

The embedded default pretrains at 256 tokens and fine-tunes at 320, while judge prompts plus their
reasoning run to 640. This packs a data file's `text` rows (or prompt + response) into fixed-length
sequences and prints the mean NLL of each 64-position band (docs/benchmarks/judge.md).

    .venv/bin/python scripts/diag_position_nll.py MODEL_DIR artifacts/data/<hash>/pretrain.jsonl [--length 768]
"""

from __future__ import annotations

import argparse
import json

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("data", help="jsonl with `text` (or `prompt` and `response`) fields")
    parser.add_argument("--length", type=int, default=768)
    parser.add_argument("--sequences", type=int, default=24)
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32).eval()
    ids: list[int] = []
    with open(args.data) as fh:
        for line in fh:
            row = json.loads(line)
            text = row.get("text") or f"{row.get('prompt', '')}\n{row.get('response', '')}"
            ids += tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
            if len(ids) >= args.length * args.sequences:
                break
    n = len(ids) // args.length
    if n == 0:
        raise SystemExit(f"{args.data}: fewer than {args.length} tokens")
    seqs = torch.tensor(ids[: n * args.length]).view(n, args.length)
    with torch.no_grad():
        logits = model(input_ids=seqs).logits[:, :-1].float()
    nll = -torch.log_softmax(logits, -1).gather(-1, seqs[:, 1:, None])[..., 0].mean(0)
    print(f"{n} sequences of {args.length} tokens")
    for start in range(0, args.length - 1, 64):
        print(f"positions {start:4d}-{start + 63:4d}: nll {nll[start:start + 64].mean():.3f}")


if __name__ == "__main__":
    main()
