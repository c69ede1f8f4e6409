"""Quality signals that help a curator score a dataset, and a baseline policy turning them into scores.

Signals (all deterministic: same data, same numbers, on every node):

1. Near-duplicates, by MinHash over word shingles (pure numpy). A record's words are the runs of word
   characters of its `comparison_form` (NFKC, casefolded, default-ignorable code points such as the soft
   hyphen removed: case, punctuation, compatibility-form and invisible-character edits are invisible); its
   shingles are the runs of `shingle_words` consecutive words (a shorter record is one shingle). Each shingle gets a
   64-bit hash (blake2b per distinct word, combined per position, then a splitmix64 finaliser), and each
   of `num_perm` seeded permutations maps it to the top 32 bits of `a*h + b mod 2**64` (odd `a`). Two
   records are near-duplicates when the fraction of equal signature slots (an estimate of the Jaccard
   similarity of their shingle sets) is at least `threshold`. LSH banding (`bands` bands of
   num_perm/bands rows, found by sorting band keys, no Python loop over records) proposes the candidate
   pairs that are then checked. `near_duplicate_rate_internal` is the share of records that repeat an
   earlier record of the same dataset; `near_duplicate_rate_corpus` the share that repeat a record of an
   already-accepted corpus.
2. Junk, without a model: a record is flagged when any of these holds (thresholds in `JunkParams`):
   fewer than 60% of its tokens look like words; the vowel share of its ASCII letters is outside
   0.25..0.65 (random letters give ~0.23, English ~0.38); over 15% of its characters are symbols
   (not letters, digits, spaces or common punctuation); over half of its word 3-grams are repeats; its
   character entropy is under 2.5 bits; or over 70% of its letters are capitals (shouting). A token looks
   like a word when, stripped of surrounding punctuation, it is a number (1969, 3.14, 42%, 1990s, 10km)
   or letters (internal ' and - allowed) with a sane case pattern, no letter three times in a row, at
   most 25 letters, and, for ASCII, a vowel (a e i o u y; acronyms up to 5 capitals and words of up to
   2 letters excepted) and no run of 6 consonants. The heuristics are tuned for Latin-script languages;
   tokens of other scripts count as words when they are letters. `gibberish_rate` is the flagged share.
3. Perplexity under a causal LM, when one is given (`perplexity`), on a deterministic sample.

Also: `subjective_rate` (records with first-person or opinion words at >= 4% of their words, or an
exclamation mark), `quantified_rate` (records stating a number: a date, count or measurement, i.e. a
claim one can check) and `source_fraction` / `license_fraction` (provenance given).

`CuratorPolicy` maps the signals to the five on-chain scores; its docstring gives the formulas.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..protocol.constants import CRITERIA_NAMES
from .manifest import approx_tokens
from .records import DEFAULT_LIMITS, Limits, Record, Source, comparison_form, read_records

# ---------------------------------------------------------------- MinHash

_U64 = np.uint64
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class MinHashParams:
    """MinHash/LSH settings. Every node must use the same ones for the signals to agree."""

    num_perm: int = 128
    shingle_words: int = 5
    #: 32 bands of 4 rows: a pair at Jaccard 0.5 becomes a candidate with probability 0.87, at 0.6 0.98,
    #: at 0.7 > 0.999, and one at 0.1 with 0.003 (few useless candidates to check)
    bands: int = 32
    #: estimated Jaccard similarity from which two records are near-duplicates: half of the 5-word
    #: sequences shared is already a copy (one word changed in a 20-word record gives ~0.5)
    threshold: float = 0.5
    seed: str = "deepshard-minhash-v1"

    def __post_init__(self) -> None:
        if self.num_perm % self.bands:
            raise ValueError("num_perm must be a multiple of bands")
        if self.shingle_words < 1 or not 0 < self.threshold <= 1:
            raise ValueError("shingle_words must be >= 1 and threshold in (0, 1]")

    @property
    def rows(self) -> int:
        return self.num_perm // self.bands


def _seeded_u64(seed: str, label: str, count: int, *, odd: bool = False) -> np.ndarray:
    # Constants from blake2b, not from numpy's RNG, whose streams are not promised across versions.
    values = [
        int.from_bytes(hashlib.blake2b(f"{seed}/{label}/{i}".encode(), digest_size=8).digest(), "little")
        for i in range(count)
    ]
    out = np.array(values, dtype=_U64)
    return out | _U64(1) if odd else out


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the whole output (uint64 wraps, as intended)."""
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def shingle_words(text: str) -> list[str]:
    """The words MinHash sees: runs of word characters of the text's `comparison_form` (NFKC, casefolded,
    invisible characters removed), or that form itself if it has none."""
    folded = comparison_form(text)
    return _WORDS.findall(folded) or [folded]


