"""Displacement from a full round against its Python reference, `workers.protocol.rounds.displaced_slot`, on
seeded vectors: 16 trainers fill a round with bonds on a coarse grid (ties are common), then outsiders and
displaced trainers commit bonds below, equal to and above the round's smallest. After each commit the contract's
outcome (`RoundFull`, or the slot taken and the trainer and bond displaced) must be the reference's, and every
account's locked TRAINER stake must equal the bond of the slot it holds (0 once displaced: unlocked in full). At
the end every holder reveals and `deltasOf` must list exactly the reference's slots and bonds.
"""

import random

from eth_utils import keccak

from tests.contracts.conftest import DSH, ROLE_MNEMONIC, TRAINER, reverts, use_unique_gas_price
from tests.contracts.training.conftest import TRAINER_BOND, delta_cid, mine_past
from workers.protocol.constants import MAX_TRAINERS
from workers.protocol.rounds import RoundFullError, displaced_slot

VECTORS = 3
LATER_COMMITS = 12
OUTSIDERS = 4
GRID = [TRAINER_BOND + step * DSH for step in range(4)]
LATER_BONDS = [*GRID, GRID[-1] + 1, GRID[-1] + 5 * DSH]  # every one within a trainer's 2 * TRAINER_BOND stake


def test_displacement_matches_the_reference(rounds, registry, trainers, open_round, chain, accounts, deployer, staked):
    outsiders = accounts.from_mnemonic(ROLE_MNEMONIC, count=OUTSIDERS, offset=92)
    for account in outsiders:
        deployer.transfer(account, "1 ether")
        staked(account, TRAINER, 2 * TRAINER_BOND)
    chain.snapshot()
    for vector in range(VECTORS):
        chain.revert()
        use_unique_gas_price()
        check_vector(vector, rounds, registry, open_round(), [*trainers, *outsiders], chain)


def check_vector(vector, rounds, registry, round_id, everyone, chain):
    """One seeded vector in the fresh round `round_id`: the first 16 of `everyone` fill it, then 12 commits of
    drawn accounts (none holding a slot) and bonds; every outcome, lock and finally the revealed slots are compared
    with the reference."""
    rng = random.Random(vector)
    slots: list[tuple[str, int]] = []  # (trainer address, bond wei) in slot order: the reference's state
    salts: dict[str, bytes] = {}

    def commit(account, bond, number):
        salts[account.address] = keccak(f"{vector}/{number}".encode())  # a fresh salt per commit
        cid = delta_cid(f"vector-{account.address}-{vector}")
        commitment = rounds.deltaCommitmentFor(cid, salts[account.address], account)
        try:
            expected = displaced_slot([bond for _, bond in slots], bond)
        except RoundFullError:
            with reverts("RoundFull"):
                rounds.commitDelta(round_id, commitment, bond, {"from": account})
            return
        tx = rounds.commitDelta(round_id, commitment, bond, {"from": account})
        if expected is None:
            assert "DeltaDisplaced" not in tx.events
            expected = len(slots)
            slots.append((account.address, bond))
        else:
            event = tx.events["DeltaDisplaced"]
            assert (event["trainer"], event["bond"], event["slot"]) == (*slots[expected], expected)
            slots[expected] = (account.address, bond)
        assert tx.events["DeltaCommitted"]["slot"] == expected
        held = dict(slots)
        assert [registry.lockedOf(a, TRAINER) for a in everyone] == [held.get(a.address, 0) for a in everyone]

    for number, trainer in enumerate(everyone[:MAX_TRAINERS]):
        commit(trainer, rng.choice(GRID), number)
    for number in range(MAX_TRAINERS, MAX_TRAINERS + LATER_COMMITS):
        held = {address for address, _ in slots}
        commit(rng.choice([a for a in everyone if a.address not in held]), rng.choice(LATER_BONDS), number)
    assert rounds.getRound(round_id)["trainerCount"] == MAX_TRAINERS == len(slots)
    mine_past(chain, rounds.getRound(round_id)["trainCommitDeadline"])
    for address, _ in slots:
        rounds.revealDelta(round_id, delta_cid(f"vector-{address}-{vector}"), salts[address], {"from": address})
    addresses, _, bonds = rounds.deltasOf(round_id)
    assert list(zip(addresses, bonds, strict=True)) == slots
