"""lmms-eval task functions for the benchmarks `seats eval export-lmms` writes (one row per question: id, video as
an absolute path, prompt as the paper ran it, options, gold letter, category). Scored with seats' one
deterministic letter extractor; an unparsable answer counts as wrong and is counted."""

from __future__ import annotations


def doc_to_visual(doc):
    return [doc["video"]]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["prompt"]


def doc_to_target(doc):
    return doc["answer"]


def process_results(doc, results):
    from seats_cli.benchmarks import extract_letter

    letter = extract_letter(results[0], doc["options"])
    row = {"id": doc["id"], "category": doc.get("category"), "letter": letter, "gold": doc["answer"],
           "correct": letter == doc["answer"]}
    return {"accuracy": row, "unparsable": row}


def aggregate_accuracy(rows):
    return sum(r["correct"] for r in rows) / len(rows) if rows else 0.0


def aggregate_unparsable(rows):
    return sum(r["letter"] is None for r in rows)
