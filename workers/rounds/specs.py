"""Where workers find the TrainingSpec of a round: the chain records only its hash.

A round carries `specHash = keccak256(canonical spec JSON)`. Whoever opens a round publishes the spec's
canonical JSON in the shared Redis (hash `deepshard:specs`, field = the 0x spec hash); a worker may also
be configured with a spec of its own (`$DEEPSHARD_TRAINING_SPEC`: a JSON file, or the JSON itself), which
the keeper uses to open rounds. Whatever the source, a spec is used only if its keccak256 is the round's
spec hash, so a wrong or tampered entry is refused, never trained on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..chain import ChainError
from ..ml.spec import SpecError, TrainingSpec
from ..safejson import FileTooLarge, read_limited

SPEC_ENV = "DEEPSHARD_TRAINING_SPEC"
#: A spec is one flat object of a dozen fields.
MAX_SPEC_BYTES = 64 * 1024
SPECS_KEY = "deepshard:specs"
#: The sample TrainingSpec shipped with the package: LoRA rank 4 on the `tiny` model, 10 steps of 4 x 64 tokens
#: (seconds on one CPU core). The keeper opens rounds with it on a dev chain when no spec is configured.
SAMPLE_SPEC_FILE = Path(__file__).with_name("sample_spec.json")
#: Chain ids of local dev chains (anvil/Hardhat, Ganache): where the sample spec is the keeper's default.
DEV_CHAIN_IDS = (31337, 1337)


class SpecUnknown(ChainError):
    """No spec with the round's hash is known to this worker."""


def configured_spec(env: dict | None = None) -> TrainingSpec | None:
    """The spec of `$DEEPSHARD_TRAINING_SPEC` (a path to a JSON file, or JSON), or None when unset."""
    value = (os.environ if env is None else env).get(SPEC_ENV, "").strip()
    if not value:
        return None
    try:
        raw = (
            value
            if value.startswith("{")
            else read_limited(Path(value).expanduser(), what=SPEC_ENV, max_bytes=MAX_SPEC_BYTES)
        )
        return TrainingSpec.from_json(raw)
    except OSError as exc:
        raise SpecUnknown(f"{SPEC_ENV} names {value}, which cannot be read ({exc.strerror})") from None
    except FileTooLarge as exc:
        raise SpecUnknown(str(exc)) from None
    except SpecError as exc:
        raise SpecUnknown(f"{SPEC_ENV} is not a valid TrainingSpec: {exc}") from None


def sample_spec() -> TrainingSpec:
    """The sample spec (`SAMPLE_SPEC_FILE`)."""
    return TrainingSpec.from_json(SAMPLE_SPEC_FILE.read_bytes())


class SpecBook:
    """Specs by hash: the configured ones, then those published in Redis (if a client is given)."""

    def __init__(self, redis=None, specs: Iterable[TrainingSpec] = (), *, use_env: bool = True):
        self.redis = redis
        self._local = {spec.spec_hash(): spec for spec in specs}
        self._configured = configured_spec() if use_env else None
        if self._configured is not None:
            self._local.setdefault(self._configured.spec_hash(), self._configured)

    @property
    def configured(self) -> TrainingSpec | None:
        """The spec this worker opens rounds with: `$DEEPSHARD_TRAINING_SPEC`, else the first one given."""
        if self._configured is not None:
            return self._configured
        return next(iter(self._local.values()), None)

    def publish(self, spec: TrainingSpec) -> bytes:
        """Makes `spec` findable by its hash (in Redis, and locally); returns the hash."""
        digest = spec.spec_hash()
        self._local[digest] = spec
        if self.redis is not None:
            self.redis.hset(SPECS_KEY, "0x" + digest.hex(), spec.canonical_json())
        return digest

    def known(self) -> list[TrainingSpec]:
        """Every spec this book can resolve now: the local ones and the valid ones published in Redis."""
        specs = dict(self._local)
        if self.redis is not None:
            for raw in self.redis.hvals(SPECS_KEY):
                try:
                    spec = TrainingSpec.from_json(raw)
                except SpecError:
                    continue  # `resolve` names it if a round ever asks for it
                specs.setdefault(spec.spec_hash(), spec)
        return list(specs.values())

    def resolve(self, spec_hash: bytes) -> TrainingSpec:
        """The spec whose canonical JSON hashes to `spec_hash`; `SpecUnknown` if none is known."""
        spec_hash = bytes(spec_hash)
        if spec_hash in self._local:
            return self._local[spec_hash]
        shown = "0x" + spec_hash.hex()
        raw = self.redis.hget(SPECS_KEY, shown) if self.redis is not None else None
        if raw is not None:
            try:
                spec = TrainingSpec.from_json(raw)
            except SpecError as exc:
                raise SpecUnknown(f"the spec published for {shown} is invalid: {exc}") from None
            if spec.spec_hash() != spec_hash:
                raise SpecUnknown(f"the spec published for {shown} hashes to {spec.spec_hash_hex()}: refused")
            self._local[spec_hash] = spec
            return spec
        raise SpecUnknown(
            f"no TrainingSpec with hash {shown} is known here: the round's opener publishes it in "
            f"Redis ({SPECS_KEY}), or set {SPEC_ENV} to it"
        )
