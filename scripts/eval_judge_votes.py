"""Same as `python -m rlsys.eval judge-votes` (rlsys/eval/judge_votes.py); kept for the documented commands."""

from rlsys.eval.judge_votes import main

if __name__ == "__main__":
    raise SystemExit(main())
