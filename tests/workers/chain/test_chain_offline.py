"""Parts of workers.chain that need no node: units, roles, artifacts, deployment records, revert decoding."""

import json
import re
from decimal import Decimal

import pytest
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector

from workers.chain import (
    ArtifactMissing,
    ChainClient,
    InvalidRequest,
    NoDeployment,
    NodeUnavailable,
    format_dsh,
    load_artifact,
    load_deployment,
    parse_dsh,
    parse_role,
    save_deployment,
)
from workers.chain.artifacts import PROJECT_ROOT_ENV
from workers.chain.client import display_url
from workers.chain.deployments import deployment_path
from workers.chain.endpoint import RPC_TIMEOUT_ENV, default_rpc_timeout, normalise_rpc_url
from workers.chain.revert import decode_revert
from workers.chain.units import format_eth


@pytest.mark.parametrize(
    "text, wei",
    [
        ("1000", 1000 * 10**18),
        ("12.5", 125 * 10**17),
        (" 0.000000000000000001 ", 1),
        (Decimal("2"), 2 * 10**18),
        (7, 7 * 10**18),
        ("1,000", 1000 * 10**18),
        ("1,000.5", 10005 * 10**17),
        ("12,345,678", 12_345_678 * 10**18),
        ("1_000", 1000 * 10**18),
    ],
)
def test_parse_dsh(text, wei):
    assert parse_dsh(text) == wei


@pytest.mark.parametrize(
    "text", ["0", "-1", "abc", "1e-19", "0.0000000000000000001", "nan", "inf", "", "1,5", "1,0000", ",100", "1.000,5"]
)
def test_parse_dsh_rejects(text):
    with pytest.raises(InvalidRequest):
        parse_dsh(text)


def test_format_dsh():
    assert format_dsh(125 * 10**17) == "12.5"
    assert format_dsh(10**18) == "1"
    assert format_dsh(1) == "0.000000000000000001"
    assert format_dsh(1_234_567 * 10**18, grouped=True) == "1,234,567"
    assert parse_dsh(format_dsh(123456789123456789123)) == 123456789123456789123


def test_parse_role_is_case_insensitive():
    assert parse_role("trainer") == 2
    assert parse_role("Inference") == 5
    with pytest.raises(InvalidRequest, match="unknown role 'miner'.*INFORMANT"):
        parse_role("miner")


def test_missing_artifacts_point_at_make_setup(monkeypatch, tmp_path):
    monkeypatch.setenv(PROJECT_ROOT_ENV, str(tmp_path))
    with pytest.raises(ArtifactMissing, match="run `make setup`"):
        load_artifact("StakeRegistry")


def test_artifact_has_abi_and_bytecode():
    artifact = load_artifact("StakeRegistry")
    assert artifact.bytecode.startswith("0x") and len(artifact.bytecode) > 100
    assert any(entry.get("name") == "stake" for entry in artifact.abi)
    assert not artifact.libraries


def test_library_addresses_are_linked_into_the_creation_code():
    unlinked = load_artifact("TrainingRounds")
    assert set(unlinked.libraries) == {"FingerprintAggregation", "TrainerBonds"}
    assert any(entry.get("name") == "finalize" for entry in unlinked.abi)  # the ABI needs no linking
    with pytest.raises(ArtifactMissing, match="FingerprintAggregation"):
        unlinked.bytecode  # noqa: B018  (the property refuses unlinked code)
    with pytest.raises(InvalidRequest, match="FingerprintAggregation"):
        unlinked.link({})
    with pytest.raises(InvalidRequest, match="TrainerBonds"):
        unlinked.link({"FingerprintAggregation": "0x" + "ab" * 20})
    with pytest.raises(InvalidRequest, match="not an address"):
        unlinked.link({"FingerprintAggregation": "0x1234", "TrainerBonds": "0x" + "cd" * 20})
    libraries = {"FingerprintAggregation": "ab" * 20, "TrainerBonds": "cd" * 20}
    linked = unlinked.link({name: "0x" + address for name, address in libraries.items()})
    code = bytes.fromhex(linked.bytecode[2:])  # every placeholder replaced: the code is plain hex now
    for name, address in libraries.items():
        offsets = unlinked.libraries[name]
        assert offsets and all(code[offset : offset + 20] == bytes.fromhex(address) for offset in offsets)
    assert len(code) * 2 + 2 == len(unlinked.creation_code)


