"""`deepshard storage add` / `deepshard storage get`."""

from __future__ import annotations

import time

import pytest
from services import NO_HANG_SECONDS

from workers.cli import main
from workers.storage import API_ENV, MAX_SIZE_ENV, STORE_DIR_ENV
from workers.storage.testing import free_port
from workers.storage.unixfs import cid_of_file

pytestmark = pytest.mark.filterwarnings("ignore:The 'strict' parameter is no longer needed:FutureWarning")

MISSING = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def run(*argv: str) -> int:
    return main(list(argv))


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


@pytest.fixture
def store_dir(tmp_path, monkeypatch):
    folder = tmp_path / "store"
    monkeypatch.setenv(STORE_DIR_ENV, str(folder))
    return folder


def test_embedded_round_trip(store_dir, sample_files, tmp_path, capsys):
    source = sample_files["chunk-plus-one"]
    assert run("storage", "add", str(source)) == 0
    cid = capsys.readouterr().out.strip()
    assert cid == str(cid_of_file(source))
    assert (store_dir / "blocks").is_dir()

    out = tmp_path / "copy.bin"
    assert run("storage", "get", cid, "-o", str(out)) == 0
    assert capsys.readouterr().out == f"wrote {source.stat().st_size} bytes to {out}\n"
    assert out.read_bytes() == source.read_bytes()


# Known answers, from Kubo and js-ipfs (`ipfs add --cid-version=1 --raw-leaves`): a regression guard independent
# of our own CID code, on both store paths.
KNOWN_CIDS = {
    "empty file": (b"", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    "hello world": (b"hello world\n", "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"),
}


@pytest.mark.parametrize("name", KNOWN_CIDS)
@pytest.mark.parametrize("path", ["embedded", "ipfs"])
def test_known_answer_cids(js_ipfs, store_dir, tmp_path, capsys, name, path):
    data, expected = KNOWN_CIDS[name]
    source = tmp_path / "source.txt"
    source.write_bytes(data)
    node = ["--ipfs-api", js_ipfs.api] if path == "ipfs" else []
    assert run("storage", "add", str(source), *node) == 0
    assert capsys.readouterr().out.strip() == expected
    out = tmp_path / "copy.txt"
    assert run("storage", "get", expected, "-o", str(out), *node) == 0
    assert out.read_bytes() == data


def test_ipfs_round_trip_gives_the_embedded_cid(js_ipfs, store_dir, sample_files, tmp_path, capsys, monkeypatch):
    source = sample_files["chunk-plus-one"]
    assert run("storage", "add", str(source), "--ipfs-api", js_ipfs.api) == 0
    cid = capsys.readouterr().out.strip()
    assert cid == str(cid_of_file(source))

    monkeypatch.setenv(API_ENV, js_ipfs.api)  # the environment selects the node as well
    out = tmp_path / "copy.bin"
    assert run("storage", "get", cid, "-o", str(out)) == 0
    assert out.read_bytes() == source.read_bytes()
    assert not (store_dir / "blocks").exists()  # the embedded store was never used


def test_malformed_cid(store_dir, tmp_path, capsys):
    assert run("storage", "get", "not-a-cid", "-o", str(tmp_path / "out")) == 1
    assert "is not a valid CID" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_missing_file(store_dir, tmp_path, capsys):
    assert run("storage", "add", str(tmp_path / "absent.bin")) == 1
    assert "cannot read" in one_error_line(capsys)


def test_missing_cid_on_ipfs_within_the_timeout(js_ipfs, tmp_path, capsys):
    started = time.monotonic()
    assert run("storage", "get", MISSING, "-o", str(tmp_path / "out"), "--ipfs-api", js_ipfs.api, "--timeout", "1") == 1
    assert time.monotonic() - started < NO_HANG_SECONDS
    assert f"could not find {MISSING} within 1 s" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_unreachable_node(sample_files, capsys):
    api = f"/ip4/127.0.0.1/tcp/{free_port()}/http"
    assert run("storage", "add", str(sample_files["one-byte"]), "--ipfs-api", api) == 1
    assert f"the IPFS node at {api} is unreachable" in one_error_line(capsys)


def test_oversized_file(store_dir, sample_files, monkeypatch, capsys):
    monkeypatch.setenv(MAX_SIZE_ENV, "262144")
    assert run("storage", "add", str(sample_files["chunk-plus-one"])) == 1
    assert "above the maximum size of 262144 bytes" in one_error_line(capsys)


def test_tampered_content_is_not_written(store_dir, tmp_path, capsys):
    source = tmp_path / "source.bin"
    source.write_bytes(b"precious data")
    assert run("storage", "add", str(source)) == 0
    cid = capsys.readouterr().out.strip()
    [block] = [p for p in (store_dir / "blocks").rglob(cid)]
    block.write_bytes(b"tampered data")
    out = tmp_path / "out.bin"
    assert run("storage", "get", cid, "-o", str(out)) == 1
    assert "does not match its CID" in one_error_line(capsys)
    assert not out.exists()


def test_bad_timeout(store_dir, tmp_path, capsys):
    assert run("storage", "get", MISSING, "-o", str(tmp_path / "out"), "--timeout", "0") == 1
    assert "--timeout" in one_error_line(capsys)
