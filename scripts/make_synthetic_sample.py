"""Write samples/synthetic.mp4: one held-out clip of the synthetic benchmark (seats_cli/synthetic.py) for the
README's first command, and print its question and answer. Deterministic (seed outside every eval range).

    python scripts/make_synthetic_sample.py [OUT]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seats_cli.synthetic import COLOURS, HELD_OUT_SEED, TONES, make_item, write_clip  # noqa: E402

SEED = HELD_OUT_SEED + 2000  # eval draws HELD_OUT_SEED + kind * 250 + i with i < 250: never this one
ITEM = make_item(SEED, "tone_while_square", 2, n_windows=3)  # answer C (high)


def main(out: Path) -> None:
    write_clip(ITEM, out)
    print(out)
    for i, w in enumerate(ITEM.windows):
        square = COLOURS[w.colour][0] + " square" if w.colour is not None else "no square"
        tone = TONES[w.tone][0] + " tone" if w.tone is not None else "silence"
        print(f"  {2 * i}-{2 * i + 2} s: {square}, {tone}")
    print(f"question: {ITEM.question}\nanswer: {ITEM.answer}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "samples" / "synthetic.mp4")
