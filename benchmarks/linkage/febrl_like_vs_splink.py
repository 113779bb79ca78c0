"""`unavoce link` against Splink on FEBRL-shaped files (`make_febrl_like.py`), in one run.

    cargo build --release
    python3 benchmarks/linkage/make_febrl_like.py --records 1000000 --seed 1 --out /tmp/fl1.csv
    /tmp/linkenv/bin/python benchmarks/linkage/febrl_like_vs_splink.py /tmp/fl1.csv \
        [--unavoce target/release/unavoce --unavoce /tmp/unavoce-baseline] [--no-splink]

Each tool runs in its own process, one after the other, on the same file; the time is the
wall clock from start to exit (reading the file, training, scoring, writing the pairs)
and the peak memory that process's maximum resident set (`wait4`). `unavoce link` runs
with no settings file, as a new user would; Splink with the model of
`febrl_vs_splink.py` (written by hand after Splink's FEBRL tutorial). The truth is in
the ids: `rec-N-org` and `rec-N-dup-k` are the same person. A pair counts as predicted
at probability >= 0.5. The load average is printed with each run.
"""

import argparse
import csv
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time


def truth_of(path):
    people = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            rid = row["rec_id"]
            people.setdefault(re.match(r"rec-(\d+)-", rid).group(1), []).append(rid)
    return {tuple(sorted(p)) for ids in people.values() for p in itertools.combinations(ids, 2)}


def quality(truth, predicted):
    hits = len(truth & predicted)
    precision = hits / max(len(predicted), 1)
    recall = hits / max(len(truth), 1)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-9)


def measured(command, stdout=None):
    """Runs `command`; returns (seconds, peak MiB, stderr text)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command} failed:\n{stderr}")
    return elapsed, usage.ru_maxrss / 1024, stderr


def read_pairs(path):
    with open(path) as f:
        return {tuple(sorted((r["id_l"], r["id_r"]))) for r in csv.DictReader(f)
                if float(r["match_probability"]) >= 0.5}


def run_splink(path, output):
    """In its own process: Splink on `path`, the pairs at >= 0.5 written to `output`."""
    from splink_models import febrl_linker, read_csv

    linker = febrl_linker(read_csv(path, "rec_id"))
    scored = linker.inference.predict(threshold_match_probability=0.5).as_pandas_dataframe()
    with open(output, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id_l", "id_r", "match_probability"])
        for a, b, p in zip(scored["unique_id_l"], scored["unique_id_r"], scored["match_probability"]):
            writer.writerow([a, b, p])


def load():
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--unavoce", action="append",
                        help="unavoce binaries to compare (default target/release/unavoce)")
    parser.add_argument("--no-splink", action="store_true")
    parser.add_argument("--splink-only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.splink_only:
        return run_splink(args.files[0], args.splink_only)
    binaries = args.unavoce or [os.environ.get("UNAVOCE_BIN", "target/release/unavoce")]
    print("| file | records | true pairs | tool | precision | recall | F1 | candidate pairs | seconds | peak MiB | load before |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for path in args.files:
        truth = truth_of(path)
        with open(path) as f:
            records = sum(1 for _ in f) - 1
        runs = []
        with tempfile.TemporaryDirectory() as workdir:
            output = os.path.join(workdir, "pairs.csv")
            for binary in binaries:
                before = load()
                elapsed, peak, stderr = measured(
                    [binary, "link", path, "--id-column", "rec_id", "--output", output])
                found = re.search(r"([\d,]+) candidate pairs", stderr)
                candidates = found.group(1) if found else "?"
                sys.stderr.write(stderr)
                runs.append((binary, read_pairs(output), elapsed, peak, candidates, before))
            if not args.no_splink:
                before = load()
                elapsed, peak, _ = measured(
                    [sys.executable, __file__, path, "--splink-only", output])
                runs.append(("Splink", read_pairs(output), elapsed, peak, "", before))
        for tool, predicted, elapsed, peak, candidates, before in runs:
            p, r, f1 = quality(truth, predicted)
            print(f"| {os.path.basename(path)} | {records:,} | {len(truth):,} | {tool} | {p:.4f} | "
                  f"{r:.4f} | {f1:.4f} | {candidates} | {elapsed:.1f} | {peak:,.0f} | {before} |",
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())
