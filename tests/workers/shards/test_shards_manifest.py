"""The manifest's canonical JSON, and hostile manifests refused by name before anything is fetched."""

from __future__ import annotations

import copy
import json

import pytest

from workers.shards import ManifestRejected, parse_manifest
from workers.shards.manifest import MAX_MANIFEST_BYTES


def test_the_manifest_round_trips_through_its_canonical_json(manifest):
    data = manifest.to_json()
    assert parse_manifest(data) == manifest
    assert parse_manifest(data.decode()).to_json() == data
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()


def _edit(document: dict, path: tuple, value) -> dict:
    edited = copy.deepcopy(document)
    target = edited
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return edited


_DELETE = object()
HOSTILE = {
    "version as a string": (("version",), "2", "version must be an integer"),
    "negative version": (("version",), -1, "version is -1"),
    "boolean size": (("shards", 0, "size"), True, r"shards\[0\].size must be an integer"),
    "huge shard size": (("shards", 0, "size"), 2**40, r"shards\[0\].size is 1099511627776, outside"),
    "huge replica size": (("shards", 1, "replicas", 0, "size"), 2**62, r"shards\[1\].replicas\[0\].size is"),
    "replica size without the tag": (("shards", 1, "replicas", 0, "size"), 5, r"not the shard's size \+ 16"),
    "extra field": (("shards", 0, "extra"), 1, r"shards\[0\] must have exactly the fields"),
    "missing field": (("key_hash",), _DELETE, "the document must have exactly the fields"),
    "wrong format": (("format",), "deepshard/shards/v0", "format is 'deepshard/shards/v0'"),
    "short hash": (("weights_hash",), "0x1234", "weights_hash is '0x1234'"),
    "uppercase hash": (("key_hash",), "0x" + "AB" * 32, "key_hash is"),
    "bad node": (("shards", 0, "replicas", 0, "node"), "0x12", r"replicas\[0\].node is '0x12'"),
    "bad CID": (("shards", 0, "replicas", 0, "cid"), "bafyNOTACID", r"replicas\[0\].cid is not a usable CID"),
    "CID as a number": (("shards", 0, "replicas", 0, "cid"), 7, r"replicas\[0\].cid must be a CID string"),
    "unknown dtype": (("shards", 0, "tensors", 0, 1), "F128", r"tensors\[0\]\[1\] must be one of"),
    "negative dimension": (("shards", 0, "tensors", 0, 2), [-1, 3], r"tensors\[0\]\[2\] is -1"),
    "tensors larger than the shard": (("shards", 0, "tensors", 0, 2), [2**20, 2**10], "hold more bytes than"),
    "path in a file name": (("files", 0, "name"), "../../.bashrc", r"files\[0\].name is '../../.bashrc'"),
    "executable file": (("files", 0, "name"), "modeling_evil.py", r"files\[0\].name is 'modeling_evil.py'"),
    "shards out of order": (("shards", 0, "index"), 1, r"shards\[0\].index is 1, but shards must be listed"),
    "layers on the embed shard": (("shards", 0, "layers"), [0, 1], r"shards\[0\].layers must be null"),
    "layer range backwards": (("shards", 1, "layers"), [3, 1], "must have first <= last"),
    "overlapping layers": (("shards", 2, "layers"), [0, 1], r"shards\[2\].layers overlap"),
    "no shards": (("shards",), [], "shards must not be empty"),
    "shards not a list": (("shards",), {"0": 1}, "shards must be a list"),
    "alias of nothing": (("aliases",), [["lm_head.weight", "nope"]], "must name a new alias of a stored tensor"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_a_hostile_field_is_refused_naming_it(manifest, case):
    path, value, message = HOSTILE[case]
    edited = _edit(manifest.to_dict(), path, value)
    with pytest.raises(ManifestRejected, match=message):
        parse_manifest(json.dumps(edited))


def test_duplicate_holders_tensors_and_files_are_refused(manifest):
    document = manifest.to_dict()
    replicas = document["shards"][0]["replicas"]
    twice = _edit(document, ("shards", 0, "replicas"), [replicas[0], replicas[0]])
    with pytest.raises(ManifestRejected, match="names a node twice"):
        parse_manifest(json.dumps(twice))
    moved = _edit(
        document, ("shards", 1, "tensors"), document["shards"][1]["tensors"] + [document["shards"][0]["tensors"][0]]
    )
    moved["shards"][1]["size"] = document["shards"][1]["size"] + document["shards"][0]["size"]
    for replica in moved["shards"][1]["replicas"]:
        replica["size"] = moved["shards"][1]["size"] + 16
    with pytest.raises(ManifestRejected, match="name a tensor in two shards"):
        parse_manifest(json.dumps(moved))
    files = _edit(document, ("files",), [document["files"][0], document["files"][0]])
    with pytest.raises(ManifestRejected, match="name a file twice"):
        parse_manifest(json.dumps(files))


def test_deep_huge_and_broken_documents_are_refused_before_parsing(manifest):
    with pytest.raises(ManifestRejected, match="nested more than 6 levels"):
        parse_manifest("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ManifestRejected, match="over the 16,777,216-byte limit"):
        parse_manifest(b" " * (MAX_MANIFEST_BYTES + 1))
    with pytest.raises(ManifestRejected, match="not valid JSON"):
        parse_manifest(b'{"format": ')
    with pytest.raises(ManifestRejected, match="not UTF-8"):
        parse_manifest(b"\xff\xfe")
    with pytest.raises(ManifestRejected, match="the document must be an object"):
        parse_manifest(b"[]")
    with pytest.raises(ManifestRejected, match="shards has 5,000 entries, more than the 4,096 allowed"):
        parse_manifest(json.dumps(_edit(manifest.to_dict(), ("shards",), [0] * 5000)))
