"""`deepshard serve` and `deepshard verify-response`: run an inference node, check an answer's proof.

    deepshard serve --dev --model tiny|smollm2-135m [--host H] [--port P]   a built-in model, no chain
    deepshard serve --model smollm2-135m [--version N] [--weights DIR]       version N of the ModelRegistry
        [--queue-size Q] [--max-body-bytes B] [--api-key KEY ...] [--threads T] [--stages S (with --dev)]
    deepshard verify-response FILE --model NAME [--weights DIR] [--request REQ.json] [--replay] [--json]

The server prints `serving deepshard-v<N> (weights 0x...) on http://H:P` once it accepts connections. API keys
also come from $DEEPSHARD_API_KEYS (comma-separated). torch and the web stack are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

SERVE_HELP = "serve a model version through an OpenAI-compatible HTTP API (the inference node)"
VERIFY_HELP = "check the deepshard_proof of a saved response against the weights, by one prefill"
API_KEYS_ENV = "DEEPSHARD_API_KEYS"
MAX_RESPONSE_FILE_BYTES = 64 << 20


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return number


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="smollm2-135m", help="base model: tiny or smollm2-135m (the genesis)")
    parser.add_argument("--weights", type=Path, metavar="DIR", help="a version folder (see workers/serve/README.md)")
    parser.add_argument("--version", type=_positive_int, default=1, help="the registry version served (default 1)")
    parser.add_argument("--threads", type=_positive_int, help="torch intra-op threads (default: torch's)")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    _model_arguments(parser)
    parser.add_argument("--dev", action="store_true", help="no chain: serve the model without the registry check")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--queue-size", type=_positive_int, default=16, help="requests admitted at once (429 above)")
    parser.add_argument("--max-body-bytes", type=_positive_int, default=1 << 20, help="largest request body (413)")
    parser.add_argument("--api-key", action="append", default=[], help="accept this bearer key (repeatable)")
    parser.add_argument(
        "--stages", type=_positive_int, default=1, help="split the model over this many local processes (with --dev)"
    )


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="a saved response (JSON) or a proof alone")
    _model_arguments(parser)
    parser.add_argument("--request", type=Path, metavar="REQ", help="the request sent: its prompt must match")
    parser.add_argument("--replay", action="store_true", help="also regenerate the tokens from the proof's seed")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")


def load_engine(model_name: str, weights: Path | None = None, threads: int | None = None):
    """An `Engine` on the base model `model_name` (tiny or smollm2-135m) or, with `weights`, on the version folder
    `weights` (what `deepshard model get` writes; safetensors only, context capped at the base's:
    `workers.ml.models.load_version_folder`), fp32 on CPU; `threads` sets torch's intra-op threads.
    ChainError (one `error:` line) when the model cannot be loaded."""
    from ..ml.models import ModelError, load_base_model, load_version_folder
    from .engine import Engine

    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        base = (
            load_base_model(model_name, "cpu") if weights is None else load_version_folder(model_name, weights, "cpu")
        )
    except (ModelError, OSError, ValueError) as exc:
        from ..chain import ChainError

        raise ChainError(f"cannot load the model: {exc}") from None
    return Engine(base)


def node_app(
    engine, chain, version: int, model_name: str, weights: Path | None, rebuild=None, published_files=None, **options
):
    """The API app serving `engine` as registry version `version` and its `ServedVersion`. With `chain` (a
    ChainClient), the weights must be that version (workers.serve.registry.check_version: VersionRefused
    otherwise; `rebuild(version)` gives an unpublished version > 1 rebuilt from its lineage (a BuiltVersion),
    `published_files(version, manifest CID)` the loader files a published version's shard manifest lists; None
    refuses what needs them); `chain` None is --dev. `options`: create_app's (queue_size, max_body_bytes,
    api_keys)."""
    from .app import ServedVersion, create_app
    from .registry import check_version, read_version_record

    if chain is not None:
        record = read_version_record(weights) if weights is not None else None
        check_version(
            chain,
            version,
            engine.weights_hash,
            record,
            base=lambda: _base(engine, model_name, weights),
            rebuild=rebuild,
            folder=weights,
            published_files=published_files,
        )
    served = ServedVersion(version, engine.weights_hash, model_name)
    return create_app(engine, served, **options), served


def _base(engine, model_name: str, weights: Path | None):
    """The base model `model_name` (the genesis) as a BuiltVersion: without a folder the engine is that base, and
    there are no loader files to compare."""
    from .registry import BuiltVersion

    if weights is None:
        return BuiltVersion(str(engine.weights_hash), {})
    from ..ml.models import load_base_model, loader_file_bytes

    base = load_base_model(model_name, "cpu")
    return BuiltVersion(base.weights_hash, loader_file_bytes(base))


def run_serve(args: argparse.Namespace) -> int:
    from ..chain import ChainClient, ChainError

    if args.stages > 1:
        if not args.dev or args.weights is not None:
            raise ChainError("--stages splits a built-in model: use it with --dev and without --weights")
        from ..chain.localnode import free_port
        from .stages import PipelineEngine

        try:
            engine = PipelineEngine(args.model, args.stages, free_port(), args.threads)
        except ValueError as exc:
            raise ChainError(str(exc)) from None
    else:
        engine = load_engine(args.model, args.weights, args.threads)
    try:
        return _serve(args, engine, None if args.dev else ChainClient(args.rpc))
    finally:
        engine.close()


def _serve(args: argparse.Namespace, engine, chain) -> int:
    import uvicorn

    # "alpha, beta": the spaces around a comma are not part of a key
    listed = (k.strip() for k in os.environ.get(API_KEYS_ENV, "").split(","))
    keys = tuple(args.api_key) + tuple(k for k in listed if k)
    from .registry import rebuilt_version, shard_manifest_files

    def published_files(version: int, cid: str):
        from ..storage import StorageError, open_store
        from .registry import VersionRefused

        try:
            with open_store() as store:
                return shard_manifest_files(store, version, cid)
        except StorageError as exc:
            raise VersionRefused(f"cannot check the folder against version {version}'s shard manifest: {exc}") from None

    app, served = node_app(
        engine,
        chain,
        args.version,
        args.model,
        args.weights,
        rebuild=None if chain is None else lambda version: rebuilt_version(chain, version),
        published_files=published_files,
        queue_size=args.queue_size,
        max_body_bytes=args.max_body_bytes,
        api_keys=keys,
    )
    announce = f"serving {served.model_id} (weights {served.weights_hash}) on http://{args.host}:{args.port}"

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:  # only once the socket accepts connections
                print(announce, flush=True)

    Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False)).run()
    return 0


def _read_json(path: Path, what: str) -> Any:
    from ..chain import ChainError
    from ..safejson import JsonRejected, load_json_file

    try:
        return load_json_file(path, what=what, max_depth=64, max_bytes=MAX_RESPONSE_FILE_BYTES)
    except OSError as exc:
        raise ChainError(f"{path} cannot be read ({exc.strerror})") from None
    except JsonRejected as exc:
        raise ChainError(str(exc)) from None


def _proofs_of(data: Any) -> list[Any]:
    """The proofs in a saved response (every choice's `deepshard_proof`), or the file itself if it is one."""
    if isinstance(data, dict) and isinstance(data.get("choices"), list):
        return [c.get("deepshard_proof") for c in data["choices"] if isinstance(c, dict)]
    return [data]


def _request_prompt(engine, request: Any) -> list[int]:
    if not isinstance(request, dict):
        raise TypeError("the file must hold a JSON object")
    if "messages" in request:
        messages = [{"role": m["role"], "content": m["content"]} for m in request["messages"]]
        return engine.chat_prompt(messages)
    prompt = request.get("prompt")
    return list(prompt) if isinstance(prompt, list) else engine.encode(str(prompt))


def run_verify(args: argparse.Namespace) -> int:
    from ..chain import ChainError
    from .proof import Proof, ProofError, verify

    proofs = _proofs_of(_read_json(args.file, str(args.file)))
    engine = load_engine(args.model, args.weights, args.threads)
    prompt = None
    if args.request is not None:
        try:
            prompt = _request_prompt(engine, _read_json(args.request, str(args.request)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainError(f"{args.request}: not a chat or completion request ({exc})") from None
    verdicts = []
    for number, raw in enumerate(proofs):
        try:
            verdict = verify(engine, Proof.from_json(raw), prompt, replay=args.replay)
        except ProofError as exc:
            raise ChainError(f"choice {number}: {exc}") from None
        verdicts.append(verdict)
    accepted = bool(verdicts) and all(v.accepted for v in verdicts)
    if args.json:
        print(json.dumps({"accepted": accepted, "choices": [v.to_json() for v in verdicts]}))
    else:
        for number, verdict in enumerate(verdicts):
            status = "verified" if verdict.accepted else "REJECTED: " + "; ".join(verdict.reasons)
            print(f"choice {number}: {status}")
    if not accepted:
        print("error: the proof does not match these weights", file=sys.stderr)
    return 0 if accepted else 1
