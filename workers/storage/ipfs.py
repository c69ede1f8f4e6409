"""The IPFS backend: a Kubo-compatible RPC API (Kubo, or js-ipfs in the tests) through ipfshttpclient.

- Adds ask for CIDv1, raw leaves and 256 KiB chunks, and the same bytes are hashed locally while they
  are uploaded: a node that builds another DAG (other defaults, a bug) is caught at once instead of
  silently handing out CIDs that the embedded store would not produce.
- Reads fetch block by block (`block/get`) and verify each one, so nothing unverified is returned.
- Every call carries a timeout twice: as the API's `timeout` parameter, so the node gives up and answers
  (js-ipfs otherwise waits forever for a CID nobody has), and on the client side, a little later, in
  case the node ignores it.
- `ipfshttpclient.connect()` refuses daemons newer than 0.8 (all current ones, and js-ipfs): the
  client is built directly.
"""

from __future__ import annotations

import contextlib
import io
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import ipfshttpclient
import requests
from ipfshttpclient import exceptions as ipfs_errors

from ..config import env_number
from .base import DEFAULT_MAX_SIZE, ContentStore
from .cids import Cid, parse_cid
from .errors import FileTooLarge, IntegrityError, NodeError, NodeUnreachable, NotFound, StorageError
from .unixfs import CHUNK_SIZE, FileDagBuilder

API_ENV = "DEEPSHARD_IPFS_API"
TIMEOUT_ENV = "DEEPSHARD_IPFS_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
# How much later than the node's own timeout the client gives up: enough for the node's answer to arrive.
CLIENT_GRACE = 2.0
# has() asks "held locally?": Kubo answers at once (offline=true); js-ipfs ignores that and waits this long.
HAS_TIMEOUT = 1.0
ADD_OPTIONS = dict(cid_version=1, raw_leaves=True, chunker=f"size-{CHUNK_SIZE}", pin=True)
# Messages with which Kubo and js-ipfs report content they could not find in time.
_MISSING_MARKERS = ("timed out", "deadline exceeded", "not found", "could not find", "aborted")

# urllib3 2 warns about an argument ipfshttpclient 0.7 passes on every new connection; it is harmless
# and would otherwise reach the CLI's stderr.
warnings.filterwarnings("ignore", message="The 'strict' parameter is no longer needed", category=FutureWarning)


def api_multiaddr(api: str) -> str:
    """The API address as a multiaddr; accepts one already, or an http(s)://host:port URL."""
    if api.startswith("/"):
        return api
    url = urllib.parse.urlsplit(api)
    if url.scheme not in ("http", "https") or not url.hostname or not url.port:
        raise NodeUnreachable(
            f"invalid IPFS API address {api!r}: expected a multiaddr such as "
            f"/ip4/127.0.0.1/tcp/5001/http or a URL such as http://127.0.0.1:5001"
        )
    host = url.hostname
    protocol = "ip6" if ":" in host else "ip4" if host.replace(".", "").isdigit() else "dns"
    return f"/{protocol}/{host}/tcp/{url.port}/{url.scheme}"


def default_timeout() -> float:
    """`$DEEPSHARD_IPFS_TIMEOUT` in seconds, else 30; `StorageError` for a value that is not a positive number."""
    return env_number(TIMEOUT_ENV, DEFAULT_TIMEOUT, float, unit="seconds", error=StorageError)


class _HashingReader:
    """A file object for the upload that feeds the same bytes to a local DAG builder and enforces the size cap."""

    def __init__(self, stream: BinaryIO, builder: FileDagBuilder, max_size: int, name: str):
        self._stream = stream
        self._builder = builder
        self._max_size = max_size
        self.name = name  # ipfshttpclient names the multipart part after it

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._builder.update(data)
        if self._builder.size > self._max_size:
            # Aborts the upload mid-way (raised through ipfshttpclient): the file grew after the check.
            raise FileTooLarge(f"the content exceeds the maximum size of {self._max_size} bytes")
        return data


