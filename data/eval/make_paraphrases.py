#!/usr/bin/env python3
"""Builds the fine-tuning evaluation sets from the guardrail set (Python 3 standard library).

Each in-scope question of `guardrails.jsonl` is a paraphrase written by hand, with the facts a
correct reply must contain. This script pairs it with the FAQ entry it asks about (the entries of
`data/prepared/knowledge.jsonl` whose answer holds every listed fact; in the question's language;
of those, the one sharing the most terms with the paraphrase, its question counting double) and keeps the pairs whose entry
is in the training split: questions the model never saw, about facts it was trained on.

Writes `paraphrases.dev.jsonl` (for `kefu train --eval`: picks the best epoch) and
`paraphrases.test.jsonl` (for `kefu eval --data`: the comparison with the base model), one
`{id, instruction, input, output, faq}` object a line. Run after `kefu data prepare`.
"""
import json
import re
import sys
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREPARED = HERE.parent / "prepared"


def squash(s):
    return "".join(unicodedata.normalize("NFKC", s).lower().split())


def is_zh(s):
    return any("\u4e00" <= c <= "\u9fff" for c in s)


def terms(s):
    """Character bigrams of Chinese text, lower-cased words (4+ letters: no stop words) of English."""
    if is_zh(s):
        s = squash(s)
        return {s[i : i + 2] for i in range(len(s) - 1)}
    return {w[:5] for w in re.findall(r"[a-z0-9]+", s.lower()) if len(w) >= 4}


def similarity(question, entry):
    q = terms(question)
    return 2 * len(q & terms(entry["question"])) + len(q & terms(entry["answer"]))


def load(path):
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def main():
    kb = load(PREPARED / "knowledge.jsonl")
    train_ids = {e["id"] for e in load(PREPARED / "train.jsonl")}
    items = [i for i in load(HERE / "guardrails.jsonl") if i["expect"] == "answer"]
    out = {"dev": [], "test": []}
    skipped = {"no entry holds every fact": 0, "entry not in training split": 0}
    for item in items:
        facts = [squash(f) for f in item["facts"]]
        candidates = [
            e
            for e in kb
            if all(f in squash(e["answer"]) for f in facts) and is_zh(e["answer"]) == (item["lang"] == "zh")
        ]
        if not candidates:
            skipped["no entry holds every fact"] += 1
            continue
        best = max(candidates, key=lambda e: similarity(item["question"], e))
        if best["id"] not in train_ids:
            skipped["entry not in training split"] += 1
            continue
        out[item["split"]].append(
            {"id": item["id"], "instruction": item["question"], "input": "", "output": best["answer"], "faq": best["id"]}
        )
    for split, rows in out.items():
        path = HERE / f"paraphrases.{split}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"{path.name}: {len(rows)} questions", file=sys.stderr)
    print(f"skipped: {skipped}", file=sys.stderr)


if __name__ == "__main__":
    main()
