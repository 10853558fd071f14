"""Start-up of `rlsys.serve` on CPU: the engine in the server process vs in its own process.

    .venv/bin/python scripts/bench_serve_start.py MODEL_DIR --rounds 2

Each round starts the server once per mode, alternating, and asks it for one completion (a server that came
up but cannot answer fails the run). Prints the seconds until `/v1/models` listed the model, per start.
"""

from __future__ import annotations

import argparse
import os

import openai

from rlsys.serve import serve_model

MODES = {"own process": "1", "in the server process": "0"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode, flag in MODES.items():
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = flag  # set: serve_model keeps the caller's choice
            with serve_model(args.model_dir, max_model_len=512, dtype="float32") as server:
                client = openai.OpenAI(base_url=server.base_url, api_key="unused")
                client.completions.create(model=server.model, prompt="1 + 1 =", max_tokens=4)
                times[mode].append(server.startup_s)
            print(f"{mode}: up in {server.startup_s:.1f} s", flush=True)
    print("\n| engine | starts (s) |\n|---|---|")
    for mode, got in times.items():
        print(f"| {mode} | {' / '.join(f'{t:.1f}' for t in got)} |")


if __name__ == "__main__":
    main()