def _shingle_hashes(texts: Sequence[str], params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    """(hash of every shingle of every text, per-text count of shingles); every text has at least one."""
    cache: dict[str, int] = {}
    person = params.seed.encode()[:16]

    def word_hash(word: str) -> int:
        value = int.from_bytes(
            hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8, person=person).digest(), "little"
        )
        cache[word] = value
        return value

    word_hashes: list[int] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    for index, text in enumerate(texts):
        words = shingle_words(text)
        lengths[index] = len(words)
        word_hashes.extend([cache[w] if w in cache else word_hash(w) for w in words])
    hashes = np.array(word_hashes, dtype=_U64)
    k = params.shingle_words
    counts = np.maximum(lengths - k + 1, 1)
    starts_of_text = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    ends = np.repeat(starts_of_text + lengths, counts)
    firsts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    starts = np.repeat(starts_of_text, counts) + (np.arange(counts.sum()) - np.repeat(firsts, counts))
    multipliers = _seeded_u64(params.seed, "position", k, odd=True)
    combined = np.zeros(len(starts), dtype=_U64)
    last = len(hashes) - 1
    for j in range(k):
        position = starts + j
        word = np.where(position < ends, hashes[np.minimum(position, last)], _U64(0))
        combined += word * multipliers[j]
    return _mix64(combined), counts


def minhash_signatures(
    texts: Sequence[str], params: MinHashParams = MinHashParams(), chunk_shingles: int = 1 << 11
) -> np.ndarray:
    """One MinHash signature per text: an (n, num_perm) uint32 array."""
    signatures = np.empty((len(texts), params.num_perm), dtype=np.uint32)
    if not texts:
        return signatures
    shingles, counts = _shingle_hashes(texts, params)
    a = _seeded_u64(params.seed, "a", params.num_perm, odd=True)
    b = _seeded_u64(params.seed, "b", params.num_perm)
    bounds = np.concatenate(([0], np.cumsum(counts)))
    text = 0
    while text < len(texts):
        # A chunk of whole texts holding about chunk_shingles shingles (at least one text).
        stop = max(int(np.searchsorted(bounds, bounds[text] + chunk_shingles, side="right")) - 1, text + 1)
        lo, hi = bounds[text], bounds[stop]
        values = shingles[lo:hi, None] * a[None, :]  # in place from here: these arrays are the big ones
        values += b[None, :]
        values >>= _U64(32)
        signatures[text:stop] = np.minimum.reduceat(values, bounds[text:stop] - lo, axis=0)
        text = stop
    return signatures


def _band_keys(signatures: np.ndarray, params: MinHashParams) -> np.ndarray:
    """(n, bands) uint64: one hash per band of rows."""
    n = len(signatures)
    rows = signatures.reshape(n, params.bands, params.rows).astype(_U64)
    weights = _seeded_u64(params.seed, "band", params.rows, odd=True)
    return _mix64((rows * weights).sum(axis=2, dtype=_U64))


def _similarity(left: np.ndarray, right: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int = 1 << 14) -> np.ndarray:
    """Share of equal signature slots of the pairs (left[i], right[j])."""
    out = np.empty(len(i), dtype=np.float64)
    for start in range(0, len(i), chunk):
        sl = slice(start, start + chunk)
        out[sl] = (left[i[sl]] == right[j[sl]]).mean(axis=1)
    return out


