"""Does a model use a reference-answer hint? IF constraint share of greedy answers per hint level.

    .venv/bin/python scripts/diag_hint_use.py artifacts/stages/rft_rl/<hash>/model [--rows 48] [--levels 0 1 3 5]

Rows are the first `--rows` of the suite's `ifeval_train` split (default seed) (they carry a verified `response`); level k
is `hints.reference.ReferenceHints` (the first k/5 of the reference's words; level 5, all of it), appended
to the prompt the way RL appends hints. A model that reads its hints should approach 1.0 at level 5.
Plain transformers greedy decoding on CPU (one thread), so it runs beside a training job.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hints.reference import ReferenceHints
    from rewards.ifeval import ifeval_reward
    from rlsys.data.encode import encode_prompt
    from rlsys.data.tasks.ifeval_tasks import ifeval_rows
    from rlsys.data.tasks.suite import SuiteSpec

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--rows", type=int, default=48)
    ap.add_argument("--levels", type=int, nargs="+", default=[0, 1, 3, 5])
    ap.add_argument("--max-tokens", type=int, default=160)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    # The suite's own generator and default seed: the first rows of its ifeval_train split.
    rows = ifeval_rows(args.rows, SuiteSpec().seed, "train")[0]
    hints = ReferenceHints()
    print(f"first {len(rows)} ifeval_train rows, greedy, {args.max_tokens} new tokens at most\n")
    print("| hint level | IF share | all met |\n|---|---|---|")
    for level in args.levels:
        share = all_met = 0.0
        for row in rows:
            ids = encode_prompt(tok, row, None, hints(row, level) if level else None)
            with torch.no_grad():
                out = model.generate(torch.tensor([ids]), max_new_tokens=args.max_tokens, do_sample=False)
            score = ifeval_reward(row["prompt"], tok.decode(out[0][len(ids):], skip_special_tokens=True),
                                  row["constraints"])["score"]
            share, all_met = share + score, all_met + (score == 1.0)
        print(f"| {level or 'none'} | {share / len(rows):.3f} | {all_met / len(rows):.3f} |")


if __name__ == "__main__":
    main()
