"""The demo's data consensus: five curators vote three datasets in or out with the workers' own steps.

Five curators join the pool, three informants submit a dataset each (the good sample, a second good dataset
and the junk sample), the keeper draws each panel, the curators score each dataset with the baseline policy
and commit, reveal and claim, and the keeper finalizes and settles what is left, all through the steps the
curator's and the keeper's Celery tasks run (`workers.data.steps`, called directly rather than through a
broker; only the waiting for blocks is replaced by mining them). Tables show what was accepted or rejected,
the value against the threshold, the bonds returned or slashed, the rewards and the balances that moved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..chain import ChainClient, DataConsensusParams, format_dsh, parse_dsh, parse_role, stake
from ..chain.localnode import dev_signer
from ..chain.salts import SaltStore
from ..data import SAMPLES_DIR
from ..data.chain import DataConsensusClient, Outcome
from ..data.steps import curate_once, keeper_once
from ..storage import ContentStore
from ..tables import format_table, short_address
from .local import EXTRA_CURATORS, EXTRA_INFORMANTS, DemoFailed, expect, fund, mine_to

#: Data-consensus windows for the demo chain, in blocks (anvil mines one per transaction; the demo mines
#: the rest): long enough for every commit and reveal the demo sends, short enough to mine past quickly.
DEMO_DATA_PARAMS = DataConsensusParams(commit_window=40, reveal_window=40)
CURATOR_STAKE_DSH = "1500"  # what the CURATOR staker above holds: every curator stakes the same
POOL_BOND_DSH = "1000"
INFORMANT_STAKE_DSH = "250"
BOND_DSH = "200"

#: The second good dataset: other facts than good.jsonl (no near-copies), each with its source.
SECOND_DATASET = [
    (
        "The Danube flows about 2,850 kilometres from the Black Forest in Germany to the Black Sea. It passes "
        "through or along the borders of ten countries, more than any other river.",
        "Danube",
    ),
    (
        "The Hubble Space Telescope was launched on 24 April 1990 aboard the Space Shuttle Discovery. It orbits "
        "Earth at an altitude of roughly 540 kilometres, above the distortion of the atmosphere.",
        "Hubble_Space_Telescope",
    ),
    (
        "Mercury is the only metal that is liquid at standard room temperature. It melts at minus 38.83 degrees "
        "Celsius and boils at 356.7 degrees Celsius.",
        "Mercury_(element)",
    ),
    (
        "The Peace of Westphalia, signed in 1648, ended the Thirty Years' War in the Holy Roman Empire and the "
        "Eighty Years' War between Spain and the Dutch Republic.",
        "Peace_of_Westphalia",
    ),
    (
        "An adult human skeleton has 206 bones. A newborn has around 270, several of which fuse together during "
        "growth, such as the plates of the skull.",
        "Human_skeleton",
    ),
    (
        "The Mariana Trench in the western Pacific reaches a depth of about 10,935 metres at the Challenger Deep, "
        "the deepest known point of the ocean floor.",
        "Mariana_Trench",
    ),
    (
        "Marie Curie won the Nobel Prize in Physics in 1903 and the Nobel Prize in Chemistry in 1911. She was the "
        "first person to win Nobel Prizes in two different sciences.",
        "Marie_Curie",
    ),
    (
        "The Suez Canal opened in 1869 and connects the Mediterranean Sea to the Red Sea. Ships travelling between "
        "Europe and Asia use it instead of sailing around Africa.",
        "Suez_Canal",
    ),
    (
        "Saturn has a mean density of about 0.69 grams per cubic centimetre, lower than that of water. Its rings "
        "are made mostly of ice particles with a smaller amount of rock.",
        "Saturn",
    ),
    (
        "The Berlin Wall divided the city from 1961 to 1989. Its border crossings were opened on 9 November 1989, "
        "and its official demolition began in June 1990.",
        "Berlin_Wall",
    ),
    (
        "Chlorophyll a absorbs light most strongly at wavelengths near 430 and 662 nanometres, in the blue and red "
        "parts of the spectrum, and reflects green light, so leaves look green.",
        "Chlorophyll",
    ),
    (
        "The Richter scale, introduced by Charles Richter in 1935, is logarithmic: each whole-number step "
        "corresponds to a tenfold increase in the measured amplitude of seismic waves.",
        "Richter_scale",
    ),
    (
        "Johannes Kepler published his first two laws of planetary motion in 1609. They state that planets move "
        "in ellipses with the Sun at one focus and sweep equal areas in equal times.",
        "Kepler%27s_laws_of_planetary_motion",
    ),
    (
        "The shore of the Dead Sea lies about 430 metres below sea level, the lowest land elevation on Earth. Its "
        "water is almost ten times saltier than the ocean.",
        "Dead_Sea",
    ),
    (
        "The Trans-Siberian Railway runs about 9,289 kilometres from Moscow to Vladivostok. The main line was "
        "completed in 1916 and crosses eight time zones.",
        "Trans-Siberian_Railway",
    ),
    (
        "Hydrogen is the most abundant chemical element in the universe. It makes up about 74 percent of the mass "
        "of ordinary matter, mostly in stars and interstellar gas.",
        "Hydrogen",
    ),
    (
        "The Magellan expedition left Spain in 1519 with five ships. One ship, the Victoria, returned in 1522 "
        "under Juan Sebastian Elcano, completing the first circumnavigation of the globe.",
        "Magellan_expedition",
    ),
    (
        "The eruption of Krakatoa in August 1883 was heard about 4,800 kilometres away. The ash and sulphur it put "
        "into the stratosphere lowered average global temperatures for several years.",
        "1883_eruption_of_Krakatoa",
    ),
]


def write_second_dataset(path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as out:
        for text, page in SECOND_DATASET:
            record = {
                "text": text,
                "source": f"https://en.wikipedia.org/wiki/{page}",
                "license": "CC-BY-SA-4.0",
                "lang": "en",
            }
            out.write(json.dumps(record) + "\n")
    return path


@dataclass
class DemoSubmission:
    dataset: str
    informant: DataConsensusClient
    submission_id: int
    outcome: Outcome | None = None
    slashed: int = 0
    informant_reward: int = 0
    curator_payout: int = 0

    @property
    def result(self) -> Outcome:
        """The outcome, once finalized; `DemoFailed` before."""
        if self.outcome is None:
            raise DemoFailed(f"#{self.submission_id} ({self.dataset}) has no outcome")
        return self.outcome


def run_data_consensus(
    treasury: ChainClient, stakers: dict[str, ChainClient], store: ContentStore, workdir: Path, out: TextIO
) -> list[DemoSubmission]:
    """Five curators vote on three datasets with the curator worker's code; prints outcomes and balances and
    returns the submissions with their outcomes."""
    token = treasury.contract("DeepshardToken")
    registry = treasury.contract("StakeRegistry")
    informants = [stakers["INFORMANT"], *(treasury.with_signer(dev_signer(i)) for i in EXTRA_INFORMANTS)]
    curators = [stakers["CURATOR"], *(treasury.with_signer(dev_signer(i)) for i in EXTRA_CURATORS)]
    fund(treasury, informants[1:] + curators[1:])
    for client in informants[1:]:
        stake(client, "INFORMANT", INFORMANT_STAKE_DSH)
    for client in curators[1:]:
        stake(client, "CURATOR", CURATOR_STAKE_DSH)

    accounts = [(client, "INFORMANT") for client in informants] + [(client, "CURATOR") for client in curators]

    def holdings() -> list[tuple[int, int]]:
        """(wallet DSH, stake in its role) of each account."""
        return [
            (
                token.functions.balanceOf(client.address).call(),
                registry.functions.stakeOf(client.address, parse_role(role)).call(),
            )
            for client, role in accounts
        ]

    before = holdings()
    salts = SaltStore(workdir / "votes")
    keeper = DataConsensusClient(treasury, salts)  # draws panels, finalizes, settles silent seats: anyone may
    panel_pool = [DataConsensusClient(client, salts) for client in curators]
    for curator in panel_pool:
        curator.join_pool(parse_dsh(POOL_BOND_DSH))
    print(f"\n{len(panel_pool)} curators joined the pool with {POOL_BOND_DSH} DSH each", file=out)

    datasets = [
        ("good.jsonl", SAMPLES_DIR / "good.jsonl"),
        ("more-facts.jsonl", write_second_dataset(workdir / "more-facts.jsonl")),
        ("junk.jsonl", SAMPLES_DIR / "junk.jsonl"),
    ]
    submissions = []
    for (name, path), client in zip(datasets, informants, strict=True):
        informant = DataConsensusClient(client, salts)
        result = informant.submit(path, parse_dsh(BOND_DSH), store)
        submissions.append(DemoSubmission(name, informant, result.submission_id))
        print(
            f"  #{result.submission_id} {name:<17} submitted by {short_address(client.address)}, "
            f"manifest {result.pinned.manifest_cid}",
            file=out,
        )

    mine_to(treasury, max(keeper.submission(s.submission_id).seed_block for s in submissions) + 1)
    for entry in submissions:
        expect(keeper_once(keeper, entry.submission_id), "drawn", "the keeper")
    # Each round runs every curator's worker step on every submission: commit, then reveal.
    for action in ("committed", "revealed"):
        done = [curate_once(curator, store, entry.submission_id) for entry in submissions for curator in panel_pool]
        print(f"  curators {action} {sum(step.action == action for step in done)} votes", file=out)
        if action == "committed":
            mine_to(treasury, max(keeper.submission(s.submission_id).commit_deadline for s in submissions) + 1)

    def informant_stake(entry: DemoSubmission) -> int:
        return registry.functions.stakeOf(entry.informant.chain.address, parse_role("INFORMANT")).call()

    for entry in submissions:  # every seat revealed: the keeper finalizes without waiting for the deadline
        stake_before = informant_stake(entry)
        expect(keeper_once(keeper, entry.submission_id), "finalized", "the keeper")
        submission = keeper.submission(entry.submission_id)
        entry.outcome = keeper.outcome(submission)
        entry.slashed = stake_before - informant_stake(entry)
        entry.curator_payout = submission.curator_payout
    settled = [curate_once(curator, store, entry.submission_id) for entry in submissions for curator in panel_pool]
    print(f"  curators settled {sum(step.action == 'claimed' for step in settled)} seats", file=out)
    for entry in submissions:  # nothing left for the keeper: no seat stayed silent
        expect(keeper_once(keeper, entry.submission_id), "done", "the keeper")
    for entry in submissions:
        if entry.result.status == "Accepted":
            entry.informant_reward = entry.informant.claim(entry.submission_id).informant_reward

    print("\nData consensus (scores 0..100; value and threshold in points of 10,000; amounts in DSH)", file=out)
    print(outcome_table(submissions), file=out)
    print("\nBalances that moved (DSH)", file=out)
    print(balances_table(accounts, before, holdings()), file=out)
    left = token.functions.balanceOf(keeper.contract.address).call()
    print(
        f"\nthreshold now {keeper.contract.functions.threshold().call():,}; DataConsensus holds "
        f"{format_dsh(left)} DSH after every claim",
        file=out,
    )
    return submissions


def outcome_table(submissions: list[DemoSubmission]) -> str:
    rows = []
    for entry in submissions:
        outcome = entry.result
        returned = format_dsh(parse_dsh(BOND_DSH) - entry.slashed)
        rows.append(
            [
                f"#{entry.submission_id}",
                entry.dataset,
                short_address(entry.informant.chain.address),
                outcome.status.lower(),
                ",".join(str(score) for score in outcome.consensus),
                f"{outcome.value:,}",
                f"{outcome.threshold_before:,} → {outcome.threshold_after:,}",
                f"{format_dsh(entry.slashed)} slashed, {returned} back" if entry.slashed else f"{returned} back",
                format_dsh(entry.informant_reward, grouped=True),
                format_dsh(entry.curator_payout, grouped=True),
            ]
        )
    return format_table(
        ["ID", "DATASET", "INFORMANT", "OUTCOME", "CONSENSUS", "VALUE", "THRESHOLD", "BOND", "REWARD", "TO CURATORS"],
        rows,
        numeric=(5, 8, 9),
    )


def balances_table(
    accounts: list[tuple[ChainClient, str]], before: list[tuple[int, int]], after: list[tuple[int, int]]
) -> str:
    rows = []
    for (client, role), (wallet_before, stake_before), (wallet_after, stake_after) in zip(
        accounts, before, after, strict=True
    ):
        rows.append(
            [
                short_address(client.address),
                role,
                format_dsh(wallet_before, grouped=True),
                format_dsh(wallet_after, grouped=True),
                _signed(wallet_after - wallet_before),
                format_dsh(stake_before, grouped=True),
                format_dsh(stake_after, grouped=True),
                _signed(stake_after - stake_before),
            ]
        )
    return format_table(
        ["ACCOUNT", "ROLE", "WALLET BEFORE", "WALLET AFTER", "CHANGE", "STAKE BEFORE", "STAKE AFTER", "CHANGE"],
        rows,
        numeric=(2, 3, 4, 5, 6, 7),
    )


def _signed(wei: int) -> str:
    return ("+" if wei > 0 else "") + format_dsh(wei, grouped=True)


def consensus_summary(submissions: list[DemoSubmission]) -> list[dict]:
    """Each submission as plain JSON: dataset, informant, outcome, bond slashed, reward (DSH)."""
    return [
        {
            "id": entry.submission_id,
            "dataset": entry.dataset,
            "informant": entry.informant.chain.address,
            "outcome": entry.result.status.lower(),
            "slashed_dsh": format_dsh(entry.slashed),
            "reward_dsh": format_dsh(entry.informant_reward),
        }
        for entry in submissions
    ]
