"""What every benchmark reader returns, how a question becomes a prompt, and how an answer becomes a letter.

One place for each rule: ``Question`` (a multiple-choice item with its video), ``BenchmarkSpec`` (the paper's
evaluation settings for a benchmark, each overridable), ``build_prompt`` and ``extract_letter`` (deterministic:
no random fallback; an unparsable answer is None and counted as such).
"""

from __future__ import annotations

import ast
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from seats_cli import jsonl

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DEFAULT_INSTRUCTION = "Answer with the option's letter from the given choices directly."


class BenchmarkError(ValueError):
    """A benchmark folder that cannot be read (exit 2, one line)."""


@dataclass(frozen=True)
class Question:
    id: str
    video: Path
    question: str
    options: tuple[str, ...]  # option texts without their letters
    answer: str  # the gold letter
    category: str | None = None
    extra: dict = field(default_factory=dict, compare=False)  # other fields worth keeping (duration, domain, ...)

    def letters(self) -> str:
        return LETTERS[:len(self.options)]


DEFAULT_TEMPLATE = "{question}\n{options}\n" + DEFAULT_INSTRUCTION


@dataclass(frozen=True)
class BenchmarkSpec:
    """How the paper evaluated a benchmark (the SEATS authors' lmms-eval tasks): frames, answer length, prompt
    template ({question}, {options}: one "A. text" per line) and system prompt (None: the model's own; "{default}"
    stands for it). Every field can be overridden on the command line."""

    name: str
    max_frames: int
    max_new_tokens: int = 16
    template: str = DEFAULT_TEMPLATE
    system: str | None = None
    use_audio: bool = True
    fps: float = 2.0

    def prompt(self, q: "Question", template: str | None = None) -> str:
        return build_prompt(q, self.template if template is None else template)

    def system_prompt(self, default: str) -> str | None:
        return None if self.system is None else self.system.replace("{default}", default)


def strip_letter(option: str) -> str:
    """'A. a red ball' / '(A) a red ball' / 'A: ...' -> 'a red ball' (text without a letter prefix unchanged)."""
    m = re.match(r"^\s*\(?([A-Z])[\.\):]\s*(.*)$", str(option), flags=re.S)
    return m.group(2).strip() if m else str(option).strip()


def build_prompt(q: Question, template: str = DEFAULT_TEMPLATE) -> str:
    """``template`` with {question} and {options} (one "A. text" per line)."""
    options = "\n".join(f"{letter}. {text}" for letter, text in zip(q.letters(), q.options))
    return template.replace("{question}", q.question.strip()).replace("{options}", options)


_LEAD = re.compile(r"^\W*\(?([A-Z])(?:[\.\):,]|\s|$)")
_PHRASE = re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*(?:option\s*)?\(?([A-Z])\b\)?", re.I)


def extract_letter(answer: str, options: tuple[str, ...] | list[str]) -> str | None:
    """The option letter an answer names, or None. Deterministic rules, first match wins:
    1. the answer starts with a valid letter standing alone ("B", "B.", "(B) ...", "B) ..."; not the words
       "A" / "I" before a lowercase word, nor "B or C");
    2. a phrase "answer is B" / "Answer: (B)" / "option B" names exactly one valid letter;
    3. exactly one valid capital letter stands alone as a word in the answer;
    4. exactly one option's text occurs in the answer (case-insensitive)."""
    valid = LETTERS[:len(options)]
    text = str(answer or "").strip()
    if not text:
        return None
    alone = set(re.findall(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])", text)) & set(valid)
    m = _LEAD.match(text)
    if m and m.group(1) in valid:
        lead = m.group(1)
        # "A man runs" / "I think ..." begin with a word; "B or C" names two letters
        word = lead in "AI" and re.match(r"^\W*[AI]\s+[a-z]", text)
        bare = re.match(r"^\W*\(?[A-Z]\s", text) and not re.match(r"^\W*\([A-Z]\)", text)
        if not word and not (bare and alone - {lead}):
            return lead
    named = {x.upper() for x in _PHRASE.findall(text)} & set(valid)
    if len(named) == 1:
        return named.pop()
    if len(alone) == 1:
        return alone.pop()
    low = text.lower()
    found = [letter for letter, opt in zip(valid, options) if strip_letter(opt) and strip_letter(opt).lower() in low]
    return found[0] if len(found) == 1 else None


