"""`deepshard weights fetch` over a local manifest: the key from a file or from shares sealed to the buyer, every
failure one `error:` line with nothing written, and no secret echoed."""

from __future__ import annotations

import subprocess
import sys
import types

from shardkit import VERSION

from workers.cli import main
from workers.shards import seal_share, split_key


def fetch(manifest_file, weights_hash: str, output, store, *extra: str) -> int:
    return main(
        ["weights", "fetch", str(manifest_file), "--weights-hash", weights_hash, "-o", str(output)]
        + ["--store-dir", str(store), *extra]
    )


def test_fetch_with_the_key_file(tiny, manifest_file, one_store, version_key, tmp_path, capsys):
    key_file = tmp_path / "key"
    key_file.write_text("0x" + version_key.hex() + "\n")
    assert fetch(manifest_file, tiny.weights_hash, tmp_path / "out", one_store, "--key-file", str(key_file)) == 0
    out = capsys.readouterr().out
    assert f"version {VERSION}: 6 shards verified, weights {tiny.weights_hash}" in out
    assert (tmp_path / "out" / "model.safetensors").is_file() and (tmp_path / "out" / "tokenizer.json").is_file()


def test_fetch_with_shares_sealed_to_the_buyer(tiny, manifest_file, one_store, version_key, buyer, tmp_path, capsys):
    private, public = buyer
    (tmp_path / "buyer").write_text(private.hex())
    shares = split_key(version_key, 5, 3)
    paths = []
    for number, share in enumerate(shares[:3]):
        paths += ["--share", str(tmp_path / f"share{number}")]
        (tmp_path / f"share{number}").write_text(seal_share(share, public, version=VERSION).hex())
    buyer_key = ["--buyer-key", str(tmp_path / "buyer")]
    assert fetch(manifest_file, tiny.weights_hash, tmp_path / "out", one_store, *buyer_key, *paths) == 0
    assert "6 shards verified" in capsys.readouterr().out

    assert fetch(manifest_file, tiny.weights_hash, tmp_path / "two", one_store, *buyer_key, *paths[:4]) == 1
    assert "committed key hash" in capsys.readouterr().err
    assert not (tmp_path / "two").exists()


def test_failures_are_one_line_and_never_show_the_secret(tiny, manifest_file, one_store, version_key, tmp_path, capsys):
    key_file = tmp_path / "key"
    key_file.write_text(version_key.hex()[:-2])
    assert fetch(manifest_file, tiny.weights_hash, tmp_path / "out", one_store, "--key-file", str(key_file)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the key file") and "64 hex digits" in err
    assert version_key.hex()[:16] not in err

    key_file.write_text(version_key.hex())
    assert fetch(manifest_file, "0x" + "00" * 32, tmp_path / "out", one_store, "--key-file", str(key_file)) == 1
    assert "the registry's version is 0x0000" in capsys.readouterr().err

    manifest_file.write_text("[" * 1000 + "]" * 1000)
    assert fetch(manifest_file, tiny.weights_hash, tmp_path / "out", one_store, "--key-file", str(key_file)) == 1
    assert "nested more than" in capsys.readouterr().err

    assert fetch(manifest_file, tiny.weights_hash, tmp_path / "out", one_store) == 1
    assert "give either --key-file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_package_exports_resolve_and_the_cli_stays_light():
    import workers.shards

    for name in workers.shards.__all__:
        assert not isinstance(getattr(workers.shards, name), types.ModuleType), name
    check = "import sys, workers.cli; sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], check=False).returncode == 0