def test_deployment_record_round_trip(tmp_path):
    record = {
        "chainId": 5,
        "deployBlock": 3,
        "deployer": "0x" + "11" * 20,
        "governance": "0x" + "22" * 20,
        "contracts": {"Emission": {"address": "0x" + "33" * 20, "artifact": "build/contracts/Emission.json"}},
    }
    path = save_deployment(record, tmp_path)
    assert path == deployment_path(5, tmp_path) == tmp_path / "5.json"
    assert load_deployment(5, tmp_path) == record


def test_missing_deployment_names_the_chain(tmp_path):
    with pytest.raises(NoDeployment, match="no deployment for chain 424242"):
        load_deployment(424242, tmp_path)


def test_invalid_deployment_record(tmp_path):
    (tmp_path / "7.json").write_text(json.dumps({"chainId": 8, "contracts": {}}))
    with pytest.raises(NoDeployment, match="invalid"):
        load_deployment(7, tmp_path)


def test_decode_revert_formats():
    selector = function_signature_to_4byte_selector("BelowMinimum(uint256,uint256)")
    below = selector + abi_encode(["uint256", "uint256"], [5, 10])
    assert decode_revert(below) == "BelowMinimum(stakeAfter=5, minStake=10)"
    assert decode_revert("0x" + below.hex()) == "BelowMinimum(stakeAfter=5, minStake=10)"
    message = bytes.fromhex("08c379a0") + abi_encode(["string"], ["nope"])
    assert decode_revert(message) == 'Error("nope")'
    panic = bytes.fromhex("4e487b71") + abi_encode(["uint256"], [0x11])
    assert decode_revert(panic) == "Panic(0x11: arithmetic overflow or underflow)"
    assert decode_revert("0x") is None
    assert decode_revert(bytes.fromhex("deadbeef")) == "unknown error 0xdeadbeef"


def test_display_url_hides_credentials():
    assert display_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
    assert display_url("https://user:secret@rpc.example.org/v3/0123456789abcdef") == "https://rpc.example.org/…"
    assert "KEY" not in display_url("https://rpc.example.org/?apikey=KEY")


def test_format_eth_truncates():
    assert format_eth(9998992421490634896923) == "9,998.992421"
    assert format_eth(10**18, places=4) == "1.0000"


@pytest.mark.parametrize(
    "given, url",
    [
        ("127.0.0.1:18545", "http://127.0.0.1:18545"),
        ("localhost:8545", "http://localhost:8545"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("https://rpc.example.org/v1/key", "https://rpc.example.org/v1/key"),
    ],
)
def test_rpc_url_without_a_scheme_is_http(given, url):
    assert normalise_rpc_url(given) == url


@pytest.mark.parametrize(
    "given, reason",
    [
        ("127.0.0.1", "names no port"),
        ("127.0.0.1:port", "invalid port"),
        ("ftp://127.0.0.1:21", "not an http(s) node URL"),
        ("http://", "not an http(s) node URL"),
    ],
)
def test_rpc_url_refused_with_one_clear_line(given, reason):
    with pytest.raises(InvalidRequest, match=re.escape(reason)):
        normalise_rpc_url(given)


def test_rpc_timeout_comes_from_the_environment_and_a_bad_one_is_refused(monkeypatch):
    monkeypatch.delenv(RPC_TIMEOUT_ENV, raising=False)
    assert default_rpc_timeout() == 10.0
    monkeypatch.setenv(RPC_TIMEOUT_ENV, "60")
    assert default_rpc_timeout() == 60.0
    for bad in ("0", "-3", "soon", "inf", "nan"):
        monkeypatch.setenv(RPC_TIMEOUT_ENV, bad)
        # Refused before any connection is tried (nothing listens on port 1).
        with pytest.raises(NodeUnavailable, match=f"{RPC_TIMEOUT_ENV} must be a positive number of seconds"):
            ChainClient("http://127.0.0.1:1")
