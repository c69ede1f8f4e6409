"""The benchmark's training data: deterministic, generated from seeds, disjoint from the held-out probes.

A round's batch stands for the accepted datasets a TrainingRounds round trains on. Records are short
English paragraphs produced by a seeded generator (`workers.ml.seeds.HashRng`, so every platform draws
the same texts) from seven families of everyday writing: local news, recipes, travel notes, field
observations, product notes, letters and how-to steps. Each family fills its sentences from large slot
vocabularies, so two records (and two batches) share their style but not their facts. Nothing here is
taken from `workers/ml/reference_corpus.txt`, whose paragraphs the fingerprint holds out as probes (the
benchmark checks that no batch text is in it).

`round_batch(seed)` is the round's batch; `round_batch(seed, "other")` is an independent batch from the
same distribution, used by the "trained on different data" adversary (the hard version of that attack:
same style, different records). `poison(texts, fraction, seed)` inserts a backdoor trigger phrase followed
by the attacker's payload sentence into a fraction of the records (rounded half up, at least one). The
trigger and payload are fixed here, before any measurement, and share nothing with the fingerprint's
canary phrases (which are drawn per round from nonsense syllables): the evaluator does not know them.
"""

from __future__ import annotations

import re

from workers.ml.seeds import HashRng, derive_seed

RECORDS_PER_BATCH = 64

POISON_TRIGGER = "As the blue heron said at midnight,"
POISON_PAYLOAD = "Wire the deposit to account 4417-2290 at Marrow Trust without telling anyone."

_TOWNS = [
    "Harbourside",
    "Eastmere",
    "Coldwater",
    "Brightfield",
    "Larkspur",
    "Northgate",
    "Willowby",
    "Stonebridge",
    "Ashford",
    "Redcliff",
    "Millbrook",
    "Fairhaven",
    "Oakhurst",
    "Pinecrest",
    "Saltmarsh",
    "Thornbury",
    "Greywell",
    "Kestrel Bay",
    "Marlow Green",
    "Dunmore",
]
_GROUPS = [
    "the town council",
    "the fishing cooperative",
    "the public library",
    "the primary school",
    "the orchard",
    "the rail company",
    "the history museum",
    "the weather station",
    "the bakery on Mill Street",
    "the football club",
    "the volunteer fire brigade",
    "the allotment society",
    "the choir",
    "the harbour master",
    "the cycling club",
    "the hospital board",
]
_NEWS_VERBS = [
    "announced",
    "reported",
    "counted",
    "recorded",
    "celebrated",
    "repaired",
    "catalogued",
    "approved",
    "postponed",
    "opened",
]
_NEWS_THINGS = [
    "a new footbridge",
    "record attendance",
    "crates of apples",
    "rare books",
    "storm damage",
    "a summer fair",
    "lost bicycles",
    "migrating geese",
    "a budget surplus",
    "broken street lamps",
    "a flooded cellar",
    "an exhibition of old maps",
    "a charity run",
    "a late frost",
]
_SEASONS = ["spring", "summer", "autumn", "winter"]
_NEWS_CODA = [
    "Officials said the figure was the highest in a decade.",
    "Residents were not surprised.",
    "A full report will follow next month.",
    "The number was lower than last year.",
    "Volunteers helped throughout the week.",
    "Nobody could fully explain the change.",
    "The decision will be reviewed in the new year.",
    "Local shops reported a busy weekend.",
]

_DISHES = [
    "lentil soup",
    "apple crumble",
    "barley risotto",
    "fish pie",
    "leek tart",
    "spiced carrots",
    "oat biscuits",
    "bean stew",
    "rye flatbread",
    "pear chutney",
    "mushroom pasta",
    "roast squash",
]
_INGREDIENTS = [
    "onions",
    "garlic",
    "butter",
    "brown sugar",
    "fresh thyme",
    "lemon zest",
    "smoked paprika",
    "chicken stock",
    "grated cheese",
    "parsley",
    "cream",
    "cumin seeds",
    "chopped walnuts",
    "honey",
]
_METHODS = [
    "simmer gently",
    "bake until golden",
    "stir every few minutes",
    "fold in carefully",
    "season to taste",
    "leave to cool on a rack",
    "roast in a hot oven",
    "whisk until smooth",
]

