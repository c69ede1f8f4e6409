"""Quality signals: MinHash near-duplicates, junk flags, and the baseline curator policy."""

import json
import random

import numpy as np
import pytest

from workers.data import SAMPLES_DIR, CuratorPolicy, MinHashIndex, MinHashParams, compute_signals, corpus_index
from workers.data.quality import (
    PerplexityStats,
    earlier_near_duplicates,
    minhash_signatures,
    record_junk,
    sample_indices,
    word_like,
)

GOOD = SAMPLES_DIR / "good.jsonl"
JUNK = SAMPLES_DIR / "junk.jsonl"


def good_texts():
    return [json.loads(line)["text"] for line in GOOD.read_text().splitlines()]


def edit(text: str, rng: random.Random, changes: int = 1) -> str:
    """A small edit: `changes` words replaced, plus case and punctuation noise."""
    words = text.split()
    for _ in range(changes):
        words[rng.randrange(len(words))] = rng.choice(["indeed", "roughly", "notably", "also"])
    return " ".join(words).replace(",", "").lower()


def unrelated_texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    vocab = [
        f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ro", "su", "ti") for b in ("ba", "de", "fo", "gu", "hi")
    ]
    return [" ".join(rng.choice(vocab) for _ in range(40)) for _ in range(n)]


# ---------------------------------------------------------------- MinHash


def test_minhash_estimates_jaccard():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5000)]
    errors = []
    for _ in range(100):
        base = [rng.choice(vocab) for _ in range(200)]
        other = list(base)
        for _ in range(rng.randint(0, 60)):
            other[rng.randrange(200)] = rng.choice(vocab)
        shingles = [{tuple(words[i : i + 5]) for i in range(196)} for words in (base, other)]
        truth = len(shingles[0] & shingles[1]) / len(shingles[0] | shingles[1])
        signatures = minhash_signatures([" ".join(base), " ".join(other)])
        errors.append((signatures[0] == signatures[1]).mean() - truth)
    errors = np.array(errors)
    assert abs(errors.mean()) < 0.02 and errors.std() < 0.06


def test_minhash_is_deterministic_and_ignores_case_and_punctuation():
    texts = good_texts()[:5]
    first = minhash_signatures(texts)
    assert first.shape == (5, 128) and first.dtype == np.uint32
    assert np.array_equal(first, minhash_signatures(texts))
    assert np.array_equal(minhash_signatures([texts[0].upper().replace(",", "")]), first[:1])
    # Independent of how the texts are chunked.
    assert np.array_equal(minhash_signatures(texts, chunk_shingles=7), first)
    # Pinned, so that nodes running other numpy versions can be checked against it.
    assert first[0, :4].tolist() == PINNED_SIGNATURE


PINNED_SIGNATURE = [58835653, 46789730, 15395442, 129024534]


def test_short_and_wordless_records_get_signatures():
    signatures = minhash_signatures(["hi", "hi there", "!!!", "???", "hi"])
    assert np.array_equal(signatures[0], signatures[4])
    assert not np.array_equal(signatures[0], signatures[1])
    assert not np.array_equal(signatures[2], signatures[3])


def test_corpus_near_duplicate_rate_high_for_edited_copy_low_for_unrelated():
    rng = random.Random(1)
    corpus = good_texts()
    index = MinHashIndex.from_texts(corpus)
    edited = [edit(text, rng, changes=1) for text in corpus]
    match, similarity = index.best_matches(minhash_signatures(edited))
    threshold = MinHashParams().threshold
    assert (similarity >= threshold).mean() >= 0.9
    assert np.array_equal(match[similarity >= threshold], np.nonzero(similarity >= threshold)[0])  # the right one
    _, similarity = index.best_matches(minhash_signatures(unrelated_texts(50)))
    assert (similarity >= threshold).mean() == 0