class IpfsStore(ContentStore):
    def __init__(self, api: str, *, timeout: float | None = None, max_size: int = DEFAULT_MAX_SIZE):
        super().__init__(max_size=max_size)
        self.api = api_multiaddr(api)
        self.timeout = default_timeout() if timeout is None else timeout
        if self.timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        try:
            self._client = ipfshttpclient.Client(
                self.api, chunk_size=CHUNK_SIZE, session=True, timeout=self._client_timeout(self.timeout)
            )
        except ipfs_errors.AddressError:
            raise NodeUnreachable(
                f"invalid IPFS API address {api!r}: expected a multiaddr such as /ip4/127.0.0.1/tcp/5001/http"
            ) from None

    @property
    def location(self) -> str:
        return f"the IPFS node at {self.api}"

    def close(self) -> None:
        self._client.close()

    def node_version(self) -> str:
        """The node's agent version (e.g. 'kubo/0.22.0/'); a cheap reachability check."""
        with self._calling("identify itself"):
            return self._client.id(timeout=self._client_timeout(self.timeout))["AgentVersion"]

    # ---------------------------------------------------------------- writing

    def add_bytes(self, data: bytes) -> str:
        self._check_size(len(data))
        return self._add(io.BytesIO(data), "data")

    def add_file(self, path: str | Path) -> str:
        self._source_size(path)
        try:
            stream = open(path, "rb")
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from None
        with stream:
            return self._add(stream, Path(path).name)

    def _add(self, stream: BinaryIO, name: str) -> str:
        builder = FileDagBuilder()
        reader = _HashingReader(stream, builder, self.max_size, name)
        # No node-side timeout: a large upload legitimately takes long. The client timeout bounds stalls.
        with self._calling("add the content"):
            answer = self._client.add(
                reader, **ADD_OPTIONS, opts={"cid-base": "base32"}, timeout=self._client_timeout(self.timeout)
            )
        expected = builder.finish().cid
        returned = parse_cid(answer["Hash"])
        if returned.v1() != expected:
            raise IntegrityError(
                f"{self.location} stored the content as {returned}, but its CIDv1 (raw leaves, 256 KiB "
                f"chunks, balanced DAG) is {expected}: the node does not honour the add options"
            )
        return str(expected)

    def pin(self, cid: str | Cid) -> None:
        cid = parse_cid(cid)
        with self._calling("pin", cid):
            self._client.pin.add(str(cid), **self._timeouts(self.timeout))

    def unpin(self, cid: str | Cid) -> None:
        cid = parse_cid(cid)
        try:
            with self._calling("unpin", cid):
                self._client.pin.rm(str(cid), **self._timeouts(self.timeout))
        except (NotFound, NodeError) as exc:
            if "not pinned" not in str(exc):
                raise

    def is_pinned(self, cid: str | Cid) -> bool:
        cid = parse_cid(cid)
        try:
            with self._calling("list the pins of", cid):
                answer = self._client.pin.ls(str(cid), type="recursive", **self._timeouts(self.timeout))
        except (NotFound, NodeError) as exc:
            if "not pinned" in str(exc):
                return False
            raise
        return any(parse_cid(key).v1() == cid.v1() for key in answer["Keys"])

    # ---------------------------------------------------------------- reading

    def has(self, cid: str | Cid) -> bool:
        """True if the node holds the root block; a pinned DAG is complete, so this is enough after add/pin."""
        cid = parse_cid(cid)
        try:
            with self._calling("find", cid):
                self._client.block.stat(str(cid), offline=True, **self._timeouts(min(HAS_TIMEOUT, self.timeout)))
        except NotFound:
            return False
        return True

    def _fetch_block(self, cid: Cid) -> bytes:
        with self._calling("find", cid):
            return self._client.block.get(str(cid), **self._timeouts(self.timeout))

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _client_timeout(seconds: float) -> tuple[float, float]:
        return seconds, seconds + CLIENT_GRACE

    def _timeouts(self, seconds: float) -> dict:
        return {"opts": {"timeout": f"{max(1, round(seconds * 1000))}ms"}, "timeout": self._client_timeout(seconds)}

    @contextlib.contextmanager
    def _calling(self, action: str, cid: Cid | None = None) -> Iterator[None]:
        """Turns ipfshttpclient's and requests' exceptions into storage errors naming the node."""
        subject = f"{action} {cid}" if cid is not None else action
        try:
            yield
        except ipfs_errors.TimeoutError as exc:
            if isinstance(exc.__cause__, requests.ConnectTimeout):
                raise NodeUnreachable(
                    f"{self.location} did not accept a connection within {self.timeout:g} s"
                ) from None
            if cid is not None:
                raise NotFound(f"{self.location} could not {subject} within {self.timeout:g} s") from None
            raise NodeUnreachable(f"{self.location} did not answer within {self.timeout:g} s") from None
        except ipfs_errors.ConnectionError as exc:
            raise NodeUnreachable(f"{self.location} is unreachable ({_reason(exc)})") from None
        except ipfs_errors.ErrorResponse as exc:
            message = str(exc)
            if cid is not None and any(marker in message.lower() for marker in _MISSING_MARKERS):
                raise NotFound(f"{self.location} could not {subject} within {self.timeout:g} s ({message})") from None
            raise NodeError(f"{self.location} failed to {subject}: {message}") from None
        except ipfs_errors.CommunicationError as exc:
            raise NodeError(
                f"{self.location} gave an unexpected answer when asked to {subject} "
                f"(is it the RPC API, usually port 5001?): {_reason(exc)}"
            ) from None
        except requests.RequestException as exc:
            # Raised while a response body streams in, after ipfshttpclient's own mapping.
            raise NodeUnreachable(f"{self.location} stopped answering ({type(exc).__name__})") from None


def _reason(exc: Exception) -> str:
    """The innermost cause's message, e.g. 'Connection refused', without urllib3's pool boilerplate."""
    text = str(exc.__cause__ or exc)
    for marker in ("[Errno", "Failed to establish"):
        index = text.find(marker)
        if index >= 0:
            return text[index:].rstrip("')\"")
    return text
