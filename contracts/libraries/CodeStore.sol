// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// @title CodeStore
/// @notice Write-once data kept as the bytecode of a tiny contract: writing costs 200 gas a byte instead of
///         20,000 a word, and reading it back is one cold account access plus 3 gas a word, instead of
///         2,100 gas per storage slot. Suits large blobs written once and read whole, such as fingerprints.
/// @dev The stored code is the data behind a STOP byte, so calling the pointer executes nothing.
library CodeStore {
    /// @dev Initcode header (10 bytes) that returns everything after itself as the new contract's code:
    ///      PUSH2 <length>, DUP1, PUSH1 0x0a, RETURNDATASIZE (0), CODECOPY, RETURNDATASIZE (0), RETURN.
    bytes7 private constant HEADER_TAIL = 0x80600a3d393df3;

    error WriteFailed();
    error TooLarge(uint256 length);

    /// @notice Stores `data` and returns the address that holds it.
    /// @param data At most 24,575 bytes.
    /// @return pointer The address of the contract holding it.
    function write(bytes memory data) internal returns (address pointer) {
        uint256 codeLength = data.length + 1; // the STOP byte
        if (codeLength > 24_576) revert TooLarge(data.length);
        bytes memory initcode = abi.encodePacked(bytes1(0x61), uint16(codeLength), HEADER_TAIL, bytes1(0x00), data);
        assembly ("memory-safe") {
            pointer := create(0, add(initcode, 0x20), mload(initcode))
        }
        if (pointer == address(0)) revert WriteFailed();
    }

    /// @notice The data stored at `pointer` (empty for an address that stores nothing).
    /// @param pointer An address `write` returned.
    /// @return data The stored bytes.
    function read(address pointer) internal view returns (bytes memory data) {
        uint256 codeLength = pointer.code.length;
        if (codeLength == 0) return data;
        data = new bytes(codeLength - 1);
        assembly ("memory-safe") {
            extcodecopy(pointer, add(data, 0x20), 1, sub(codeLength, 1))
        }
    }
}
