"""Splink on the file `unavoce bench link --write FILE` generated, for the same figures.

    ./target/release/unavoce bench link --people 750000 --write /tmp/people.csv
    /tmp/linkenv/bin/python benchmarks/linkage/generated_vs_splink.py /tmp/people.csv

The truth is in the ids: `pN-dup` is a typo'd copy of `pN`. A pair counts as predicted
at probability >= 0.5. The time includes reading the file, training and scoring.
"""

import resource
import sys
import time

import pandas as pd


def main(path):
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    started = time.perf_counter()
    data = pd.read_csv(path, dtype=str, keep_default_na=False).rename(columns={"id": "unique_id"})
    for column in data.columns:
        data[column] = data[column].str.strip().replace("", None)
    db_api = DuckDBAPI()
    table = db_api.register(data)
    settings = SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[
            block_on("first_name", "surname"),
            block_on("date_of_birth"),
            block_on("surname", "postcode"),
            block_on("first_name", "postcode"),
        ],
        comparisons=[
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]),
        ],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(table, settings, log_level=None)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("first_name", "surname", "date_of_birth")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("first_name", "surname"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
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
