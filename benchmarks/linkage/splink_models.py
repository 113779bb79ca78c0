"""The Splink models the linkage benchmarks run, written by hand after Splink's FEBRL
tutorial: one place, so that every script compares `unavoce link` with the same Splink.

Imported by `febrl_vs_splink.py`, `febrl_like_vs_splink.py` and `generated_vs_splink.py`
(Python puts the running script's folder on the import path).
"""


def prepared(data, id_column):
    """`data` (a pandas DataFrame of strings) with its ids as `unique_id` and blank or
    padded values made missing, as Splink wants them."""
    data = data.rename(columns={id_column: "unique_id"})
    for column in data.columns:
        data[column] = data[column].astype("string").str.strip().replace("", None)
    return data


def read_csv(path, id_column):
    """A CSV file as strings, [`prepared`]."""
    import pandas as pd

    return prepared(pd.read_csv(path, dtype=str, keep_default_na=False), id_column)


def _trained(data, blocking, comparisons, prior_rules, em_rules):
    from splink import DuckDBAPI, Linker, SettingsCreator

    db_api = DuckDBAPI()
    settings = SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=blocking,
        comparisons=comparisons,
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(db_api.register(data), settings, log_level=None)
    linker.training.estimate_probability_two_random_records_match(prior_rules, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    for rule in em_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    return linker


def febrl_linker(data):
    """A trained Splink linker over FEBRL-shaped `data` (see [`prepared`])."""
    import splink.comparison_library as cl
    from splink import block_on

    return _trained(
        data,
        blocking=[
            block_on("given_name", "surname"),
            block_on("date_of_birth"),
            block_on("soc_sec_id"),
            block_on("surname", "postcode"),
            block_on("given_name", "street_number"),
        ],
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]),
            cl.ExactMatch("street_number"),
            cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("address_2", [0.9, 0.7]),
            cl.ExactMatch("suburb").configure(term_frequency_adjustments=True),
            cl.ExactMatch("state"),
        ],
        prior_rules=[
            block_on("soc_sec_id", "date_of_birth"),
            block_on("given_name", "surname", "date_of_birth"),
        ],
        em_rules=[block_on("given_name", "surname"), block_on("date_of_birth")],
    )


def generated_linker(data):
    """A trained Splink linker over `unavoce bench link --write` people (see [`prepared`])."""
    import splink.comparison_library as cl
    from splink import block_on

    return _trained(
        data,
        blocking=[
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
        prior_rules=[block_on("first_name", "surname", "date_of_birth")],
        em_rules=[block_on("first_name", "surname"), block_on("date_of_birth")],
    )
