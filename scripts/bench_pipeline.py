"""Pipeline benchmarks (issue 7): the keye_pipeline table, RFT-RL vs RL alone, Cascade RL vs GSPO alone,
the reward models' pairwise accuracy, and alignment RL's effect on instruction following and math.

    .venv/bin/python scripts/bench_pipeline.py [--out runs/bench_pipeline] [--keye-run DIR] [--cascade-run DIR]
                                               [--skip-cascade] [-- hydra overrides for both exps]

Runs `+exp=keye_pipeline` with the equal-wall baseline `rl_alone` appended to its stage list, then
`+exp=cascade_rl` (which reuses the cached `mpo` and `rl` stages and adds `gspo_alone`), each in its own
process group. With `--keye-run` / `--cascade-run` it only reads finished run directories. Writes
`<out>/bench_pipeline.md` and `.json`. Every number comes from the runs' own summaries and tables.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
# The exp's own chain, then the equal-wall baseline.
KEYE_STAGES = [*OmegaConf.load(REPO / "conf" / "exp" / "keye_pipeline.yaml").pipeline, "rl_alone"]
JUDGE_STAGES = ("judge_check_sft", "judge_check_rl")
MATH_KEYS = ("eval/math_acc_tier1", "eval/math_acc_tier2", "eval/math_acc_tier3", "eval/math_acc")
IF_KEYS = ("eval/ifeval_all_pass", "eval/ifeval_constraint_pass", "eval/format_pass")


def run_exp(exp: str, run_dir: Path, overrides: list[str]) -> float:
    """Run one exp in its own session (so its Ray cluster can be ended with it); returns wall seconds."""
    cmd = [sys.executable, "-m", "rlsys.run", f"+exp={exp}", f"hydra.run.dir={run_dir}", *overrides]
    print("running:", " ".join(cmd), flush=True)
    started = time.perf_counter()
    log = (run_dir.parent / f"{run_dir.name}.log").open("w")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        code = proc.wait()
    except BaseException:
        os.killpg(proc.pid, signal.SIGTERM)
        raise
    if code != 0:
        raise SystemExit(f"{exp} failed (exit {code}); see {log.name}")
    return time.perf_counter() - started


def summary(run_dir: Path, stage: str) -> dict[str, Any]:
    path = run_dir / "stages" / stage / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _f(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else ("-" if value is None else str(value))


def _eval_table(rows: list[tuple[str, dict[str, Any], str]], keys: tuple[str, ...]) -> list[str]:
    head = ["stage", *(k.removeprefix("eval/") for k in keys), "note"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join([name, *(_f(ev.get(k)) for k in keys), note]) + " |" for name, ev, note in rows]
    return out


def _wall(s: dict[str, Any]) -> float:
    return float(s.get("wall_s", 0.0))


def report(keye: Path, cascade: Path | None) -> tuple[str, dict[str, Any]]:
    s = {name: summary(keye, name) for name in KEYE_STAGES}
    table = json.loads((keye / "pipeline_table.json").read_text())
    data: dict[str, Any] = {"keye_run": str(keye), "keye_table": table, "summaries": {}}
    lines = [f"### keye_pipeline table (run `{keye}`)", "", (keye / "pipeline_table.md").read_text(), ""]

    branch = ["rft_sample", "rft_sft", "pass_filter", "rft_rl"]
    if s["rl_alone"]:
        lines += ["### RFT-RL vs RL alone at equal wall time", "",
                  f"Both continue from the `rl` model. RFT branch ({' + '.join(branch)}) built in "
                  f"{sum(_wall(s[n]) for n in branch):.0f} s; `rl_alone` got rl.max_wall_s = that sum and ran "
                  f"{s['rl_alone'].get('steps')} GSPO steps (`rft_rl`: {s['rft_rl'].get('steps')} steps).", ""]
        lines += _eval_table([("rl (start)", s["rl"].get("eval", {}), f"{s['rl'].get('steps')} steps"),
                              ("rft_rl", s["rft_rl"].get("eval", {}), "RFT-SFT + (0,1) filter + GSPO"),
                              ("rl_alone", s["rl_alone"].get("eval", {}), "GSPO continued")], MATH_KEYS + IF_KEYS)
        lines.append("")
    lines += ["### Rejection sampling and the pass-rate filter", "",
              f"rft_sample: {s['rft_sample'].get('replaced')} of {s['rft_sample'].get('sampled_rows')} sampled SFT rows "
              f"replaced ({s['rft_sample'].get('replaced_by_task')}; {s['rft_sample'].get('replaced_on_tie_break')} on the "
              f"reward-model tie-break), {s['rft_sample'].get('truncated_samples')} truncated samples excluded.", "",
              "| pass rate (k=8) | " + " | ".join(s["pass_before"].get("pass_hist", {})) + " | kept (0,1) |",
              "|---|" + "---|" * (len(s["pass_before"].get("pass_hist", {})) + 1)]
    for name, label in (("pass_before", "cold-start SFT model"), ("pass_filter", "RFT-SFT model")):
        hist = s[name].get("pass_hist", {})
        lines.append(f"| {label} | " + " | ".join(str(v) for v in hist.values()) + f" | {s[name].get('kept')} |")
    lines += ["", "### Reward models: pairwise accuracy on held-out pairs (pref_eval)", "",
              "The generative judge checks each response of a held-out IF pair on its own; the one with fewer "
              "failed marks wins, a tie counts half.", "",
              "| model | pairwise acc | pairs decided | marks right | marks right if all \"ok\" |", "|---|---|---|---|---|",
              f"| scalar RM (Bradley-Terry) | {_f(s['rm'].get('eval', {}).get('eval/rm_pair_acc'))} | - | - | - |"]
    for name in JUDGE_STAGES:
        ev = s.get(name, {}).get("eval", {})
        lines.append(f"| generative judge after {name.rsplit('_', 1)[1].upper()} | {_f(ev.get('eval/judge_pair_acc'))} | "
                     f"{_f(ev.get('eval/judge_decided'))} | {_f(ev.get('eval/judge_mark_acc'))} | "
                     f"{_f(ev.get('eval/judge_mark_prior'))} |")
    lines += ["", "### Alignment RL: instruction following and math, before / after", ""]
    lines += _eval_table([("align (before = rft_rl model)", s["align"].get("eval_before", {}), ""),
                          ("align (after)", s["align"].get("eval", {}), f"{s['align'].get('steps')} steps")],
                         IF_KEYS + MATH_KEYS)
    rates = keye / "constraint_rates.md"
    if rates.is_file():
        lines += ["", rates.read_text()]
    if cascade is not None:
        c = {name: summary(cascade, name) for name in ("pref_sample", "mpo", "rl", "gspo_alone")}
        data["cascade_run"] = str(cascade)
        lines += ["", f"### Cascade RL vs GSPO alone (run `{cascade}`)", "",
                  f"Cascade: pair sampling ({_wall(c['pref_sample']):.0f} s, {c['pref_sample'].get('pairs')} pairs), MPO "
                  f"({_wall(c['mpo']):.0f} s), then GSPO from the MPO model ({_wall(c['rl']):.0f} s, "
                  f"{c['rl'].get('steps')} steps). GSPO alone from the SFT model with rl.max_wall_s = "
                  f"{sum(_wall(c[n]) for n in ('pref_sample', 'mpo', 'rl')):.0f} s: {c['gspo_alone'].get('steps')} steps.", ""]
        lines += _eval_table([("sft_more (start)", summary(cascade, "sft_more").get("eval", {}), ""),
                              ("mpo", c["mpo"].get("eval", {}), ""),
                              ("cascade: mpo -> rl", c["rl"].get("eval", {}), ""),
                              ("gspo_alone", c["gspo_alone"].get("eval", {}), "")], MATH_KEYS + IF_KEYS)
        data["summaries"].update({f"cascade/{k}": v for k, v in c.items()})
    data["summaries"].update(s)
    return "\n".join(lines) + "\n", data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench_pipeline")
    parser.add_argument("--keye-run", default=None, help="read this finished keye_pipeline run instead of running")
    parser.add_argument("--cascade-run", default=None, help="read this finished cascade_rl run instead of running")
    parser.add_argument("--skip-cascade", action="store_true")
    parser.add_argument("overrides", nargs="*", help="hydra overrides for both exps (after --)")
    args = parser.parse_args()
    out = (REPO / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    walls: dict[str, float] = {}
    keye = Path(args.keye_run).resolve() if args.keye_run else out / f"keye-{stamp}"
    if not args.keye_run:
        walls["keye_pipeline"] = run_exp("keye_pipeline", keye, [f"pipeline=[{','.join(KEYE_STAGES)}]", *args.overrides])
    cascade = Path(args.cascade_run).resolve() if args.cascade_run else None
    if cascade is None and not args.skip_cascade:
        cascade = out / f"cascade-{stamp}"
        walls["cascade_rl"] = run_exp("cascade_rl", cascade, args.overrides)
    text, data = report(keye, cascade)
    data["process_wall_s"] = walls
    if walls:
        text = "Process wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in walls.items()) + "\n\n" + text
    (out / "bench_pipeline.md").write_text(text)
    (out / "bench_pipeline.json").write_text(json.dumps(data, indent=1, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
