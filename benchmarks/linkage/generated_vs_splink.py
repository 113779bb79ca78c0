"""Splink on the file `unavoce bench link --write FILE` generated, for the same figures.

    ./target/release/unavoce bench link --people 750000 --write /tmp/people.csv
    /tmp/linkenv/bin/python benchmarks/linkage/generated_vs_splink.py /tmp/people.csv

The truth is in the ids: `pN-dup` is a typo'd copy of `pN`. A pair counts as predicted
at probability >= 0.5. The time includes reading the file, training and scoring.
"""

import resource
import sys
import time



def main(path):
    from splink_models import generated_linker, read_csv

    started = time.perf_counter()
    data = read_csv(path, "id")
    linker = generated_linker(data)
    scored = linker.inference.predict(threshold_match_probability=0.5).as_pandas_dataframe()
    elapsed = time.perf_counter() - started

    predicted = {tuple(sorted(p)) for p in zip(scored["unique_id_l"], scored["unique_id_r"])}
    truth = {tuple(sorted((i[:-4], i))) for i in data["unique_id"] if i.endswith("-dup")}
    hits = len(truth & predicted)
    precision = hits / max(len(predicted), 1)
    recall = hits / max(len(truth), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| tool | precision | recall | F1 | seconds | peak MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| Splink | {precision:.4f} | {recall:.4f} | {f1:.4f} | {elapsed:.1f} | {peak:.0f} |")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
