"""Does a VLM read its pictures? Three probes of the tiny Qwen3-VL (docs/benchmarks/vision.md, "What the tower reads").

    # caption NLL with each row's own image vs another row's, overall and per token class
    .venv/bin/python scripts/diag_vision_reading.py swap MODEL --data DIR [--split vl_caption_eval] [--rows 180]
    # caption fine-tuning of the whole model in a plain torch loop, the swap gap every 150 steps
    .venv/bin/python scripts/diag_vision_reading.py train-captions MODEL --data DIR --steps 900 [--save OUT]
    # the vision tower + merger + a linear head trained to name the first digit of an arithmetic expression
    .venv/bin/python scripts/diag_vision_reading.py digit-probe MODEL --data DIR --steps 1000 [--pool flat|mean] [--holdout N]
    # the same head on one rendered digit per picture (DIR is where the pictures are written), at the centre or anywhere
    .venv/bin/python scripts/diag_vision_reading.py digit-probe MODEL --data DIR --digits centre|anywhere [--jitter PX] [--fresh] --holdout 400

DIR is a built visual suite (artifacts/data_visual/<hash>, or a bigger one from `build_visual_suite`). A model
that reads a caption's content from the picture scores its tokens better with its own image than with
another's (the gap, nats per token); a token class it cannot read shows no gap.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch


def load_split(data: Path, split: str, n: int | None = None) -> list[dict]:
    rows = [json.loads(line) for line in (data / f"{split}.jsonl").read_text().splitlines() if line.strip()]
    for r in rows:
        r["images"] = [str(data / p) for p in r["images"]]
    return rows[:n] if n else rows


def load(path: str) -> tuple:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoProcessor.from_pretrained(path), AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)


def caption_nll(proc, model, row: dict, images: list[str]) -> torch.Tensor:
    """Per-token NLL of the row's response given its prompt and `images`."""
    from rlsys.data.encode import encode_vl_prompt
    from rlsys.learner.vl_inputs import build_vl_inputs, completion_logprobs

    prompt = encode_vl_prompt(proc, row)
    target = proc.tokenizer(row["response"], add_special_tokens=False)["input_ids"]
    return -completion_logprobs(model, build_vl_inputs(proc, prompt, images, target), len(target))[0]


def swap_gap(proc, model, rows: list[dict]) -> tuple[str, dict]:
    """Mean NLL with own vs shifted images (row i gets row i+7's), and per token class (digit / word / punct)."""
    own, swap, per = [], [], defaultdict(lambda: ([], []))
    model.eval()
    with torch.no_grad():
        for i, r in enumerate(rows):
            a = caption_nll(proc, model, r, r["images"])
            b = caption_nll(proc, model, r, rows[(i + 7) % len(rows)]["images"])
            own.append(a.mean().item())
            swap.append(b.mean().item())
            ids = proc.tokenizer(r["response"], add_special_tokens=False)["input_ids"]
            for t, x, y in zip(ids, a.tolist(), b.tolist()):
                s = proc.tokenizer.decode([t]).strip()
                kind = "digit" if re.fullmatch(r"\d+", s) else "word" if s.isalpha() else "punct"
                per[kind][0].append(x)
                per[kind][1].append(y)
    d = [y - x for x, y in zip(own, swap)]
    line = (f"own {statistics.mean(own):.3f} swapped {statistics.mean(swap):.3f} "
            f"gap {statistics.mean(d):+.3f} ± {statistics.stdev(d) / len(d) ** 0.5:.3f}")
    return line, per


def cmd_swap(args: argparse.Namespace) -> None:
    proc, model = load(args.model)
    line, per = swap_gap(proc, model, load_split(args.data, args.split, args.rows))
    print(line)
    for kind, (a, b) in sorted(per.items()):
        right = sum(x < 0.693 for x in a) / len(a)
        print(f"  {kind:6s} tokens {len(a):5d}  own {statistics.mean(a):.2f}  swapped {statistics.mean(b):.2f}  "
              f"p(right) > 0.5: {right:.2f}")


