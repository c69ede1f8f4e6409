"""CodeStore (through CodeStoreHarness): any blob up to 24,575 bytes reads back byte for byte, calling a
pointer runs nothing, an address that stores nothing reads empty, and a larger blob reverts TooLarge."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contracts.conftest import reverts
from tests.contracts.libraries.conftest import EXAMPLES

LIMIT = 24_575  # EIP-170's 24,576 bytes of code, less the STOP byte in front of the data


def test_round_trip(code_store):
    @settings(max_examples=EXAMPLES, deadline=None)
    @given(st.one_of(st.binary(max_size=64), st.binary(min_size=1_000, max_size=2_048)))
    def check(blob):
        code_store.write(blob)
        assert bytes(code_store.read(code_store.lastPointer())) == blob

    check()


def test_largest_blob_and_the_limit(code_store, web3, deployer):
    blob = bytes(range(256)) * (LIMIT // 256) + b"\xff" * (LIMIT % 256)
    code_store.write(blob)  # (the pointer is read from storage: Ganache cannot trace this transaction)
    pointer = code_store.lastPointer()
    assert bytes(code_store.read(pointer)) == blob
    assert web3.eth.get_code(pointer)[:1] == b"\x00"  # a STOP in front: calling the pointer does nothing
    deployer.transfer(pointer, 0)
    with reverts("TooLarge", LIMIT + 1):
        code_store.write(blob + b"\x00")


def test_empty_and_foreign_addresses(code_store, deployer):
    code_store.write(b"")
    assert bytes(code_store.read(code_store.lastPointer())) == b""
    assert bytes(code_store.read(deployer)) == b""  # no code: nothing stored