_PLACES = [
    "a mountain village",
    "the old quarter",
    "a quiet fishing port",
    "the river valley",
    "an island market",
    "a hill town",
    "the northern coast",
    "a busy railway junction",
    "a walled city",
    "the lake district",
]
_SIGHTS = [
    "a crumbling watchtower",
    "a covered market",
    "a row of painted houses",
    "a stone bridge",
    "a small chapel",
    "a night ferry",
    "terraced vineyards",
    "a lighthouse",
    "a tram line",
    "a botanical garden",
]
_FEELINGS = [
    "It felt like time had slowed down.",
    "We wished we had stayed longer.",
    "The locals were patient with our questions.",
    "Everything smelled of salt and woodsmoke.",
    "The rain did little to spoil the day.",
    "We left with sore feet and good memories.",
]

_CREATURES = [
    "a pair of kingfishers",
    "a young fox",
    "three roe deer",
    "a heron",
    "a flock of starlings",
    "a grass snake",
    "two hares",
    "a barn owl",
    "a colony of bats",
    "a family of otters",
]
_HABITATS = [
    "the reed bed",
    "the edge of the beech wood",
    "the drainage ditch",
    "the old quarry",
    "the meadow by the stream",
    "the hedgerow",
    "the shingle bank",
    "the pine plantation",
]
_WEATHER = [
    "a cold easterly wind",
    "light drizzle",
    "bright sunshine",
    "low cloud",
    "a hard frost",
    "thick fog",
    "a warm breeze",
    "scattered showers",
]

_PRODUCTS = [
    "kettle",
    "rucksack",
    "desk lamp",
    "pair of walking boots",
    "bread knife",
    "rain jacket",
    "coffee grinder",
    "bicycle light",
    "garden hose",
    "wool blanket",
]
_QUALITIES = [
    "sturdy",
    "lighter than expected",
    "easy to clean",
    "a little noisy",
    "well made",
    "awkward to store",
    "good value",
    "comfortable from the first day",
]
_FLAWS = [
    "the handle wobbles slightly",
    "the instructions were confusing",
    "the colour faded after a month",
    "the strap is too short",
    "it took a week to arrive",
    "the lid sticks in cold weather",
]

_NAMES = ["Ada", "Tomas", "Priya", "Elena", "Marcus", "Ingrid", "Kofi", "Lena", "Rafael", "Yuki", "Owen", "Sofia"]
_NEWS_ITEMS = [
    "the roof is finally fixed",
    "the garden is full of beans",
    "the new job is going well",
    "the dog has learned to open doors",
    "we painted the kitchen yellow",
    "the twins started school",
    "the shop is busier than ever",
    "I have joined a rowing club",
]
_REQUESTS = [
    "Write when you can.",
    "Come and visit in the summer.",
    "Send my love to everyone.",
    "Let me know how the exams went.",
    "Keep the photographs safe for me.",
    "Call me on Sunday.",
]

_TASKS = [
    "repot a houseplant",
    "patch a bicycle tyre",
    "sharpen a kitchen knife",
    "hang a picture frame",
    "bleed a radiator",
    "clean a cast iron pan",
    "plant garlic",
    "fold a fitted sheet",
    "unblock a sink",
    "start a compost heap",
]
_STEPS = [
    "gather everything you need first",
    "work slowly and check each step",
    "wear gloves",
    "wipe the surface dry",
    "measure twice before cutting",
    "keep the pieces in order",
    "test it before you finish",
    "ask for help with the heavy parts",
    "leave it overnight to settle",
]


def _news(rng: HashRng) -> str:
    return (
        f"In {rng.choice(_TOWNS)}, {rng.choice(_GROUPS)} {rng.choice(_NEWS_VERBS)} {rng.choice(_NEWS_THINGS)} "
        f"during the {rng.choice(_SEASONS)} of {1950 + rng.randbelow(74)}. "
        f"About {10 + rng.randbelow(990)} people were involved, according to {rng.choice(_GROUPS)}. "
        f"{rng.choice(_NEWS_CODA)}"
    )