def gold_letter(answer, options) -> str:
    """A gold answer given as a letter ('B', 'B.', '(B)'), a 0-based index, or an option's text -> its letter."""
    valid = LETTERS[:len(options)]
    if isinstance(answer, int) and not isinstance(answer, bool):
        if 0 <= answer < len(options):
            return valid[answer]
        raise BenchmarkError(f"answer index {answer} is out of range for {len(options)} options")
    s = str(answer).strip()
    m = re.match(r"^\(?([A-Za-z])[\.\):]?$", s)
    if m and m.group(1).upper() in valid:
        return m.group(1).upper()
    m = re.match(r"^\(?([A-Z])[\.\):]\s", s)
    if m and m.group(1) in valid:
        return m.group(1)
    texts = [strip_letter(o).lower() for o in options]
    if strip_letter(s).lower() in texts:
        return valid[texts.index(strip_letter(s).lower())]
    raise BenchmarkError(f"answer {s!r} is not a letter of {len(options)} options nor one of their texts")


# ----------------------------------------------------------------------------------- reading local copies
def load_rows(folder: Path, patterns: tuple[str, ...]) -> tuple[list[dict], Path]:
    """The rows of the first annotation file matching one of ``patterns`` (glob, relative to ``folder``):
    .parquet (pyarrow, the ``eval`` extra), .json (a list, or a dict of rows), .jsonl."""
    for pattern in patterns:
        hits = sorted(folder.glob(pattern))
        if hits:
            return read_table(hits[0]), hits[0]
    raise BenchmarkError(f"{folder}: no annotation file ({' or '.join(patterns)})")


_READS: list[list[Path]] = []  # the annotation files read, per open `recording_reads()` (one thread's CLI run)


@contextmanager
def recording_reads():
    """The annotation files the readers open meanwhile (so that a run's --out can be checked against them)."""
    files: list[Path] = []
    _READS.append(files)
    try:
        yield files
    finally:
        del _READS[next(i for i, f in enumerate(_READS) if f is files)]


def record_read(path: Path) -> None:
    """A reader opened this annotation file (every reader calls this once per file it reads)."""
    for files in _READS:
        files.append(Path(path))


def read_table(path: Path) -> list[dict]:
    record_read(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise BenchmarkError(f"{path}: reading parquet needs pyarrow: pip install 'seats-cli[eval]'") from None
            return pq.read_table(path).to_pylist()
        text = path.read_text(encoding="utf-8")
        if suffix == ".jsonl":
            return [json.loads(line) for line in jsonl.lines(text) if line.strip()]
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BenchmarkError(f"{path}: cannot read ({e})") from None
    except BenchmarkError:
        raise
    except Exception as e:  # noqa: BLE001 - pyarrow's errors: one line
        raise BenchmarkError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    if isinstance(data, dict):
        data = [dict(v, id=k) if isinstance(v, dict) and "id" not in v else v for k, v in data.items()]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BenchmarkError(f"{path}: expected a list of objects")
    return data


def parse_options(value) -> list[str]:
    """Options as a list, a stringified list (also numpy's ``['A. x' 'B. y']`` without commas), or one string
    ``"A. x B. y"`` / one option per line -> the option texts without their letters."""
    if isinstance(value, (list, tuple)):
        return [strip_letter(v) for v in value]
    s = str(value).strip()
    if s.startswith("["):
        try:
            items = ast.literal_eval(re.sub(r"'\s+'", "', '", re.sub(r'"\s+"', '", "', s)))
            return [strip_letter(v) for v in items]
        except (ValueError, SyntaxError):
            pass
    parts = re.split(r"(?:^|\s)\(?([A-Z])[\.\):]\s*", s)
    if len(parts) > 2:
        return [p.strip() for p in parts[2::2]]
    return [strip_letter(x) for x in s.splitlines() if x.strip()]


def first_video(folder: Path, candidates) -> Path:
    """The first candidate path (relative to ``folder``) that exists, else the first one (reported missing)."""
    paths = [folder / c for c in candidates if c]
    for p in paths:
        if p.is_file():
            return p
    return paths[0]


def need(row: dict, keys, where: str):
    """The first of ``keys`` present in ``row`` (a benchmark's field-name variants)."""
    for k in (keys if isinstance(keys, (list, tuple)) else (keys,)):
        if k in row and row[k] is not None:
            return row[k]
    raise BenchmarkError(f"{where}: no field {' / '.join(keys if isinstance(keys, (list, tuple)) else (keys,))}")


def make_question(qid, video: Path, question, options, answer, category=None, extra=None,
                  where: str = "") -> Question:
    opts = tuple(parse_options(options))
    if len(opts) < 2:
        raise BenchmarkError(f"{where}: fewer than 2 options ({options!r})")
    try:
        gold = gold_letter(answer, opts)
    except BenchmarkError as e:
        raise BenchmarkError(f"{where}: {e}") from None
    return Question(str(qid), video, str(question), opts, gold, None if category is None else str(category),
                    dict(extra or {}))


class QuestionIds:
    """Ids for releases whose rows have none: "<video id>-<rank of the question among that video's>"."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def __call__(self, given, video_id: str) -> str:
        rank = self.seen.get(video_id, 0)
        self.seen[video_id] = rank + 1
        return str(given) if given is not None else f"{video_id}-{rank}"