def cmd_train(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    proc, model = load(args.model)
    train, evals = load_split(args.data, "vl_caption_train"), load_split(args.data, "vl_caption_eval", 60)
    print("before:", swap_gap(proc, model, evals)[0], flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    rng, t0 = random.Random(0), time.time()
    for step in range(1, args.steps + 1):
        model.train()
        opt.zero_grad()
        for r in rng.sample(train, args.batch):
            (caption_nll(proc, model, r, r["images"]).mean() / args.batch).backward()
        opt.step()
        if step % 150 == 0:
            print(f"step {step} ({time.time() - t0:.0f} s):", swap_gap(proc, model, evals)[0], flush=True)
    if args.save:
        model.save_pretrained(args.save)
        proc.save_pretrained(args.save)


def render_digit(rng: random.Random, place: str, jitter: int | None = None, size: int = 224) -> tuple:
    """One digit in the expression task's inks, backgrounds and font sizes (30-44 px), at the centre or anywhere the
    glyph fits (or at most `jitter` px off the centre each way): (PIL image, digit)."""
    from PIL import Image, ImageDraw

    from rlsys.data.tasks.visual.render import font
    from rlsys.data.tasks.visual.scene import BACKGROUNDS, INKS

    digit, font_size = rng.randrange(10), rng.randint(30, 44)
    room = size // 2 - font_size if place == "anywhere" else 0
    room = room if jitter is None else min(jitter, size // 2 - font_size)
    centre = (size // 2 + rng.randint(-room, room), size // 2 + rng.randint(-room, room))
    background, ink = rng.choice(sorted(BACKGROUNDS)), rng.choice(sorted(INKS))
    image = Image.new("RGB", (size, size), BACKGROUNDS[background])
    ImageDraw.Draw(image).text(centre, str(digit), fill=INKS[ink], font=font(font_size), anchor="mm")
    return image, digit


def digit_rows(out: Path, n: int, place: str, jitter: int | None = None) -> list[dict]:
    """`n` pictures from `render_digit`, written under `out` (the same ones on every call)."""
    name = place if jitter is None else f"jitter{jitter}"
    rng, rows = random.Random(f"digits-{name}"), []
    (out / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image, digit = render_digit(rng, place, jitter)
        path = out / name / f"{i:05d}-{digit}.png"
        image.save(path)
        rows.append({"images": [str(path)], "digit": digit})
    return rows


def cmd_digit(args: argparse.Namespace) -> None:
    from rlsys.learner.vl_inputs import image_inputs

    torch.manual_seed(0)
    proc, model = load(args.model)
    if args.digits:
        train = digit_rows(args.data, 4000 + args.holdout, args.digits, args.jitter)
        label = lambda r: r["digit"]  # noqa: E731
        train, evals = train[: -args.holdout], train[-args.holdout:]
    else:
        train, evals = load_split(args.data, "vl_caption_train"), load_split(args.data, "vl_caption_eval", 60)
        train = [r for r in train if r["scene"].get("kind") == "expression"]
        evals = [r for r in evals if r["scene"].get("kind") == "expression"]
        if args.holdout:  # the eval split holds few expressions: hold out the last training scenes instead
            train, evals = train[: -args.holdout], train[-args.holdout:]
        label = lambda r: int(str(r["scene"]["a"])[0])  # noqa: E731 (the first digit of the first operand)
    dim = model.config.text_config.hidden_size
    width = dim if args.pool == "mean" else None
    head: torch.nn.Module | None = torch.nn.Linear(width, 10) if width else None

    def logits(batch: list[dict]) -> torch.Tensor:
        nonlocal head
        inputs = image_inputs(proc, [r["images"][0] for r in batch])
        feats = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"]).pooler_output
        x = torch.stack([f.mean(0) if args.pool == "mean" else f.flatten() for f in feats])
        if head is None:
            head = torch.nn.Linear(x.shape[1], 10)
        return head(x)

    def accuracy() -> float:
        with torch.no_grad():
            return (logits(evals).argmax(-1) == torch.tensor([label(r) for r in evals])).float().mean().item()

    print(f"start: acc {accuracy():.3f} on {len(evals)} held-out expressions", flush=True)
    opt = torch.optim.AdamW(list(model.model.visual.parameters()) + list(head.parameters()), lr=args.lr)
    rng, t0 = random.Random(0), time.time()
    fresh = random.Random("fresh")
    for step in range(1, args.steps + 1):
        if args.fresh:  # a new picture every time: no picture is seen twice
            batch = [dict(zip(("images", "digit"), ([im], d))) for im, d in
                     (render_digit(fresh, args.digits, args.jitter) for _ in range(16))]
        else:
            batch = rng.sample(train, 16)
        loss = torch.nn.functional.cross_entropy(logits(batch), torch.tensor([label(r) for r in batch]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.eval_every == 0:
            print(f"step {step} ({time.time() - t0:.0f} s): loss {loss.item():.3f} acc {accuracy():.3f}", flush=True)
    if args.save:  # the trained tower inside the whole VLM, for a chain to start from (the head is not kept)
        model.save_pretrained(args.save)
        proc.save_pretrained(args.save)


def cmd_read(args: argparse.Namespace) -> None:
    """The whole VLM trained with its LM loss to answer which digit a fresh picture shows; the digit's place
    widens from `--jitter-start` to `--jitter` px off the centre over `--ramp` steps (a curriculum)."""
    torch.manual_seed(0)
    proc, model = load(args.model)
    question = "Which digit is written in the picture? Answer with the digit only."

    def row(image, digit: int) -> dict:
        return {"prompt": question, "response": str(digit), "images": [image]}

    held = random.Random("read-held-out")
    evals = [row(*render_digit(held, "anywhere", args.jitter)) for _ in range(args.holdout)]
    centre = [row(*render_digit(held, "centre")) for _ in range(args.holdout // 2)]

    digit_ids = [proc.tokenizer(str(d), add_special_tokens=False)["input_ids"] for d in range(10)]
    assert all(len(i) == 1 for i in digit_ids) and len({i[0] for i in digit_ids}) == 10, "a digit must be one token"

    def accuracy(rows: list[dict], images: bool = True) -> float:
        """Right when the digit's token is the likeliest of the ten digits' tokens after the prompt."""
        from PIL import Image

        from rlsys.data.encode import encode_vl_prompt
        from rlsys.learner.vl_inputs import build_vl_inputs

        model.eval()
        right = 0
        with torch.no_grad():
            for r in rows:
                shown = r["images"] if images else [Image.new("RGB", (224, 224), (128, 128, 128))]
                inputs = build_vl_inputs(proc, encode_vl_prompt(proc, r), shown, digit_ids[0])
                start = inputs.pop("completion_start")
                logits = model(**{k: v for k, v in inputs.items() if v is not None}).logits[0, start - 1]
                right += int(logits[[i[0] for i in digit_ids]].argmax()) == int(r["response"])
        return right / len(rows)

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    fresh, t0 = random.Random("fresh"), time.time()
    print(f"start: held-out {accuracy(evals):.3f} centre {accuracy(centre):.3f}", flush=True)
    for step in range(1, args.steps + 1):
        jitter = round(args.jitter_start + (args.jitter - args.jitter_start) * min(1.0, step / max(args.ramp, 1)))
        model.train()
        opt.zero_grad()
        for _ in range(args.batch):
            r = row(*render_digit(fresh, "anywhere", jitter))
            (caption_nll(proc, model, r, r["images"]).mean() / args.batch).backward()
        opt.step()
        if step % args.eval_every == 0:
            print(f"step {step} ({time.time() - t0:.0f} s): jitter {jitter} held-out (±{args.jitter} px) "
                  f"{accuracy(evals):.3f} centre {accuracy(centre):.3f} blank {accuracy(centre, False):.3f}", flush=True)
    if args.save:
        model.save_pretrained(args.save)
        proc.save_pretrained(args.save)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, fn in (("swap", cmd_swap), ("train-captions", cmd_train), ("digit-probe", cmd_digit),
                     ("read", cmd_read)):
        p = sub.add_parser(name)
        p.add_argument("model")
        p.add_argument("--data", type=Path, required=True)
        p.set_defaults(run=fn)
        if name == "swap":
            p.add_argument("--split", default="vl_caption_eval")
            p.add_argument("--rows", type=int, default=180)
        else:
            p.add_argument("--steps", type=int, default=900)
            p.add_argument("--lr", type=float, default=5e-4 if name == "train-captions" else 1e-3)
        if name != "swap":
            p.add_argument("--save", default=None, help="write the trained model here")
        if name in ("train-captions", "read"):
            p.add_argument("--batch", type=int, default=8)
        if name == "read":
            p.add_argument("--jitter", type=int, default=64, help="px off the centre at the end (and held out)")
            p.add_argument("--jitter-start", type=int, default=0, help="px off the centre at step 0")
            p.add_argument("--ramp", type=int, default=0, help="steps over which the place widens (0: at once)")
            p.add_argument("--holdout", type=int, default=200)
            p.add_argument("--eval-every", type=int, default=250)
        if name == "digit-probe":
            p.add_argument("--pool", choices=("flat", "mean"), default="flat")
            p.add_argument("--holdout", type=int, default=0, help="held-out scenes taken from the training split")
            p.add_argument("--eval-every", type=int, default=200, help="steps between held-out evaluations")
            p.add_argument("--digits", choices=("centre", "anywhere"), default=None,
                           help="one rendered digit per picture (written under --data) instead of the suite's")
            p.add_argument("--jitter", type=int, default=None, help="with --digits: at most this many px off the centre")
            p.add_argument("--fresh", action="store_true", help="with --digits: train on new pictures every step")
    torch.set_num_threads(1)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
