#!/usr/bin/env python3
"""Regenerate the demo FAQ's CSV and SQLite forms from data/faq.json.

faq.json is the source of truth: a raw FAQ export as a support team might produce it, dirty
rows included (duplicates, HTML, full-width text, personal data, an empty answer, a row that is
not an object). The three files must yield the same knowledge base from `kefu data prepare`:

- faq.csv: header `question,answer,similar,tags,updated_at`, UTF-8 with BOM (as Excel writes
  it), similar questions one a line inside their cell, tags joined with ",". A JSON element that is not an object (a bare array of fields) is written as
  one line with its fields joined by unquoted commas, i.e. a row with broken quoting that the
  reader reports as malformed, just as it reports the JSON element.
- faq.sqlite: table `faq_table(question, answer, similar, tags, updated_at)`, similar questions
  one a line; malformed elements have no SQL equivalent and are left out; missing
  similar/tags/updated_at are NULL.

`similar` (相似问法) lists other ways customers ask each question; retrieval uses them, answers
never show them.

Usage: python3 data/make_demo.py   (stdlib only)
"""
import csv
import io
import json
import os
import sqlite3

HERE = os.path.dirname(os.path.abspath(__file__))
COLUMNS = ["question", "answer", "similar", "tags", "updated_at"]


def load():
    with open(os.path.join(HERE, "faq.json"), encoding="utf-8") as f:
        return json.load(f)


def similar_text(row):
    return "\n".join(row.get("similar") or [])


def tags_text(row):
    tags = row.get("tags")
    if isinstance(tags, list):
        return ",".join(tags)
    return tags or ""


def write_csv(rows):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        if isinstance(row, dict):
            writer.writerow(
                [
                    row.get("question", ""),
                    row.get("answer", ""),
                    similar_text(row),
                    tags_text(row),
                    row.get("updated_at", ""),
                ]
            )
        else:
            # Broken quoting on purpose: fields joined without quotes, one comma too many.
            # The array is [question, answer (cut at its comma), tags, updated_at]; an empty
            # similar cell goes before the tags, as in the header.
            fields = [str(x) for x in row]
            fields.insert(len(fields) - 2, "")
            buf.write(",".join(fields) + "\n")
    with open(os.path.join(HERE, "faq.csv"), "w", encoding="utf-8-sig", newline="") as f:
        f.write(buf.getvalue())


def write_sqlite(rows):
    path = os.path.join(HERE, "faq.sqlite")
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE faq_table (question TEXT, answer TEXT, similar TEXT, tags TEXT, updated_at TEXT)"
    )
    for row in rows:
        if not isinstance(row, dict):
            continue
        db.execute(
            "INSERT INTO faq_table (question, answer, similar, tags, updated_at) VALUES (?, ?, ?, ?, ?)",
            (
                row.get("question"),
                row.get("answer"),
                similar_text(row) or None,
                tags_text(row) or None,
                row.get("updated_at"),
            ),
        )
    db.commit()
    db.execute("VACUUM")
    db.close()


def main():
    rows = load()
    write_csv(rows)
    write_sqlite(rows)
    objects = sum(isinstance(r, dict) for r in rows)
    print(f"faq.json: {len(rows)} elements ({objects} objects); wrote faq.csv and faq.sqlite")


if __name__ == "__main__":
    main()
