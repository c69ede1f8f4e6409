"""`deepshard model versions|get`: the model versions the ModelRegistry records, and one version's weights.

    deepshard model versions [--json]          id, parent, the round that made it, block, value, delta CID
    deepshard model get VERSION --out DIR      the version's weights as a folder `transformers` loads

`get` rebuilds a version the way trainers and evaluators do (`workers.tasks.training.base_version`): the base
model its rounds trained on, with each delta of its lineage merged in order. Every delta is fetched from the
content store by the CID the registry records, and its bytes are checked against that CID (a content hash) and
its shape against the spec of the round that made it, before it is merged; the spec is found by the hash the
round records (published in Redis by whoever opened the round, or `$DEEPSHARD_TRAINING_SPEC`). Version 1, the
genesis, is the SmolLM2-135M base model. DIR receives `config.json`, the weights (safetensors), the tokenizer,
and `deepshard-version.json` (version, lineage, its weights hash and its base model's).

`workers.cli` wires it in as `Command("model", ...)`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .cli import add_rpc_option, positive_int


def model_versions(rounds) -> list[dict[str, Any]]:
    """Every registered version, oldest first: id, parent, round, registered block, value created (wei), delta
    CID (for the genesis: the base weights' CID). `rounds`: a TrainingRoundsClient."""
    from ..chain.module import cid_from_chain, struct_of

    out = []
    for version in range(1, int(rounds.models.functions.latestVersion().call()) + 1):
        info = struct_of(rounds.models, "getVersion", version)
        out.append(
            {
                "id": version,
                "parent": int(info["parent"]),
                "round": int(info["round"]),
                "block": int(info["registeredBlock"]),
                "value_created": int(info["valueCreated"]),
                "cid": cid_from_chain(info["deltaCid"]),
            }
        )
    return out


def _versions_run(args: argparse.Namespace) -> int:
    from ..chain import ChainClient, format_dsh
    from ..rounds.chain import TrainingRoundsClient
    from ..tables import format_table

    versions = model_versions(TrainingRoundsClient(ChainClient(args.rpc)))
    if args.json:
        print(json.dumps(versions, sort_keys=True))
        return 0
    rows = [
        [
            v["id"],
            v["parent"] or "-",
            f"#{v['round']}" if v["round"] else "genesis",
            f"{v['block']:,}",
            format_dsh(v["value_created"], grouped=True),
            v["cid"],
        ]
        for v in versions
    ]
    print(format_table(["VERSION", "PARENT", "ROUND", "BLOCK", "VALUE (DSH)", "DELTA CID"], rows, numeric=(0, 1, 3, 4)))
    return 0


def write_version_folder(model, description: dict[str, Any], out: Path) -> None:
    """Writes `fetch_version`'s model (a `workers.ml.models.BaseModel`) and description to the folder `out`
    (created if needed): config, safetensors weights, tokenizer and `deepshard-version.json` (the description),
    the folder `deepshard serve --weights` serves. OSError if it cannot be written."""
    from ..ml.models import VERSION_FILE, version_record_bytes

    out.mkdir(parents=True, exist_ok=True)
    model.model.save_pretrained(out)
    model.tokenizer.save_pretrained(out)
    (out / VERSION_FILE).write_bytes(version_record_bytes(description))


def _get_run(args: argparse.Namespace) -> int:
    import redis as redis_lib

    from ..chain import ChainClient, InvalidRequest
    from ..rounds.chain import TrainingRoundsClient
    from ..rounds.specs import SpecBook
    from ..storage import StorageError, open_store
    from ..tasks.errors import TaskInputError
    from ..tasks.runner import broker_redis, redis_unavailable
    from ..tasks.versions import fetch_version

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidRequest(f"{out} exists and is not an empty folder: give --out a new or empty folder")
    rounds = TrainingRoundsClient(ChainClient(args.rpc))
    latest = int(rounds.models.functions.latestVersion().call())
    if not 1 <= args.version <= latest:  # before loading torch
        raise InvalidRequest(f"version {args.version} is not registered: versions run from 1 to {latest}")
    print(f"rebuilding version {args.version}: fetching and verifying its deltas", file=sys.stderr, flush=True)
    try:
        with open_store() as store:
            model, description = fetch_version(rounds, args.version, store, SpecBook(broker_redis()))
    except redis_lib.exceptions.RedisError as exc:
        raise redis_unavailable(exc) from None
    except (TaskInputError, StorageError) as exc:
        print(f"error: version {args.version}: {exc}", file=sys.stderr)
        return 1
    write_version_folder(model, description, out)
    deltas = len(description["lineage"])
    print(
        f"version {args.version}: {description['base_model']} with {deltas} verified delta"
        f"{'' if deltas == 1 else 's'} merged, weights {description['weights_hash'][:18]}…; written to {out} "
        "(transformers: AutoModelForCausalLM.from_pretrained)"
    )
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)
    versions = commands.add_parser("versions", help="the registered model versions")
    versions.add_argument("--json", action="store_true", help="one line of JSON (values in wei)")
    versions.set_defaults(model_handler=_versions_run)
    get = commands.add_parser(
        "get",
        help="a version's weights, verified, as a folder transformers loads",
        description="Rebuild VERSION from its base model and verified deltas and write it to --out as a folder "
        "that transformers' from_pretrained loads.",
    )
    get.add_argument("version", type=positive_int, metavar="VERSION")
    get.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder")
    get.set_defaults(model_handler=_get_run)
    for sub in (versions, get):
        add_rpc_option(sub)


def run(args: argparse.Namespace) -> int:
    from ..tasks.errors import QueueUnavailable

    try:
        return args.model_handler(args)
    except QueueUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
