"""Same as `python -m rlsys.eval compare` (rlsys/eval/compare.py); kept for the documented commands."""

from rlsys.eval.compare import main

if __name__ == "__main__":
    raise SystemExit(main())
