"""FEBRL-shaped people with duplicates, written independently of `unavoce-synthetic`.

    python3 benchmarks/linkage/make_febrl_like.py --records 1000000 --seed 1 \
        --mix typo=4,swap=1,blank=2,digits=3 --out /tmp/febrl_like_1.csv

Columns as FEBRL's: rec_id, given_name, surname, street_number, address_1, address_2,
suburb, postcode, state, date_of_birth, soc_sec_id. About `--dup-share` (default 30 %) of
the records are duplicates of another one, with one to three corruptions each, drawn by
the weights of `--mix`:

- typo: one character inserted, deleted, substituted or two neighbours transposed, in a
  text or name field;
- swap: given name and surname exchanged;
- blank: a field emptied;
- digits: one or two digits of a number (street number, postcode, date of birth, social
  security id) changed or transposed;
- phonetic: a name spelled another way (ph/f, c/k, y/i, doubled letters);
- nickname: the given name shortened to its first three to five letters.

The truth is in the ids, as in FEBRL: `rec-N-org` and `rec-N-dup-k` are the same person.
Names, streets and suburbs are made from syllables with Zipf-like frequencies (a few
common surnames, a long tail), suburbs tied to a postcode and a state, so that the
blocking and term-frequency questions look like real data.
"""

import argparse
import csv
import random
import sys

CONSONANTS = "bcdfghjklmnprstvwz"
VOWELS = "aeiouy"
ONSETS = ["b", "br", "c", "ch", "cl", "d", "dr", "f", "g", "gr", "h", "j", "k", "l", "m",
          "mc", "n", "p", "pr", "r", "s", "sh", "st", "t", "th", "tr", "v", "w", "wh", "z"]
CODAS = ["", "", "", "n", "r", "s", "l", "t", "m", "ck", "th", "nd", "rt", "ll", "ss", "y"]
STREET_TYPES = ["street", "road", "avenue", "place", "crescent", "drive", "close",
                "circuit", "parade", "lane", "court", "terrace"]
STATES = [("nsw", 0.32), ("vic", 0.26), ("qld", 0.20), ("wa", 0.10), ("sa", 0.07),
          ("tas", 0.02), ("act", 0.02), ("nt", 0.01)]
ADDRESS_2_WORDS = ["villa", "house", "court", "gardens", "retirement village",
                   "homestead", "farm", "apartments", "lodge", "park"]


def word(rng, syllables):
    parts = []
    for _ in range(syllables):
        parts.append(rng.choice(ONSETS) + rng.choice(VOWELS))
    return "".join(parts) + rng.choice(CODAS)


def vocabulary(rng, size, min_syll, max_syll):
    seen, out = set(), []
    while len(out) < size:
        w = word(rng, rng.randint(min_syll, max_syll))
        if len(w) >= 3 and w not in seen:
            seen.add(w)
            out.append(w)
    return out


def zipf_weights(n, s):
    """Cumulative Zipf weights, for `random.choices(cum_weights=...)`."""
    total, out = 0.0, []
    for k in range(n):
        total += 1.0 / (k + 1) ** s
        out.append(total)
    return out


