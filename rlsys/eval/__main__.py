"""The evaluations behind the README's and BENCHMARKS' numbers, one command each.

    .venv/bin/python -m rlsys.eval wide start=artifacts/stages/rft_rl/<hash>/model align=... [--samples 4 ...]
    .venv/bin/python -m rlsys.eval judge-votes sft=artifacts/stages/judge_check_sft/<hash>/model rl=...
    .venv/bin/python -m rlsys.eval compare ../fresh/artifacts artifacts
    .venv/bin/python -m rlsys.eval vision --from-run runs/vl_pipeline/<time>
    .venv/bin/python -m rlsys.eval hint-table sft_more=artifacts/stages/sft_more/<hash>/model --rows 60 --samples 4
    .venv/bin/python -m rlsys.eval align --judge artifacts/stages/judge_check_sft/<hash>/model before=... after=...

Each command takes the flags of its module (`<command> --help`); `scripts/eval_wide.py`,
`scripts/eval_judge_votes.py` and `scripts/compare_artifacts.py` run the same commands.
"""

from __future__ import annotations

import argparse
from types import ModuleType

from rlsys.eval import align, compare, hint_table, judge_votes, vision, wide

# Each module keeps its heavy imports (Hydra, Ray, vLLM) inside `run`, so listing the commands stays cheap.
COMMANDS: dict[str, ModuleType] = {"wide": wide, "judge-votes": judge_votes, "compare": compare,
                                  "vision": vision, "align": align, "hint-table": hint_table}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rlsys.eval", description=__doc__.splitlines()[0],
                                     epilog="`<command> --help` lists a command's flags.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, module in COMMANDS.items():
        summary = module.__doc__.splitlines()[0]
        sub = commands.add_parser(name, help=summary, description=summary)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
