"""Protocol constants, each defined once: the contracts' sizes and enums, the network's roles and queues.

Solidity holds the same numbers as `constant`s; `tests/contracts` check that the deployed contracts agree.
"""

from __future__ import annotations

#: Basis points in one (shares, penalties and rates are in bps).
BPS = 10_000
#: 18-decimal fixed-point one ("WAD"), as in `FixedPointMath.sol`.
WAD = 10**18

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# ---------------------------------------------------------------- data consensus (DataConsensus.sol)

#: Votes on a data panel (stake-weighted draws with replacement, one vote each; also its most curators). 31, so that
#: a cartel holding 30% of the pool holds at least half of a panel's votes with probability P(Bin(31, 0.3) >= 16) =
#: 0.95%, under the 1% target (15 votes: 5%).
MAX_CURATORS = 31
#: Scores per vote: novelty, reproducibility, alignment with human values, empirical truthfulness, objectivity.
CRITERIA = 5
CRITERIA_NAMES = ("novelty", "reproducibility", "alignment", "truthfulness", "objectivity")
#: Highest score of one criterion.
MAX_SCORE = 100
#: `IDataConsensus.Status`, in enum order (Expired: the panel was not drawn within blockhash's horizon).
DATA_STATUSES = ("None", "AwaitingPanel", "Voting", "Accepted", "Rejected", "NoQuorum", "Expired")
DATA_FINAL_STATUSES = ("Accepted", "Rejected", "NoQuorum", "Expired")

# ---------------------------------------------------------------- training rounds (TrainingRounds.sol)

#: Integers in one curvature fingerprint (4 probe groups x 4 statistics).
K = 16
#: Most trainers (committed deltas) in a round.
MAX_TRAINERS = 16
#: Votes on a round's evaluator panel (draws with replacement, one vote each; also its most evaluators): 15, so a
#: 30% cartel holds half of a panel with probability 5% (9 votes: 9.9%); 31 (as curators) would meet the 1% target
#: but TrainingRounds.finalize then measured 11.4M gas with 31 seats (see MAX_EVALUATORS there).
MAX_EVALUATORS = 15
#: Most datasets one round trains on.
MAX_BATCH = 32
#: `ITrainingRounds.Status`, in enum order.
ROUND_STATUSES = ("None", "Training", "AwaitingPanel", "Evaluating", "Finalized", "Failed")
ROUND_ENDED_STATUSES = ("Finalized", "Failed")
#: The model version every lineage starts from (`ModelRegistry`).
GENESIS_VERSION = 1

# ---------------------------------------------------------------- weight custody (contracts/custody)

#: Fewest and most replicas of a shard (`Storage.MIN_REPLICATION`, `Storage.MAX_REPLICATION`).
MIN_REPLICATION, MAX_REPLICATION = 3, 16
#: Most registered storage nodes (`Storage.MAX_NODES`: bounds the ranking scan).
MAX_STORAGE_NODES = 64
#: Most key custodians of a version (`KeyCustody.MAX_CUSTODIANS`).
MAX_CUSTODIANS = 16
#: `Storage.ReplicaStatus`, in enum order.
REPLICA_STATUSES = ("None", "Assigned", "Holding", "Released", "Failed")

# ---------------------------------------------------------------- shared

#: Longest binary CID a contract stores, in bytes.
MAX_CID_LENGTH = 64
#: Tickets a panel draw may use, per vote (tickets on the excluded member are redrawn): `MAX_DRAWS = DRAWS_PER_SEAT *
#: votes`.
DRAWS_PER_SEAT = 4
#: Members a sortition pool can hold (`SortitionTree.CAPACITY`).
POOL_CAPACITY = 1024
#: Blocks `blockhash` reads back (the EVM's): nothing is drawn from a panel's seed block older than this.
BLOCKHASH_HORIZON = 256

#: `IStakeRegistry.Role`, in enum order (the enum's integer is the index here).
STAKE_ROLES: tuple[str, ...] = ("INFORMANT", "CURATOR", "TRAINER", "EVALUATOR", "STORAGE", "INFERENCE")

# ---------------------------------------------------------------- node roles and queues

#: Roles a `deepshard worker` can run. The keeper needs no stake: it sends the permissionless transactions
#: (draw panels, finalize, settle silent seats, open rounds) for both the data consensus and training rounds.
NODE_ROLES: tuple[str, ...] = ("trainer", "evaluator", "curator", "keeper", "storage")
#: Node roles whose steps sign with one account's key: each account gets a queue of its own.
ACCOUNT_ROLES: tuple[str, ...] = ("trainer", "evaluator", "curator")
#: Queue of the content tasks (pin and score datasets), served by any worker.
DATA_QUEUE = "data"