def earlier_near_duplicates(signatures: np.ndarray, params: MinHashParams = MinHashParams()) -> np.ndarray:
    """For each record, the index of an earlier record it near-duplicates (the smallest found), else -1.

    Candidates per band: records sharing the band key are sorted by index, and each is paired with the
    first of its group and with its predecessor, so the work stays linear even when thousands of records
    are copies of one another.
    """
    n = len(signatures)
    result = np.full(n, -1, dtype=np.int64)
    if n < 2:
        return result
    keys = _band_keys(signatures, params)
    index = np.arange(n)
    firsts, seconds = [], []
    for band in range(params.bands):
        order = np.lexsort((index, keys[:, band]))
        sorted_keys = keys[order, band]
        same = sorted_keys[1:] == sorted_keys[:-1]
        later = np.nonzero(same)[0] + 1
        if not len(later):
            continue
        run_start = np.concatenate(([True], ~same))
        run_first = order[np.nonzero(run_start)[0]][np.cumsum(run_start) - 1]
        firsts += [order[later - 1], run_first[later]]
        seconds += [order[later], order[later]]
    if not firsts:
        return result
    pair_codes = np.unique(np.concatenate(firsts) * n + np.concatenate(seconds))
    i, j = pair_codes // n, pair_codes % n
    close = _similarity(signatures, signatures, i, j) >= params.threshold
    best = np.full(n, n, dtype=np.int64)
    np.minimum.at(best, j[close], i[close])
    result[best < n] = best[best < n]
    return result


