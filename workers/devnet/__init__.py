"""`deepshard devnet up|status|down|env`: a local Deepshard network that keeps running in the background.

`up` starts anvil (interval mining, one block a second by default), deploys the contracts with short windows
(`devnet_params`), funds and stakes one account per role from anvil's dev mnemonic, checks Redis, and starts in
the background a keeper worker (with the watcher; it draws panels, finalizes, settles and opens rounds with the
sample spec) and the curator, trainer and evaluator workers, each a `deepshard worker` process with its log
file. Their PIDs, ports and logs are in the state file (`devnet.json` in the devnet's folder); `status` reads it,
`down` stops exactly those processes by their PIDs.

The dev keys are PUBLIC (anvil's mnemonic): use them on this throwaway chain only.
"""

from .network import (
    Devnet,
    DevnetError,
    devnet_dir,
    devnet_down,
    devnet_env,
    devnet_params,
    devnet_status,
    devnet_up,
)

__all__ = [
    "Devnet",
    "DevnetError",
    "devnet_dir",
    "devnet_down",
    "devnet_env",
    "devnet_params",
    "devnet_status",
    "devnet_up",
]
