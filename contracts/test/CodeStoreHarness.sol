// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {CodeStore} from "../libraries/CodeStore.sol";

/// @title CodeStoreHarness
/// @notice Test-only: external wrappers around `CodeStore`, for round trips of write-once blobs.
contract CodeStoreHarness {
    /// @notice The pointer of the last `write`.
    address public lastPointer;

    /// @notice Stores `data` as the code of a new contract (reverts `TooLarge` above 24,575 bytes).
    /// @param data The bytes to store.
    /// @return pointer The address holding it.
    function write(bytes calldata data) external returns (address pointer) {
        pointer = CodeStore.write(data);
        lastPointer = pointer;
    }

    /// @notice The data stored at `pointer` (empty for an address that stores nothing).
    /// @param pointer The address holding it.
    /// @return The stored bytes.
    function read(address pointer) external view returns (bytes memory) {
        return CodeStore.read(pointer);
    }
}