def test_signals_against_a_corpus(write):
    rng = random.Random(2)
    corpus = corpus_index([GOOD])
    assert len(corpus) == 52 and corpus.labels[0] == "good.jsonl:1"
    copy = "".join(json.dumps({"text": edit(text, rng)}) + "\n" for text in good_texts())
    signals = compute_signals(write(copy.encode()), corpus=corpus)
    assert signals.near_duplicate_rate_corpus >= 0.9 and signals.corpus_records == 52
    assert signals.near_duplicates[0]["duplicate_of"].startswith("corpus:good.jsonl:")
    fresh = "".join(json.dumps({"text": text}) + "\n" for text in unrelated_texts(30))
    assert compute_signals(write(fresh.encode(), "fresh.jsonl"), corpus=corpus).near_duplicate_rate_corpus == 0.0


def test_corpus_folder_is_read_recursively(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.jsonl").write_text('{"text": "one two three four five six"}\n')
    (tmp_path / "two.jsonl").write_text('{"text": "seven eight nine ten eleven"}\n[]\n')
    (tmp_path / "notes.txt").write_text("not a dataset")
    index = corpus_index([tmp_path])
    assert len(index) == 2 and index.labels == ["one.jsonl:1", "two.jsonl:1"]


def test_internal_near_duplicates():
    rng = random.Random(3)
    texts = good_texts()[:20]
    texts_with_copies = texts + [edit(texts[i], rng) for i in (4, 9, 4)] + unrelated_texts(5)
    earlier = earlier_near_duplicates(minhash_signatures(texts_with_copies))
    assert earlier.tolist() == [-1] * 20 + [4, 9, 4] + [-1] * 5


def test_many_copies_stay_linear():
    texts = ["the same spam message repeated again and again for everyone"] * 3000 + unrelated_texts(100)
    earlier = earlier_near_duplicates(minhash_signatures(texts))
    assert (earlier[1:3000] == 0).all() and earlier[0] == -1 and (earlier[3000:] == -1).all()


# ---------------------------------------------------------------- junk


@pytest.mark.parametrize(
    "token, expected",
    [
        ("water", True),
        ("Water,", True),
        ("(1953)", True),
        ("3.14159", True),
        ("1,480", True),
        ("42%", True),
        ("1990s", True),
        ("10km", True),
        ("X-ray", True),
        ("COVID-19", True),
        ("TCP/IP,", True),
        ("iPhone", True),
        ("McDonald", True),
        ("Armstrong", True),
        ("don't", True),
        ("CO2", True),
        ("NaCl", True),
        ("Mr", True),
        ("HTML", True),
        ("caf\u00e9", True),
        ("\u0432\u043e\u0434\u0430", True),
        ("xkqzvb", False),
        ("qwrtpsdf", False),
        ("xKqPzR", False),
        ("a8#kd!", False),
        ("zzzzz", False),
        ("aaaargh", False),
        ("q8w9e7", False),
        ("...", None),
        ("\u2014", None),
        ("+", None),
    ],
)
def test_word_like(token, expected):
    assert word_like(token) is expected


@pytest.mark.parametrize(
    "text, reason",
    [
        ("xq zptk vbrw qlmn krtsv dfgh jklm wrtz pqxv nmbv cvbx", "tokens look like words"),
        ("xq zp kt vb rw ql mn kr ts vd fg jk lm wr tz pq xv nm", "vowel share"),
        ("#@$ %^& *~| <>{} `\\ ^^^ ### @@@ $$$ word", "tokens look like words"),
        ("buy now buy now buy now buy now buy now buy now buy now buy now", "3-grams are repeats"),
        ("BUY CHEAP TOKENS NOW, THE BEST DEAL EVER, LIMITED OFFER, ONLY FIVE LEFT", "capitals"),
    ],
)
def test_junk_flags(text, reason):
    flag = record_junk(text).flag
    assert flag is not None and reason in flag, flag


def test_clean_text_is_not_flagged():
    flags = [record_junk(text).flag for text in good_texts()]
    assert flags == [None] * len(flags)


def test_random_character_gibberish_is_flagged():
    rng = random.Random(4)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&*+-/<=>?@^_~   "
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(40, 200))) for _ in range(200)]
    flagged = sum(record_junk(text).flag is not None for text in texts)
    assert flagged / len(texts) >= 0.95


