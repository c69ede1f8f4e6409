"""Mechanism economics: strategies played against the protocol's rules, in a fast model built on
workers.protocol (`model`) and on the real contracts on anvil (`onchain`), which agree to the wei on shared
seeds; `run` measures profit against honest play and writes benchmarks/results/economics.json (see README.md).
"""