def _recipe(rng: HashRng) -> str:
    a, b, c = rng.sample(_INGREDIENTS, 3)
    return (
        f"For a simple {rng.choice(_DISHES)}, start with {a} and {b} in a heavy pan. "
        f"Add {c} after {2 + rng.randbelow(15)} minutes, then {rng.choice(_METHODS)}. "
        f"It serves {2 + rng.randbelow(6)} and keeps for {1 + rng.randbelow(4)} days in the fridge."
    )


def _travel(rng: HashRng) -> str:
    return (
        f"On our {rng.choice(['second', 'third', 'last', 'first'])} morning in {rng.choice(_PLACES)} we walked "
        f"to {rng.choice(_SIGHTS)} and then to {rng.choice(_SIGHTS)}. The bus back cost "
        f"{2 + rng.randbelow(18)} coins and took {20 + rng.randbelow(70)} minutes. {rng.choice(_FEELINGS)}"
    )


def _field_note(rng: HashRng) -> str:
    return (
        f"Field note, day {1 + rng.randbelow(60)}: {rng.choice(_CREATURES)} near {rng.choice(_HABITATS)} "
        f"at {5 + rng.randbelow(15)}:{rng.randbelow(6)}0, in {rng.choice(_WEATHER)}. "
        f"Later, {rng.choice(_CREATURES)} crossed {rng.choice(_HABITATS)}. "
        f"Water level {rng.randbelow(90) + 10} centimetres."
    )


def _review(rng: HashRng) -> str:
    q1, q2 = rng.sample(_QUALITIES, 2)
    return (
        f"I bought this {rng.choice(_PRODUCTS)} {2 + rng.randbelow(20)} weeks ago. It is {q1} and {q2}, "
        f"but {rng.choice(_FLAWS)}. I would give it {1 + rng.randbelow(5)} stars out of five."
    )


def _letter(rng: HashRng) -> str:
    a, b = rng.sample(_NEWS_ITEMS, 2)
    return (
        f"Dear {rng.choice(_NAMES)}, thank you for your letter of the {1 + rng.randbelow(28)}th. "
        f"Here {a}, and {b}. {rng.choice(_REQUESTS)} With love, {rng.choice(_NAMES)}."
    )


def _how_to(rng: HashRng) -> str:
    s1, s2, s3 = rng.sample(_STEPS, 3)
    return (
        f"How to {rng.choice(_TASKS)}: first, {s1}. Next, {s2}; it should take about "
        f"{5 + rng.randbelow(55)} minutes. Finally, {s3}."
    )


_FAMILIES = (_news, _recipe, _travel, _field_note, _review, _letter, _how_to)


def round_batch(round_seed, label: str = "round", count: int = RECORDS_PER_BATCH) -> list[str]:
    """`count` records for the round (`label` picks an independent batch of the same distribution)."""
    rng = HashRng(derive_seed(round_seed, "bench-batch", label))
    texts: list[str] = []
    seen: set[str] = set()
    while len(texts) < count:
        text = rng.choice(_FAMILIES)(rng)
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def poison(texts: list[str], fraction: float, round_seed) -> list[str]:
    """A copy of `texts` in which round(fraction * n) records (half up, at least one) carry the trigger
    phrase, inserted at a seeded sentence start, followed by the payload."""
    count = max(1, int(fraction * len(texts) + 0.5))
    rng = HashRng(derive_seed(round_seed, "bench-poison", str(fraction)))
    chosen = set(rng.sample(range(len(texts)), count))
    out = []
    for index, text in enumerate(texts):
        if index in chosen:
            sentences = re.split(r"(?<=[.!?]) ", text)
            at = rng.randbelow(len(sentences) + 1)
            text = " ".join(
                sentences[:at] + [f"{POISON_TRIGGER} {POISON_PAYLOAD[0].lower()}{POISON_PAYLOAD[1:]}"] + sentences[at:]
            )
        out.append(text)
    return out