class MinHashIndex:
    """Signatures of an accepted corpus, searchable for near-duplicates of new records."""

    def __init__(
        self, signatures: np.ndarray, params: MinHashParams = MinHashParams(), labels: Sequence[str] | None = None
    ):
        self.params = params
        self.signatures = signatures
        self.labels = list(labels) if labels is not None else None
        keys = _band_keys(signatures, params)
        self._order = np.argsort(keys, axis=0, kind="stable")
        self._sorted = np.take_along_axis(keys, self._order, axis=0)

    @classmethod
    def from_texts(
        cls, texts: Sequence[str], params: MinHashParams = MinHashParams(), labels: Sequence[str] | None = None
    ) -> MinHashIndex:
        return cls(minhash_signatures(texts, params), params, labels)

    def __len__(self) -> int:
        return len(self.signatures)

    def best_matches(self, signatures: np.ndarray, per_band: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """(index of the most similar candidate in the corpus or -1, its estimated Jaccard) per query.

        At most `per_band` corpus records per band and query are checked: an accepted corpus holds few
        exact repeats, so this bounds the work without losing real matches.
        """
        n = len(signatures)
        best_index = np.full(n, -1, dtype=np.int64)
        best_similarity = np.zeros(n, dtype=np.float64)
        if not n or not len(self):
            return best_index, best_similarity
        keys = _band_keys(signatures, self.params)
        queries, candidates = [], []
        for band in range(self.params.bands):
            lo = np.searchsorted(self._sorted[:, band], keys[:, band], side="left")
            hi = np.searchsorted(self._sorted[:, band], keys[:, band], side="right")
            for offset in range(per_band):
                hit = np.nonzero(lo + offset < hi)[0]
                if not len(hit):
                    break
                queries.append(hit)
                candidates.append(self._order[lo[hit] + offset, band])
        if not queries:
            return best_index, best_similarity
        codes = np.unique(np.concatenate(queries) * len(self) + np.concatenate(candidates))
        q, c = codes // len(self), codes % len(self)
        similarity = _similarity(signatures, self.signatures, q, c)
        # Best per query: sort by (query, -similarity, corpus index) and keep each query's first.
        order = np.lexsort((c, -similarity, q))
        first = np.concatenate(([True], q[order][1:] != q[order][:-1]))
        chosen = order[first]
        best_index[q[chosen]] = c[chosen]
        best_similarity[q[chosen]] = similarity[chosen]
        return best_index, best_similarity


# ---------------------------------------------------------------- junk


@dataclass(frozen=True)
class JunkParams:
    """Thresholds of the junk flags (module docstring, signal 2)."""

    min_word_like_fraction: float = 0.6
    min_vowel_share: float = 0.25
    max_vowel_share: float = 0.65
    #: the vowel test needs this many ASCII letters
    vowel_min_letters: int = 30
    max_symbol_ratio: float = 0.15
    max_repeated_ngram_ratio: float = 0.5
    ngram_min_words: int = 10
    min_char_entropy_bits: float = 2.5
    entropy_min_chars: int = 40
    max_upper_ratio: float = 0.7
    upper_min_letters: int = 20


_EDGE_PUNCTUATION = "\"'()[]{}<>.,;:!?*«»“”‘’„…–—-_/+=&"
_NUMBER = re.compile(r"[$€£¥]?[+-]?\d[\d.,:/]*(?:%|[a-zA-Z]{1,3})?\Z")
_LETTERS = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*\Z")
_FORMULA = re.compile(r"(?:[A-Z][a-z]?\d{0,3}){1,5}\Z")  # H2O, CO2, NaCl
_COMPOUND = re.compile(r"[-/]")
_TRIPLE = re.compile(r"(.)\1\1")
_CONSONANT_RUN = re.compile(r"[bcdfghjklmnpqrstvwxz]{6}")  # Armstrong and strengths have 5
_VOWELS = set("aeiouy")
_SYMBOLS = re.compile(r"""[^\w\s.,;:!?'"()\[\]\-–—/%&’‘“”…$€£+=°]""")
_ASCII_LETTERS = string.ascii_letters.encode()
_ASCII_UPPER = string.ascii_uppercase.encode()
_ASCII_VOWELS = b"aeiouyAEIOUY"


def _word_like_part(token: str) -> bool:
    if _NUMBER.match(token):
        return True
    if not _LETTERS.match(token):
        return token.isascii() and bool(_FORMULA.match(token))
    if not token.isascii():
        return True  # another script: letters are all we can check
    letters = token.replace("'", "").replace("’", "")
    if len(letters) > 25 or _TRIPLE.search(letters.lower()):
        return False
    upper = sum(1 for ch in letters if ch.isupper())
    if token.isupper():
        return len(letters) <= 5 or not _lacks_vowel(letters)
    if upper > 2 or (upper and letters[0].islower() and upper > 1):
        return False  # random mixed case (xKqPz); iPhone and McDonald pass
    lower = letters.lower()
    if len(lower) <= 2:
        return True
    return not _lacks_vowel(lower) and not _CONSONANT_RUN.search(lower)


def _lacks_vowel(letters: str) -> bool:
    return not (_VOWELS & set(letters.lower()))


@functools.lru_cache(maxsize=1 << 16)  # natural text repeats its words: most lookups hit
def word_like(token: str) -> bool | None:
    """Whether a whitespace-separated token looks like a word; None if it is only punctuation."""
    core = token.strip(_EDGE_PUNCTUATION)
    if not core:
        return None
    if "-" in core or "/" in core:  # X-ray, COVID-19, TCP/IP: every part must pass
        return all(_word_like_part(part) for part in _COMPOUND.split(core) if part)
    return _word_like_part(core)


def char_entropy_bits(text: str) -> float:
    """Shannon entropy of the text's character distribution, in bits per character."""
    if not text:
        return 0.0
    total = len(text)
    return -sum(count / total * math.log2(count / total) for count in Counter(text).values())


@dataclass(frozen=True)
class RecordJunk:
    """Per-record junk features and the first flag raised (None when the record looks clean)."""

    word_like_fraction: float
    vowel_share: float | None
    symbol_ratio: float
    repeated_ngram_ratio: float
    char_entropy_bits: float
    upper_ratio: float | None
    flag: str | None


def record_junk(text: str, params: JunkParams = JunkParams()) -> RecordJunk:
    """Junk features of one normalised text (module docstring, signal 2)."""
    verdicts = [v for v in (word_like(token) for token in text.split()) if v is not None]
    word_fraction = sum(verdicts) / len(verdicts) if verdicts else 0.0
    data = text.encode("utf-8")
    letters = len(data) - len(data.translate(None, _ASCII_LETTERS))
    vowels = len(data) - len(data.translate(None, _ASCII_VOWELS))
    uppers = len(data) - len(data.translate(None, _ASCII_UPPER))
    vowel_share = vowels / letters if letters >= params.vowel_min_letters else None
    upper_ratio = uppers / letters if letters >= params.upper_min_letters else None
    visible = len(text) - text.count(" ") - text.count("\n")
    symbol_ratio = len(_SYMBOLS.findall(text)) / visible if visible else 0.0
    words = _WORDS.findall(text.casefold())
    if len(words) >= params.ngram_min_words:
        grams = list(zip(words, words[1:], words[2:], strict=False))  # trigrams: the shifted copies are shorter
        repeated = 1.0 - len(set(grams)) / len(grams)
    else:
        repeated = 0.0
    entropy = char_entropy_bits(text)

    if word_fraction < params.min_word_like_fraction:
        flag = f"only {word_fraction:.0%} of tokens look like words"
    elif vowel_share is not None and not params.min_vowel_share <= vowel_share <= params.max_vowel_share:
        flag = f"vowel share {vowel_share:.2f} of letters is unlike natural language"
    elif symbol_ratio > params.max_symbol_ratio:
        flag = f"{symbol_ratio:.0%} of characters are symbols"
    elif repeated > params.max_repeated_ngram_ratio:
        flag = f"{repeated:.0%} of word 3-grams are repeats"
    elif len(text) >= params.entropy_min_chars and entropy < params.min_char_entropy_bits:
        flag = f"character entropy {entropy:.2f} bits is too low"
    elif upper_ratio is not None and upper_ratio > params.max_upper_ratio:
        flag = f"{upper_ratio:.0%} of letters are capitals"
    else:
        flag = None
    return RecordJunk(word_fraction, vowel_share, symbol_ratio, repeated, entropy, upper_ratio, flag)


# ---------------------------------------------------------------- style and provenance

_SUBJECTIVE_WORDS = frozenset(
    "i me my mine myself we us our ours think believe feel felt love hate hated loved best worst amazing "
    "awesome terrible horrible awful wonderful beautiful ugly stupid favorite favourite incredible fantastic "
    "disgusting boring cool".split()
)
_DIGIT = re.compile(r"\d")


def is_subjective(text: str, min_density: float = 0.04) -> bool:
    """First-person or opinion words at >= min_density of the words, or an exclamation mark."""
    if "!" in text:
        return True
    words = _WORDS.findall(text.casefold())
    hits = sum(1 for word in words if word in _SUBJECTIVE_WORDS)
    return bool(words) and hits / len(words) >= min_density


# ---------------------------------------------------------------- perplexity


@dataclass(frozen=True)
class PerplexityStats:
    """Per-record perplexities (None for a record with no token to predict) and their mean and median."""

    mean: float | None
    median: float | None
    per_record: list[float | None]
    #: tokens whose log-probability was scored, over all records
    tokens: int


def perplexity(
    texts: Sequence[str],
    model: Any,
    tokenizer: Any,
    *,
    batch_size: int = 4,
    max_tokens: int = 512,
    prepend_bos: bool = True,
) -> PerplexityStats:
    """Perplexity of each text under a causal LM (a transformers model and its tokenizer).

    exp(mean negative log-likelihood of the text's tokens), each predicted from the ones before it; the
    BOS token, when the tokenizer has one and `prepend_bos`, lets the first token be scored too. Texts
    are cut to `max_tokens` and batched by length (right padding, masked out). No gradients; the model is
    put in eval mode and restored afterwards. Memory is about batch_size * max_tokens * vocab floats.
    """
    import torch  # here, not at import: worker processes must not touch torch before forking

    bos = tokenizer.bos_token_id if prepend_bos else None
    pad = next((t for t in (tokenizer.pad_token_id, tokenizer.eos_token_id) if t is not None), 0)
    encoded = []
    for text in texts:
        token_ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        encoded.append(([bos] + token_ids if bos is not None else token_ids)[:max_tokens])
    per_record: list[float | None] = [None] * len(texts)
    scored_tokens = 0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i]), i))
        order = [i for i in order if len(encoded[i]) >= 2]
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                width = len(encoded[batch[0]])
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                    mask[row, : len(encoded[i])] = 1
                ids, mask = ids.to(device), mask.to(device)
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
                targets = ids[:, 1:]
                nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
                target_mask = mask[:, 1:].float()
                totals = (nll * target_mask).sum(dim=1).double().cpu()
                counts = target_mask.sum(dim=1).double().cpu()
                for row, i in enumerate(batch):
                    per_record[i] = math.exp(float(totals[row]) / float(counts[row]))
                    scored_tokens += int(counts[row])
    finally:
        model.train(was_training)
    values = [v for v in per_record if v is not None]
    mean = float(np.mean(values)) if values else None
    median = float(np.median(values)) if values else None
    return PerplexityStats(mean=mean, median=median, per_record=per_record, tokens=scored_tokens)


