"""Loading untrusted deltas: every malformed or mismatched delta is refused with a clear error."""

from __future__ import annotations

import dataclasses
import io
import json
import pathlib
import pickle

import pytest
import torch

from workers.ml.delta import MANIFEST_KEY, DeltaManifest, DeltaRejected, load_delta, serialize_delta


def split(adapter: bytes) -> tuple[dict, bytes]:
    length = int.from_bytes(adapter[:8], "little")
    return json.loads(adapter[8 : 8 + length]), adapter[8 + length :]


def join(header, payload: bytes) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + payload


#: The issue's hostile delta: a ~4 KB header nested 2,000 levels deep, behind a correct 8-byte length.
DEEP_HEADER_DELTA = join(b'{"__metadata__":{"deepshard.manifest":"x"},"t":' + b"[" * 2000 + b"]" * 2000 + b"}", b"")


def with_manifest(honest, **changes) -> bytes:
    return serialize_delta(honest.delta.tensors, dataclasses.replace(honest.manifest, **changes))


def with_tensors(honest, tensors) -> bytes:
    return serialize_delta(tensors, honest.manifest)


def first_name(honest) -> str:
    return next(iter(honest.delta.tensors))


class SelfReplicating:
    """A pickle payload that would create a file if anything ever unpickled it."""

    marker: pathlib.Path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_valid_delta_loads(honest, spec, tiny, tmp_path):
    delta = load_delta(honest.adapter, spec, tiny)
    assert delta.manifest == honest.manifest
    assert delta.tensors.keys() == honest.delta.tensors.keys()
    assert load_delta(honest.write(tmp_path / "d.safetensors"), spec, tiny).manifest == honest.manifest


def test_pickles_are_never_unpickled(honest, spec, tiny, tmp_path):
    SelfReplicating.marker = tmp_path / "pwned"
    evil = pickle.dumps({"weights": SelfReplicating()})
    buffer = io.BytesIO()
    torch.save(honest.delta.tensors, buffer)
    for blob in (evil, buffer.getvalue()):
        with pytest.raises(DeltaRejected, match="not a safetensors file"):
            load_delta(blob, spec, tiny)
    assert not SelfReplicating.marker.exists()


def cases(honest):
    """(label, bytes, expected message) for every way a delta can be bad."""
    header, payload = split(honest.adapter)
    name = first_name(honest)
    tensor = honest.delta.tensors[name]

    def edit(fn):
        h = json.loads(json.dumps(header))
        fn(h)
        return join(h, payload)

    def overlap(h):
        names = sorted(n for n in h if n != "__metadata__")
        h[names[1]]["data_offsets"] = h[names[0]]["data_offsets"]

    nan = dict(honest.delta.tensors)
    nan[name] = tensor.clone()
    nan[name][0, 0] = float("nan")
    inf = dict(honest.delta.tensors)
    inf[name] = tensor.clone()
    inf[name][-1, -1] = float("-inf")
    extra = dict(honest.delta.tensors)
    extra["base_model.model.lm_head.lora_A.weight"] = torch.zeros(4, 256)
    missing = dict(honest.delta.tensors)
    del missing[name]
    misshaped = dict(honest.delta.tensors)
    misshaped[name] = torch.zeros(tensor.shape[0] + 1, tensor.shape[1])

    return [
        ("empty", b"", "shorter than its 8-byte header length"),
        ("text file", b"this is not a delta, just some text", "not a safetensors file: header length"),
        ("header past end", (1000).to_bytes(8, "little") + b"{}", "runs past the end"),
        ("malformed json", join(b"{not json", payload), "safetensors header: not valid JSON"),
        ("header not object", join(b"[1, 2]", payload), "not a JSON object"),
        ("duplicate key", join(b'{"a": 1, "a": 2}', b""), "field 'a' appears more than once"),
        # The delta: ~4 KB of header made RecursionError escape, not DeltaRejected.
        ("deep header", DEEP_HEADER_DELTA, "safetensors header: nested more than 3 levels deep"),
        ("header not utf-8", join(b'{"\xff": 1}', b""), "safetensors header: not UTF-8"),
        ("header NaN", join(b'{"a": NaN}', b""), "NaN is not valid JSON"),
        (
            "deep manifest",
            edit(lambda h: h["__metadata__"].update({MANIFEST_KEY: "[" * 2000 + "]" * 2000})),
            "delta manifest: nested more than 4 levels deep",
        ),
        (
            "manifest surrogate",
            edit(lambda h: h["__metadata__"].update({MANIFEST_KEY: '{"base_model": "\\ud800"}'})),
            "delta manifest: field 'base_model' contains an unpaired surrogate",
        ),
        ("no manifest", edit(lambda h: h.pop("__metadata__")), f"no {MANIFEST_KEY}"),
        (
            "manifest not json",
            edit(lambda h: h["__metadata__"].update({MANIFEST_KEY: "{"})),
            "delta manifest: not valid JSON",
        ),
        (
            "manifest fields",
            edit(lambda h: h["__metadata__"].update({MANIFEST_KEY: json.dumps({"spec_hash": "0x"})})),
            "manifest must be an object with exactly the fields",
        ),
        ("manifest bad hash", with_manifest(honest, data_digest="0x1234"), "data_digest is not a 0x-prefixed"),
        ("other spec", with_manifest(honest, spec_hash="0x" + "11" * 32), "trained for spec 0x1111"),
        ("other base model", with_manifest(honest, base_model="smollm2-135m"), "is for base model 'smollm2-135m'"),
        (
            "other base weights",
            with_manifest(honest, base_weights_hash="0x" + "22" * 32),
            "trained on base weights 0x2222",
        ),
        ("unknown tensor", with_tensors(honest, extra), "unknown tensor name"),
        ("missing tensor", with_tensors(honest, missing), "lacks 1 expected tensor"),
        ("mis-shaped tensor", with_tensors(honest, misshaped), f"{name} has shape \\[5, 256\\], expected \\[4, 256\\]"),
        ("wrong dtype", edit(lambda h: h[name].update(dtype="F16")), f"{name} has dtype F16, expected F32"),
        ("overlapping ranges", edit(overlap), "byte range overlaps or leaves a gap"),
        ("range vs shape", edit(lambda h: h[name].update(data_offsets=[0, 4])), "byte range does not match its shape"),
        ("trailing bytes", honest.adapter + b"\x00" * 16, "tensor data is"),
        (
            "manifest tensor list",
            with_manifest(honest, tensors=honest.manifest.tensors[1:]),
            "tensor list does not match",
        ),
        ("NaN", with_tensors(honest, nan), f"{name} contains NaN or Inf"),
        ("Inf", with_tensors(honest, inf), "contains NaN or Inf"),
    ]


