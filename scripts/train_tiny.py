"""Train the small synthetic-benchmark thinker (`--model synthetic`) on a CPU and write its weights.

    python scripts/train_tiny.py [--steps N] [--threads 2] [--out seats_cli/weights/synthetic.safetensors]

Reproducible: fixed seed, fixed step count, data drawn from training seeds only (below
`seats_cli.synthetic.HELD_OUT_SEED`), stock `Qwen2_5OmniThinkerForConditionalGeneration` forward with
`use_audio_in_video=True`, cross-entropy on the answer letter. The curriculum goes from one-window clips of the
within-modality kinds to 2-4-window clips of every kind, advancing when the rolling training accuracy reaches
0.85 or at fixed fractions of the steps. Progress (step, stage, rolling accuracy, seconds) goes to stderr;
a checkpoint is written every --save-every steps and at the end (fp16, with the recipe key).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seats_cli.models.synthetic import WEIGHTS, new_thinker, save_weights  # noqa: E402
from seats_cli.models.tiny import build_tiny_processor  # noqa: E402
from seats_cli.synthetic import HELD_OUT_SEED, KINDS, SYSTEM_PROMPT, make_item, render  # noqa: E402

SEED = 20261127
# (kinds, window counts, share of the steps at most)
STAGES = [
    (("colour", "tone"), (1, 2), 0.15),
    (KINDS, (1, 2), 0.35),
    (KINDS, (2, 3), 0.60),
    (KINDS, (2, 3, 4), 1.00),
]


def encode_example(processor, item, device):
    frames, audio = render(item)
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": [{"type": "video", "video": "clip"}, {"type": "text", "text": item.question}]},
    ]
    prompt = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    batch = processor(
        text=prompt + item.answer, videos=[torch.from_numpy(frames).permute(0, 3, 1, 2)], audio=[audio],
        audio_from_video_indices=[0], load_audio_from_video=True, return_tensors="pt",
        videos_kwargs={"fps": 2.0, "do_resize": False, "cap_pixels_per_frame": False},
        audio_kwargs={"padding": "longest"},  # valid mel frames equal the 300-s padding's; 10x cheaper
    )
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=9000, help="optimizer updates (2 clips each)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    random.seed(SEED)
    np.random.seed(SEED % 2**32)
    model = new_thinker(seed=SEED).train()
    processor = build_tiny_processor()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup, decay_from = 30, int(0.7 * args.steps)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        if step < decay_from:
            return args.lr
        return args.lr * (1 - 0.9 * (step - decay_from) / max(1, args.steps - decay_from))

    rng = np.random.default_rng(SEED)
    stage, recent = 0, deque(maxlen=200)
    t0 = time.perf_counter()
    for step in range(args.steps):
        kinds, counts, until = STAGES[stage]
        if stage + 1 < len(STAGES) and (step >= until * args.steps or
                                        (len(recent) == recent.maxlen and np.mean(recent) >= 0.85)):
            stage += 1
            recent.clear()
            kinds, counts, until = STAGES[stage]
            print(f"step {step}: stage {stage} ({', '.join(kinds)}; {counts} windows)", file=sys.stderr, flush=True)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        for _ in range(2):
            seed = int(rng.integers(0, HELD_OUT_SEED))
            item = make_item(seed, kinds[int(rng.integers(0, len(kinds)))], int(rng.integers(0, 4)),
                             n_windows=int(counts[int(rng.integers(0, len(counts)))]))
            inputs = encode_example(processor, item, "cpu")
            out = model(**inputs, use_audio_in_video=True)
            logits = out.logits[0, -2].float()
            target = inputs["input_ids"][0, -1]
            loss = torch.nn.functional.cross_entropy(logits[None], target[None]) / 2
            loss.backward()
            recent.append(float(int(logits.argmax()) == int(target)))
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step} stage {stage} acc {np.mean(recent):.3f} loss {2 * float(loss):.3f} "
                  f"lr {lr_at(step):.2e} {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
        if (step + 1) % args.save_every == 0 or step == args.steps - 1:
            save_weights(model, args.out, steps=step + 1, stage=stage, seconds=round(time.perf_counter() - t0),
                         seed=SEED)
    print(f"done: {args.steps} steps in {time.perf_counter() - t0:.0f} s -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