def sample_indices(n: int, limit: int | None) -> list[int]:
    """Up to `limit` indices spread evenly over range(n), always the same ones for the same n."""
    if limit is None or n <= limit:
        return list(range(n))
    return [(i * n) // limit for i in range(limit)]


# ---------------------------------------------------------------- signals

_EXAMPLES = 20  # flagged records and duplicate pairs listed in the signals, for a curator to look at


def _rate(count: float, total: int) -> float:
    return round(count / total, 6) if total else 0.0


@dataclass(frozen=True)
class QualitySignals:
    """What the quality pass found in one dataset; `to_dict()` is plain JSON."""

    records: int
    #: lines skipped because they break the format (signals are computed on the rest)
    invalid_lines: int
    approx_tokens: int
    near_duplicate_rate_internal: float
    #: None when no corpus was given
    near_duplicate_rate_corpus: float | None
    corpus_records: int
    gibberish_rate: float
    word_like_fraction: float
    char_entropy_bits: float
    repeated_ngram_ratio: float
    symbol_ratio: float
    subjective_rate: float
    quantified_rate: float
    source_fraction: float
    license_fraction: float
    perplexity: PerplexityStats | None = None
    #: up to 20 {"line", "reason"} of junk records
    flagged: list[dict] = field(default_factory=list)
    #: up to 20 {"line", "duplicate_of"} (a line of this dataset, or "corpus:<label>")
    near_duplicates: list[dict] = field(default_factory=list)
    minhash: MinHashParams = field(default_factory=MinHashParams)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def read_texts(source: Source, limits: Limits = DEFAULT_LIMITS) -> tuple[list[Record], int]:
    """The valid records of a dataset, duplicates kept, and the number of lines that broke the format."""
    records, scan = read_records(source, limits, report_duplicates=False)
    return records, scan.problem_count


def corpus_index(
    sources: Iterable[str | Path], params: MinHashParams = MinHashParams(), limits: Limits = DEFAULT_LIMITS
) -> MinHashIndex:
    """A MinHash index over dataset files and folders (every *.jsonl below a folder, in sorted order)."""
    texts, labels = [], []
    for source in sources:
        path = Path(source)
        files = sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]
        for file in files:
            records, _ = read_texts(file, limits)
            texts += [record.text for record in records]
            labels += [f"{file.name}:{record.line}" for record in records]
    return MinHashIndex.from_texts(texts, params, labels)


