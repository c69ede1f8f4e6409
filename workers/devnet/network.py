"""The devnet's processes and state (see the package docstring).

Layout of a devnet folder (`--dir`, else $DEEPSHARD_DEVNET_DIR, else $XDG_DATA_HOME/deepshard/devnet):

    devnet.json     the state: chain, Redis, accounts, and each process's PID, start time and log
    deployments/    the deployment record of the chain (DEEPSHARD_DEPLOYMENTS_DIR of every process)
    store/          the content store the workers share (DEEPSHARD_STORE_DIR)
    votes/<name>/   each process's commitment salts (DEEPSHARD_VOTES_DIR)
    logs/<name>.log each process's output

Each `up` starts a fresh chain: the devnet's Redis database (one of its own, marked with the key
`deepshard:devnet`) is emptied first, so no watcher cursor, worker registration or queued task of an earlier
chain is followed; the deployment record and the salts of the earlier chain are deleted; the content store is
kept (content-addressed, it is valid on any chain).

A process is identified by its PID *and* its start time (field 22 of /proc/<pid>/stat), so `down` never signals
a process that reused the PID of one that already ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..chain.errors import ChainError

if TYPE_CHECKING:
    from ..chain import ChainClient, DeployParams

# web3, Redis and the workers' packages are imported where used: `devnet status` and `down` start fast.

STATE_FILE = "devnet.json"
DEVNET_DIR_ENV = "DEEPSHARD_DEVNET_DIR"
DEFAULT_PORT = 18545
#: A database of its own on the local Redis: `up` empties it (see the module docstring).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
MARKER_KEY = "deepshard:devnet"
READY_MARKER = " ready."
READY_TIMEOUT = 180.0
STOP_TIMEOUT = 30.0


def devnet_params() -> DeployParams:
    """Windows in blocks (one a second by default): the data consensus takes about 25 s, a training round on the
    sample spec about 110 s. The commit windows hold a job of the warmed-up trainer or evaluator (about 10 s on
    a 2-core machine under load, measured) four times over. The keeper finalizes as soon as every seat revealed,
    so the long reveal windows of the panels cost nothing unless a seat stays silent; they keep a slow reveal
    from failing the vote. A round needs one accepted delta (one trainer is enough)."""
    from ..chain import DataConsensusParams, DeployParams, TrainingRoundsParams

    return DeployParams(
        data_consensus=DataConsensusParams(commit_window=12, reveal_window=60),
        training_rounds=TrainingRoundsParams(
            train_commit_window=40,
            train_reveal_window=15,
            eval_commit_window=40,
            eval_reveal_window=120,
            min_accepted=1,
        ),
    )


FUNDING_DSH = "10,000"
INFORMANT_FUNDING_DSH = "20,000"
#: role -> (DSH staked, DSH bonded in the role's panel pool or None)
STAKES: dict[str, tuple[str, str | None]] = {
    "informant": ("1,000", None),
    "curator": ("2,000", "1,000"),
    "trainer": ("2,000", None),
    "evaluator": ("2,000", "1,000"),
}
WORKER_ROLES = ("keeper", "curator", "trainer", "evaluator")


class DevnetError(ChainError):
    """The devnet cannot do what was asked (one line saying why and what to do)."""


@dataclass
class Proc:
    """One background process of the devnet."""

    name: str
    role: str  # "chain" for anvil, else the worker's role
    pid: int
    start_ticks: int  # field 22 of /proc/<pid>/stat: with the PID, identifies the process
    log: str | None = None
    account: str | None = None

    def alive(self) -> bool:
        return process_start_ticks(self.pid) == self.start_ticks


@dataclass
class Devnet:
    """The state file's content."""

    folder: str
    rpc_url: str
    port: int
    chain_id: int
    block_time: int  # seconds
    redis_url: str
    started: str
    accounts: dict[str, dict] = field(default_factory=dict)  # name -> {"address", "index", "role"}
    processes: list[Proc] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return Path(self.folder)

    def save(self) -> None:
        data = asdict(self)
        tmp = self.path / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.path / STATE_FILE)

    @classmethod
    def load(cls, folder: Path) -> Devnet | None:
        """The state in `folder`, or None when there is none; `DevnetError` if it is unreadable."""
        path = folder / STATE_FILE
        try:
            data = json.loads(path.read_text())
            data["processes"] = [Proc(**p) for p in data["processes"]]
            return cls(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise DevnetError(f"the devnet state {path} is unreadable ({exc}): delete it and run `devnet up`") from None

    def environment(self, name: str) -> dict[str, str]:
        """The DEEPSHARD_* settings of the process (or user) signing as account `name`."""
        from ..chain.deployments import DEPLOYMENTS_DIR_ENV
        from ..chain.localnode import dev_account
        from ..chain.salts import VOTES_DIR_ENV
        from ..tasks.app import REDIS_URL_ENV

        account = self.accounts[name]
        return {
            "DEEPSHARD_RPC_URL": self.rpc_url,
            REDIS_URL_ENV: self.redis_url,
            DEPLOYMENTS_DIR_ENV: str(self.path / "deployments"),
            "DEEPSHARD_STORE_DIR": str(self.path / "store"),
            VOTES_DIR_ENV: str(self.path / "votes" / name),
            # The dev key of a PUBLIC mnemonic: this throwaway chain only.
            "DEEPSHARD_PRIVATE_KEY": dev_account(int(account["index"])).key.hex(),
        }


def devnet_dir(folder: str | os.PathLike | None = None) -> Path:
    """`folder`, else $DEEPSHARD_DEVNET_DIR, else $XDG_DATA_HOME/deepshard/devnet (~/.local/share/...)."""
    if folder:
        return Path(folder).expanduser().resolve()
    configured = os.environ.get(DEVNET_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "deepshard" / "devnet"


# ---------------------------------------------------------------- processes


def process_start_ticks(pid: int) -> int | None:
    """The start time (clock ticks after boot) of a live, non-zombie process `pid`; None if there is none."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def descendants(pid: int) -> list[int]:
    """The PIDs of the children of `pid`, their children, and so on."""
    out: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out.extend(children)
            pending.extend(children)
    return out


def stop_processes(procs: list[Proc], timeout: float = STOP_TIMEOUT, say: Callable[[str], None] = print) -> None:
    """SIGTERM to each live process (a Celery worker shuts down warm), then SIGKILL to whatever of them and their
    descendants is still running after `timeout` seconds. Signals only these PIDs."""
    targets: list[tuple[Proc, list[tuple[int, int]]]] = []
    for proc in procs:
        if not proc.alive():
            continue
        family = [(pid, ticks) for pid in descendants(proc.pid) if (ticks := process_start_ticks(pid)) is not None]
        with contextlib.suppress(ProcessLookupError):  # it may exit between the check and the signal
            os.kill(proc.pid, signal.SIGTERM)
        targets.append((proc, family))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(proc.alive() for proc, _ in targets):
        time.sleep(0.2)
    for proc, family in targets:
        forced = []
        for pid, ticks in [(proc.pid, proc.start_ticks), *family]:
            if process_start_ticks(pid) == ticks:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                forced.append(pid)
        say(f"stopped {proc.name} (pid {proc.pid}{', killed ' + str(forced) if forced else ''})")


def _spawn(command: list[str], env: dict[str, str], log_path: Path) -> Proc:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEEPSHARD_")}
    environment.update({"PYTHONUNBUFFERED": "1", **env})
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives `devnet up` and a Ctrl-C in its terminal
        )
    ticks = process_start_ticks(process.pid)
    return Proc("", "", process.pid, ticks or 0, str(log_path))


# ---------------------------------------------------------------- chain and Redis


def _rpc(url: str, method: str, params: list | None = None, timeout: float = 2.0):
    """One JSON-RPC call with the standard library (status needs no web3); None when the node does not answer."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read()).get("result")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def prepare_redis(url: str, folder: Path) -> None:
    """Checks that Redis answers at `url` and that its database is the devnet's own (empty, or marked by an
    earlier `up`), then empties it for a fresh chain and marks it. `DevnetError` otherwise."""
    import redis as redis_lib

    client = redis_lib.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
    try:
        client.ping()
        if client.dbsize() and not client.exists(MARKER_KEY):
            raise DevnetError(
                f"the Redis database {url} holds {client.dbsize():,} keys that are not a devnet's: give "
                "--redis a database of its own (e.g. redis://127.0.0.1:6379/15); `up` empties it"
            )
        client.flushdb()
        client.set(MARKER_KEY, str(folder))
    except redis_lib.exceptions.RedisError as exc:
        raise DevnetError(
            f"Redis at {url} does not answer ({exc}): start it (`redis-server`), or give --redis URL"
        ) from None
    finally:
        client.close()


def _redis_answers(url: str) -> bool:
    import redis as redis_lib

    client = redis_lib.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis_lib.exceptions.RedisError:
        return False
    finally:
        client.close()


def _account_plan(curators: int, trainers: int, evaluators: int) -> dict[str, dict]:
    """Dev account indices: 0 the treasury (deployer), 1 the keeper, 2 the informant ("you"), then the workers."""
    from ..chain.localnode import dev_account

    plan: dict[str, dict] = {
        "treasury": {"index": 0, "role": "treasury"},
        "keeper": {"index": 1, "role": "keeper"},
        "informant": {"index": 2, "role": "informant"},
    }
    index = 3
    for role, count in (("curator", curators), ("trainer", trainers), ("evaluator", evaluators)):
        for n in range(1, count + 1):
            plan[f"{role}-{n}"] = {"index": index, "role": role}
            index += 1
    for entry in plan.values():
        entry["address"] = dev_account(entry["index"]).address
    return plan


def _stake_accounts(treasury: ChainClient, accounts: dict[str, dict], say: Callable[[str], None]) -> None:
    from ..chain import stake as stake_role
    from ..chain.localnode import dev_signer
    from ..chain.tokens import transfer_dsh
    from ..chain.units import parse_dsh
    from ..data.chain import DataConsensusClient
    from ..rounds.chain import TrainingRoundsClient

    staked = {name: entry for name, entry in accounts.items() if entry["role"] in STAKES}
    pending = [
        transfer_dsh(
            treasury,
            entry["address"],
            INFORMANT_FUNDING_DSH if entry["role"] == "informant" else FUNDING_DSH,
            wait=False,
        ).tx_hash
        for entry in staked.values()
    ]
    for tx_hash in pending:
        treasury.wait(tx_hash, "DSH funding transfer")
    for name, entry in staked.items():
        client = treasury.with_signer(dev_signer(entry["index"]))
        amount, pool = STAKES[entry["role"]]
        stake_role(client, entry["role"], amount)
        if pool is not None:
            module = TrainingRoundsClient(client) if entry["role"] == "evaluator" else DataConsensusClient(client)
            module.join_pool(parse_dsh(pool))
        say(f"  {name:<12} {entry['address']}  {amount} DSH {entry['role'].upper()}{f', pool {pool}' if pool else ''}")


# ---------------------------------------------------------------- up, status, down


def devnet_up(
    folder: Path,
    *,
    port: int = DEFAULT_PORT,
    block_time: int = 1,
    redis_url: str = DEFAULT_REDIS_URL,
    curators: int = 1,
    trainers: int = 1,
    evaluators: int = 1,
    params: DeployParams | None = None,
    say: Callable[[str], None] = print,
) -> Devnet:
    """Starts the devnet in `folder` (package docstring); returns its state. On any failure, what was started is
    stopped again and `DevnetError` (or the chain's error) says why."""
    from ..chain import ChainClient, deploy_network
    from ..chain.localnode import DEV_MNEMONIC, dev_signer, start_anvil

    if block_time < 1:
        raise DevnetError(f"--block-time must be a whole number of seconds, at least 1, not {block_time}")
    folder.mkdir(parents=True, exist_ok=True)
    previous = Devnet.load(folder)
    if previous is not None:
        running = [p for p in previous.processes if p.alive()]
        if running:
            raise DevnetError(
                f"a devnet is already running in {folder} ({len(running)} processes): "
                "`deepshard devnet status`, or `deepshard devnet down` first"
            )
    prepare_redis(redis_url, folder)
    for stale in ("deployments", "votes"):
        shutil.rmtree(folder / stale, ignore_errors=True)

    accounts = _account_plan(curators, trainers, evaluators)
    node = start_anvil(port, accounts=len(accounts), new_session=True)
    started: list[Proc] = [Proc("anvil", "chain", node.pid, process_start_ticks(node.pid) or 0)]
    try:
        treasury = ChainClient(node.url, dev_signer(0), deployments_dir=folder / "deployments")
        state = Devnet(
            str(folder),
            node.url,
            node.port,
            treasury.chain_id,
            block_time,
            redis_url,
            datetime.now(UTC).isoformat(timespec="seconds"),
            accounts,
            started,
        )
        state.save()  # from here on, `down` can stop what runs even if `up` is interrupted
        say(f"anvil on {node.url} (pid {node.pid}), chain id {state.chain_id}; dev keys of the PUBLIC mnemonic")
        say(f"  {DEV_MNEMONIC!r}: use them on this throwaway chain only")
        deploy_network(treasury, params or devnet_params())
        say(f"contracts deployed, recorded in {folder / 'deployments'}")
        _stake_accounts(treasury, accounts, say)
        # Deployed and staked at once (automine); from now on blocks come at the block time, as on a real chain.
        response = treasury.w3.provider.make_request("evm_setIntervalMining", [block_time])  # type: ignore[arg-type]
        if "error" in response:
            raise DevnetError(f"anvil refused interval mining: {response['error']}")

        for name, entry in accounts.items():
            if entry["role"] not in WORKER_ROLES:
                continue
            command = [sys.executable, "-m", "workers.cli", "worker", "--role", entry["role"], "--rpc", node.url]
            command += ["--pool", "solo"]  # one process per worker: small, and stopped by one PID
            env = state.environment(name)
            env["DEEPSHARD_MAX_WAIT"] = str(max(5.0, 5 * block_time))
            proc = _spawn(command, env, folder / "logs" / f"{name}.log")
            proc.name, proc.role, proc.account = name, entry["role"], entry["address"]
            started.append(proc)
            state.save()
        say(f"started {len(started) - 1} workers; waiting for each to be ready (logs in {folder / 'logs'})")
        _wait_ready(started[1:])
    except BaseException:
        stop_processes(started, say=lambda line: None)
        (folder / STATE_FILE).unlink(missing_ok=True)
        raise
    return state


def _wait_ready(procs: list[Proc]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    waiting = list(procs)
    while waiting:
        for proc in list(waiting):
            text = Path(proc.log or "").read_text(errors="replace") if proc.log else ""
            if READY_MARKER in text:
                waiting.remove(proc)
            elif not proc.alive():
                last = [line for line in text.splitlines() if line.strip()][-1:] or ["(no output)"]
                raise DevnetError(f"the {proc.name} worker exited before it was ready: {last[0]} (log {proc.log})")
        if waiting and time.monotonic() > deadline:
            names = ", ".join(p.name for p in waiting)
            logs = Path(waiting[0].log or "").parent
            raise DevnetError(f"{names} not ready within {READY_TIMEOUT:g} s (logs in {logs})")
        time.sleep(0.2)


def devnet_status(folder: Path) -> dict:
    """What runs where: the chain (its head block), Redis, each process (alive or not), as plain JSON."""
    state = Devnet.load(folder)
    if state is None:
        raise DevnetError(f"no devnet in {folder}: start one with `deepshard devnet up`")
    head = _rpc(state.rpc_url, "eth_blockNumber")
    return {
        "folder": state.folder,
        "started": state.started,
        "rpc_url": state.rpc_url,
        "chain_id": state.chain_id,
        "block_time": state.block_time,
        "head_block": int(head, 16) if isinstance(head, str) else None,
        "redis_url": state.redis_url,
        "redis_answers": _redis_answers(state.redis_url),
        "deployments": str(state.path / "deployments"),
        "processes": [
            {
                "name": p.name,
                "role": p.role,
                "pid": p.pid,
                "running": p.alive(),
                "account": p.account,
                "log": p.log,
                "port": state.port if p.role == "chain" else None,
            }
            for p in state.processes
        ],
    }


def devnet_down(folder: Path, say: Callable[[str], None] = print) -> list[Proc]:
    """Stops the devnet's processes (workers first, the chain last) by their PIDs; returns them. The state file
    is removed; the folder's logs and store are kept."""
    state = Devnet.load(folder)
    if state is None:
        raise DevnetError(f"no devnet in {folder}: nothing to stop")
    workers = [p for p in state.processes if p.role != "chain"]
    stop_processes(workers, say=say)
    stop_processes([p for p in state.processes if p.role == "chain"], say=say)
    (folder / STATE_FILE).unlink(missing_ok=True)
    return state.processes


def devnet_env(folder: Path, name: str = "informant") -> str:
    """`export` lines of the settings to act as account `name` on the devnet (for `eval "$(...)"`)."""
    state = Devnet.load(folder)
    if state is None:
        raise DevnetError(f"no devnet in {folder}: start one with `deepshard devnet up`")
    if name not in state.accounts:
        raise DevnetError(f"no account {name!r} on this devnet; one of {', '.join(state.accounts)}")
    lines = [f"export {key}={shlex.quote(value)}" for key, value in state.environment(name).items()]
    return "\n".join(lines)


__all__ = [
    "devnet_params",
    "Devnet",
    "DevnetError",
    "Proc",
    "devnet_dir",
    "devnet_down",
    "devnet_env",
    "devnet_status",
    "devnet_up",
    "process_start_ticks",
]