CASE_LABELS = [
    "empty",
    "text file",
    "header past end",
    "malformed json",
    "header not object",
    "duplicate key",
    "deep header",
    "header not utf-8",
    "header NaN",
    "deep manifest",
    "manifest surrogate",
    "no manifest",
    "manifest not json",
    "manifest fields",
    "manifest bad hash",
    "other spec",
    "other base model",
    "other base weights",
    "unknown tensor",
    "missing tensor",
    "mis-shaped tensor",
    "wrong dtype",
    "overlapping ranges",
    "range vs shape",
    "trailing bytes",
    "manifest tensor list",
    "NaN",
    "Inf",
]


def test_case_list_is_complete(honest):
    assert [label for label, _, _ in cases(honest)] == CASE_LABELS


@pytest.mark.parametrize("label", CASE_LABELS)
def test_bad_delta_is_refused_with_a_clear_error(label, honest, spec, tiny):
    _, blob, message = next(case for case in cases(honest) if case[0] == label)
    with pytest.raises(DeltaRejected, match=message):
        load_delta(blob, spec, tiny)


def test_size_limit_is_checked_before_reading(honest, spec, tiny, tmp_path):
    with pytest.raises(DeltaRejected, match="over the limit of 1000 bytes"):
        load_delta(honest.adapter, spec, tiny, max_bytes=1000)
    huge = tmp_path / "huge.safetensors"
    with huge.open("wb") as handle:
        handle.truncate(len(honest.adapter) + (2 << 20))  # sparse: bigger than any valid delta
    with pytest.raises(DeltaRejected, match="huge.safetensors is .* over the limit"):
        load_delta(huge, spec, tiny)


def test_a_delta_for_another_spec_is_refused(honest, spec, tiny):
    other = dataclasses.replace(spec, learning_rate=1e-3)
    with pytest.raises(DeltaRejected, match="trained for spec"):
        load_delta(honest.adapter, other, tiny)
    bigger_rank = dataclasses.replace(spec, lora_rank=8)
    with pytest.raises(DeltaRejected, match="trained for spec"):
        load_delta(honest.adapter, bigger_rank, tiny)


def test_manifest_json_round_trips(honest):
    assert DeltaManifest.from_json(honest.manifest.canonical_json()) == honest.manifest