def compute_signals(
    source: Source | Sequence[Record],
    *,
    corpus: MinHashIndex | None = None,
    model: Any = None,
    tokenizer: Any = None,
    perplexity_sample: int | None = 256,
    params: MinHashParams = MinHashParams(),
    junk: JunkParams = JunkParams(),
    limits: Limits = DEFAULT_LIMITS,
) -> QualitySignals:
    """All signals of one dataset (a path, its bytes, or records). Lines breaking the format are skipped
    and counted; exact duplicates are kept, as near-duplicates. Perplexity runs when a model and tokenizer
    are given, on `perplexity_sample` records spread evenly over the dataset (None: all)."""
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        records, invalid = read_texts(source, limits)
    else:
        records, invalid = list(source), 0
    texts = [record.text for record in records]
    n = len(texts)
    signatures = minhash_signatures(texts, params)

    earlier = earlier_near_duplicates(signatures, params)
    duplicates: list[dict[str, Any]] = [
        {"line": records[i].line, "duplicate_of": str(records[earlier[i]].line)} for i in np.nonzero(earlier >= 0)[0]
    ]
    corpus_rate = None
    if corpus is not None:
        match, similarity = corpus.best_matches(signatures)
        in_corpus = similarity >= params.threshold
        corpus_rate = _rate(int(in_corpus.sum()), n)
        for i in np.nonzero(in_corpus)[0]:
            label = corpus.labels[match[i]] if corpus.labels else str(match[i])
            duplicates.append({"line": records[i].line, "duplicate_of": f"corpus:{label}"})
    duplicates.sort(key=lambda d: d["line"])

    features = [record_junk(text, junk) for text in texts]
    flagged = [{"line": record.line, "reason": f.flag} for record, f in zip(records, features, strict=True) if f.flag]

    stats = None
    if model is not None and tokenizer is not None:
        chosen = sample_indices(n, perplexity_sample)
        stats = perplexity([texts[i] for i in chosen], model, tokenizer)

    def mean(values: Iterable[float]) -> float:
        values = list(values)
        return round(float(np.mean(values)), 6) if values else 0.0

    return QualitySignals(
        records=n,
        invalid_lines=invalid,
        approx_tokens=sum(approx_tokens(text) for text in texts),
        near_duplicate_rate_internal=_rate(int((earlier >= 0).sum()), n),
        near_duplicate_rate_corpus=corpus_rate,
        corpus_records=len(corpus) if corpus is not None else 0,
        gibberish_rate=_rate(len(flagged), n),
        word_like_fraction=mean(f.word_like_fraction for f in features),
        char_entropy_bits=mean(f.char_entropy_bits for f in features),
        repeated_ngram_ratio=mean(f.repeated_ngram_ratio for f in features),
        symbol_ratio=mean(f.symbol_ratio for f in features),
        subjective_rate=_rate(sum(is_subjective(text) for text in texts), n),
        quantified_rate=_rate(sum(bool(_DIGIT.search(text)) for text in texts), n),
        source_fraction=_rate(sum("source" in r.fields for r in records), n),
        license_fraction=_rate(sum("license" in r.fields for r in records), n),
        perplexity=stats,
        flagged=flagged[:_EXAMPLES],
        near_duplicates=duplicates[:_EXAMPLES],
        minhash=params,
    )