class Pools:
    def __init__(self, rng, records):
        self.given = vocabulary(rng, 4_000, 2, 3)
        self.given_w = zipf_weights(len(self.given), 1.0)
        surnames = max(20_000, records // 8)
        self.surname = vocabulary(rng, surnames, 2, 4)
        self.surname_w = zipf_weights(len(self.surname), 0.85)
        self.street = vocabulary(rng, 15_000, 2, 3)
        self.street_w = zipf_weights(len(self.street), 0.7)
        # Suburbs, each with its postcode and state.
        suburbs = vocabulary(rng, 6_000, 2, 4)
        state_names = [s for s, _ in STATES]
        state_w = [w for _, w in STATES]
        self.suburbs = []
        for name in suburbs:
            # As in Australia, a postcode may cover several suburbs of its state.
            state = rng.choices(state_names, state_w)[0]
            base = {"nsw": 2000, "act": 2600, "vic": 3000, "qld": 4000, "sa": 5000,
                    "wa": 6000, "tas": 7000, "nt": 800}[state]
            postcode = base + rng.randint(0, 999 if state != "act" else 99)
            self.suburbs.append((name, f"{postcode:04d}", state))
        self.suburb_w = zipf_weights(len(self.suburbs), 0.6)


def person(rng, pools, ssn):
    suburb, postcode, state = rng.choices(pools.suburbs, cum_weights=pools.suburb_w)[0]
    year = rng.randint(1925, 2005)
    month = rng.randint(1, 12)
    day = rng.randint(1, 28 if month == 2 else 30 if month in (4, 6, 9, 11) else 31)
    number = max(1, int(rng.lognormvariate(2.8, 1.2)))
    return {
        "given_name": rng.choices(pools.given, cum_weights=pools.given_w)[0] if rng.random() > 0.02 else "",
        "surname": rng.choices(pools.surname, cum_weights=pools.surname_w)[0] if rng.random() > 0.01 else "",
        "street_number": str(min(number, 9999)) if rng.random() > 0.03 else "",
        "address_1": rng.choices(pools.street, cum_weights=pools.street_w)[0] + " " + rng.choice(STREET_TYPES),
        "address_2": (word(rng, 2) + " " + rng.choice(ADDRESS_2_WORDS)) if rng.random() < 0.35 else "",
        "suburb": suburb,
        "postcode": postcode,
        "state": state if rng.random() > 0.05 else "",
        "date_of_birth": f"{year:04d}{month:02d}{day:02d}" if rng.random() > 0.02 else "",
        "soc_sec_id": str(ssn),
    }


TEXT_FIELDS = ["given_name", "surname", "address_1", "address_2", "suburb"]
DIGIT_FIELDS = ["street_number", "postcode", "date_of_birth", "soc_sec_id"]
ALL_FIELDS = TEXT_FIELDS + DIGIT_FIELDS + ["state"]


def typo(rng, value):
    if not value:
        return value
    i = rng.randrange(len(value))
    kind = rng.randrange(4)
    letters = "abcdefghijklmnopqrstuvwxyz"
    if kind == 0:
        return value[:i] + rng.choice(letters) + value[i:]
    if kind == 1 and len(value) > 1:
        return value[:i] + value[i + 1:]
    if kind == 2:
        return value[:i] + rng.choice(letters) + value[i + 1:]
    if i + 1 < len(value):
        return value[:i] + value[i + 1] + value[i] + value[i + 2:]
    return value[:i] + rng.choice(letters) + value[i + 1:]


def change_digits(rng, value):
    if not value:
        return value
    chars = list(value)
    positions = [i for i, c in enumerate(chars) if c.isdigit()]
    if not positions:
        return value
    if rng.random() < 0.3 and len(positions) > 1:
        i = rng.randrange(len(positions) - 1)
        a, b = positions[i], positions[i + 1]
        chars[a], chars[b] = chars[b], chars[a]
    else:
        for _ in range(1 if rng.random() < 0.75 else 2):
            i = rng.choice(positions)
            chars[i] = str(rng.randrange(10))
    return "".join(chars)


PHONETIC = [("ph", "f"), ("f", "ph"), ("c", "k"), ("k", "c"), ("y", "i"), ("i", "y"),
            ("ll", "l"), ("l", "ll"), ("ss", "s"), ("s", "ss"), ("th", "t"), ("ck", "k")]


def phonetic(rng, value):
    options = [(a, b) for a, b in PHONETIC if a in value]
    if not options:
        return typo(rng, value)
    a, b = rng.choice(options)
    return value.replace(a, b, 1)


def corrupt(rng, record, kind):
    if kind == "typo":
        field = rng.choice(TEXT_FIELDS)
        record[field] = typo(rng, record[field])
    elif kind == "swap":
        record["given_name"], record["surname"] = record["surname"], record["given_name"]
    elif kind == "blank":
        field = rng.choice(ALL_FIELDS)
        record[field] = ""
    elif kind == "digits":
        field = rng.choice(DIGIT_FIELDS)
        record[field] = change_digits(rng, record[field])
    elif kind == "phonetic":
        field = rng.choice(["given_name", "surname"])
        record[field] = phonetic(rng, record[field])
    elif kind == "nickname":
        if len(record["given_name"]) > 4:
            record["given_name"] = record["given_name"][: rng.randint(3, 4)]
        else:
            record["given_name"] = typo(rng, record["given_name"])


def parse_mix(text):
    mix = {}
    for part in text.split(","):
        name, weight = part.split("=")
        if name not in {"typo", "swap", "blank", "digits", "phonetic", "nickname"}:
            raise SystemExit(f"unknown corruption {name!r}")
        mix[name] = float(weight)
    return mix


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mix", default="typo=4,swap=1,blank=2,digits=3")
    parser.add_argument("--dup-share", type=float, default=0.3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    mix = parse_mix(args.mix)
    kinds, weights = list(mix), list(mix.values())
    pools = Pools(rng, args.records)

    duplicates = int(args.records * args.dup_share)
    originals = args.records - duplicates
    # Each duplicate copies a distinct original, or one already copied (up to 3 copies).
    copies = {}
    candidates = list(range(originals))
    rng.shuffle(candidates)
    cursor = 0
    for _ in range(duplicates):
        if copies and rng.random() < 0.15:
            target = rng.choice(candidates[: max(cursor, 1)])
            if copies.get(target, 0) >= 3:
                target = candidates[cursor]
                cursor += 1
        else:
            target = candidates[cursor]
            cursor += 1
        copies[target] = copies.get(target, 0) + 1

    ssns = rng.sample(range(1_000_000, 9_999_999), originals)
    rows = []
    for index in range(originals):
        record = person(rng, pools, ssns[index])
        rows.append((f"rec-{index}-org", record))
        for k in range(copies.get(index, 0)):
            dup = dict(record)
            for kind in rng.choices(kinds, weights, k=rng.choices([1, 2, 3], [0.5, 0.35, 0.15])[0]):
                corrupt(rng, dup, kind)
            rows.append((f"rec-{index}-dup-{k}", dup))
    rng.shuffle(rows)
    columns = ["given_name", "surname", "street_number", "address_1", "address_2",
               "suburb", "postcode", "state", "date_of_birth", "soc_sec_id"]
    with open(args.out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rec_id"] + columns)
        for rid, record in rows:
            writer.writerow([rid] + [record[c] for c in columns])
    print(f"{len(rows)} records, {duplicates} duplicates of {len(copies)} people -> {args.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
