"""Same as `python -m rlsys.eval wide` (rlsys/eval/wide.py); kept for the documented commands."""

from rlsys.eval.wide import main

if __name__ == "__main__":
    raise SystemExit(main())