# ---------------------------------------------------------------- policy


@dataclass(frozen=True)
class CuratorScores:
    """The five scores 0..100, in the order `DataConsensus` takes them (`as_list`)."""

    novelty: int
    reproducibility: int
    alignment: int
    truthfulness: int
    objectivity: int

    def as_list(self) -> list[int]:
        return [getattr(self, name) for name in CRITERIA_NAMES]


def _clamp01(x: float) -> float:
    return min(1.0, max(0.0, x))


def _percent(x: float) -> int:
    return int(math.floor(100 * _clamp01(x) + 0.5))  # half up, not Python's half-to-even


@dataclass(frozen=True)
class CuratorPolicy:
    """A baseline curator: signals in, the five scores out, deterministically.

        valid   = records / (records + invalid_lines)
        base    = valid * (1 - gibberish_rate) * (1 - near_duplicate_rate_internal)
        new     = 1 - near_duplicate_rate_corpus          (1 without a corpus)
        fluency = 1 without perplexity, else 1 at median perplexity <= perplexity_good, 0 at >=
                  perplexity_bad, linear in log(perplexity) between
        novelty         = base * new
        reproducibility = base * (0.5 + 0.5 * source_fraction)      provenance lets others re-check it
        alignment       = base                                      see below
        truthfulness    = base * fluency * (0.7 + 0.3 * quantified_rate)
        objectivity     = base * (1 - subjective_rate)
    each times 100, rounded half up. Junk and repeats lower every criterion: they are worth nothing
    whatever else is true. No model judges values here: `alignment` only says the data is not junk or
    spam, and a curator is expected to read samples and lower it. The perplexity bounds suit a small
    pretrained model (SmolLM2-135M scores clean English around 10-30); a random model's perplexity is
    about its vocabulary size, so it reads as not fluent.
    """

    perplexity_good: float = 20.0
    perplexity_bad: float = 1000.0

    def fluency(self, signals: QualitySignals) -> float:
        stats = signals.perplexity
        if stats is None or stats.median is None:
            return 1.0
        low, high = math.log(self.perplexity_good), math.log(self.perplexity_bad)
        return _clamp01((high - math.log(max(stats.median, 1e-9))) / (high - low))

    def score(self, signals: QualitySignals) -> CuratorScores:
        total = signals.records + signals.invalid_lines
        valid = signals.records / total if total else 0.0
        base = valid * (1 - signals.gibberish_rate) * (1 - signals.near_duplicate_rate_internal)
        new = 1 - (signals.near_duplicate_rate_corpus or 0.0)
        return CuratorScores(
            novelty=_percent(base * new),
            reproducibility=_percent(base * (0.5 + 0.5 * signals.source_fraction)),
            alignment=_percent(base),
            truthfulness=_percent(base * self.fluency(signals) * (0.7 + 0.3 * signals.quantified_rate)),
            objectivity=_percent(base * (1 - signals.subjective_rate)),
        )
