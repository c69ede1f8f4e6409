"""Deepshard off-chain workers: the chain client, storage, data, ML, shards, tasks and the `deepshard` CLI."""
