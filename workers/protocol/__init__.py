"""The protocol's constants and pure rules: the Python reference of what the contracts decide.

Torch-free and chain-free (only exact integer arithmetic and keccak), so every layer can import it: the ML
code, the clients, the benchmarks and the tests that feed the same vectors to a contract and to these
functions and compare the results.

- `constants`: sizes, bounds, status enums, role names and queue names, each defined once.
- `median`: the lower weighted median (`WeightedMedian.sol`).
- `fixedpoint`: WAD maths (`FixedPointMath.sol`).
- `sortition`: the Fenwick sortition tree and the panel draw (`SortitionTree.sol`, `SortitionPool.sol`).
- `consensus`: the data consensus tally, outcome, threshold, seat settlement and expiry slash (`DataConsensus.sol`).
- `merkle`: the chunk Merkle tree of a stored replica (`Storage` audits, OpenZeppelin `MerkleProof`).
- `storage`: the rendezvous ranking of storage nodes, the audit draw and the replica key's HKDF info (`Storage.sol`).
- `access`: the price of a copy of a version and the split of its fee (`WeightAccess.sol`).
- `rounds`: fingerprint distance, aggregation, judgement and payouts of a training round
  (`TrainingRounds.sol`).
"""