# ---------------------------------------------------------------- signals and policy


def test_signals_of_the_samples_are_json_and_deterministic():
    good, junk = compute_signals(GOOD), compute_signals(JUNK)
    assert json.loads(json.dumps(good.to_dict())) == good.to_dict()
    assert compute_signals(GOOD) == good
    assert good.records == 52 and good.gibberish_rate == 0 and good.near_duplicate_rate_internal == 0
    assert good.source_fraction == 1 and good.subjective_rate == 0 and good.near_duplicate_rate_corpus is None
    assert junk.gibberish_rate > 0.5 and junk.near_duplicate_rate_internal > 0.2
    assert junk.flagged and all(set(item) == {"line", "reason"} for item in junk.flagged)


def test_policy_scores_junk_low_and_clean_high(write):
    policy = CuratorPolicy()
    good = policy.score(compute_signals(GOOD))
    junk = policy.score(compute_signals(JUNK, corpus=corpus_index([GOOD])))
    assert all(score >= 90 for score in good.as_list()), good
    assert all(score <= 30 for score in junk.as_list()), junk
    assert all(g > j for g, j in zip(good.as_list(), junk.as_list(), strict=True))
    # Duplicates alone, and gibberish alone, each pull every score down.
    rng = random.Random(5)
    texts = good_texts()[:20]
    repeats = texts + [edit(texts[i % 20], rng) for i in range(40)]
    dup_scores = policy.score(
        compute_signals(
            write("".join(json.dumps({"text": t, "source": "s"}) + "\n" for t in repeats).encode(), "dups.jsonl")
        )
    )
    assert max(dup_scores.as_list()) <= 40, dup_scores
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789#$%&*   "
    noise = ["".join(rng.choice(alphabet) for _ in range(120)) for _ in range(40)] + texts
    noise_scores = policy.score(
        compute_signals(
            write("".join(json.dumps({"text": t, "source": "s"}) + "\n" for t in noise).encode(), "noise.jsonl")
        )
    )
    assert max(noise_scores.as_list()) <= 40, noise_scores


def test_policy_is_a_pure_function_of_the_signals():
    signals = compute_signals(GOOD)
    assert CuratorPolicy().score(signals) == CuratorPolicy().score(signals)
    assert CuratorPolicy().score(signals).as_list() == [100, 100, 100, 95, 100]
    fluent = PerplexityStats(mean=15.0, median=15.0, per_record=[15.0], tokens=10)
    babble = PerplexityStats(mean=5000.0, median=5000.0, per_record=[5000.0], tokens=10)
    halfway = PerplexityStats(mean=141.4, median=(20 * 1000) ** 0.5, per_record=[141.4], tokens=10)
    policy = CuratorPolicy()
    assert policy.score(_with(signals, perplexity=fluent)).truthfulness == 95
    assert policy.score(_with(signals, perplexity=babble)).truthfulness == 0
    assert policy.score(_with(signals, perplexity=halfway)).truthfulness == 47
    assert policy.score(_with(signals, near_duplicate_rate_corpus=0.25)).novelty == 75
    assert policy.score(_with(signals, invalid_lines=52)).as_list() == [50, 50, 50, 47, 50]


def _with(signals, **changes):
    import dataclasses

    return dataclasses.replace(signals, **changes)


def test_signals_skip_and_count_invalid_lines(jsonl):
    data = jsonl({"text": "A valid record about rivers and the sea in 1990."}, b"not json", {"text": 3})
    signals = compute_signals(data)
    assert signals.records == 1 and signals.invalid_lines == 2


def test_sample_indices():
    assert sample_indices(5, None) == [0, 1, 2, 3, 4]
    assert sample_indices(5, 10) == [0, 1, 2, 3, 4]
    assert sample_indices(10, 4) == [0, 2, 5, 7]
