"""Errors of the chain layer.

Every expected failure (bad input, missing setup, node down, on-chain revert) is a `ChainError` whose
message is one self-explanatory line: the CLI prints it as `error: <message>` and exits 1, without a
traceback. Anything else escaping the chain layer is a bug and keeps its traceback.
"""


class ChainError(Exception):
    """Base of the expected failures; `str(error)` is a complete sentence for the user."""


class ArtifactMissing(ChainError):
    """A contract's compiled artifact is not in build/contracts."""


class NoDeployment(ChainError):
    """No usable deployment of the network is recorded for this chain."""


class DeploymentExists(ChainError):
    """A live deployment is already recorded for this chain; deploying again would orphan it."""


class SignerUnavailable(ChainError):
    """No signing key is configured, or the configured one cannot be loaded."""


class NodeUnavailable(ChainError):
    """The RPC endpoint does not answer (refused, timed out or not a JSON-RPC node)."""


class InvalidRequest(ChainError):
    """The request is wrong before anything is sent: unknown role, bad amount, too small, unfunded."""


class TransactionRejected(ChainError):
    """The node refused to accept a signed transaction (funds for gas, fees, nonce ...)."""


class TransactionReverted(ChainError):
    """The transaction reverts (in gas estimation or on-chain); `reason` is the decoded revert reason."""

    def __init__(self, message: str, reason: str | None = None, tx_hash: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.tx_hash = tx_hash


class ReceiptTimeout(ChainError):
    """A sent transaction was not mined within the receipt timeout (it may still be mined later)."""

    def __init__(self, message: str, tx_hash: str):
        super().__init__(message)
        self.tx_hash = tx_hash
