"""The node's JSON-RPC URL: where it comes from, how it is written, how it is shown (no web3 needed here)."""

from __future__ import annotations

import argparse
import os
from urllib.parse import urlsplit

from ..config import env_number
from .errors import InvalidRequest

RPC_URL_ENV = "DEEPSHARD_RPC_URL"
DEFAULT_RPC_URL = "http://127.0.0.1:8545"
RPC_TIMEOUT_ENV = "DEEPSHARD_RPC_TIMEOUT"
DEFAULT_RPC_TIMEOUT_S = 10.0


def default_rpc_url() -> str:
    """`$DEEPSHARD_RPC_URL`, else the local node at http://127.0.0.1:8545."""
    return os.environ.get(RPC_URL_ENV) or DEFAULT_RPC_URL


def default_rpc_timeout() -> float:
    """Seconds to wait for one JSON-RPC answer: `$DEEPSHARD_RPC_TIMEOUT`, else 10. Raises `InvalidRequest` for a
    value that is not a positive number (Ganache, whose EVM runs in JavaScript, can take longer than 10 s for a
    million-gas transaction on a loaded machine)."""
    return env_number(RPC_TIMEOUT_ENV, DEFAULT_RPC_TIMEOUT_S, float, unit="seconds", error=InvalidRequest)


def add_rpc_option(parser: argparse.ArgumentParser) -> None:
    """--rpc after a subcommand's action too (`weights buy 3 --rpc URL`); absent, the parent parser's value stands."""
    parser.add_argument(
        "--rpc",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"node JSON-RPC URL (default: ${RPC_URL_ENV}, else {DEFAULT_RPC_URL})",
    )


def normalise_rpc_url(url: str) -> str:
    """`HOST:PORT` (no scheme) -> `http://HOST:PORT`; an http:// or https:// URL as given. `InvalidRequest`
    naming the accepted forms for anything else (another scheme, no host, a bad port, HOST without a port)."""
    text = url.strip()
    schemeless = "://" not in text
    if schemeless:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidRequest(f"RPC URL {display_url(url)!r} has an invalid port: give http://HOST:PORT") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(
            f"RPC URL {display_url(url)!r} is not an http(s) node URL: give http://HOST:PORT, https://HOST/PATH "
            "or HOST:PORT"
        )
    if schemeless and port is None:
        raise InvalidRequest(f"RPC URL {url!r} names no port: give HOST:PORT or a full URL such as http://HOST:8545")
    return text


def display_url(url: str) -> str:
    """The URL without credentials: hosted RPC URLs carry API keys in the user info or the path."""
    try:
        parts = urlsplit(url if "://" in url else "http://" + url)
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    netloc = f"{host}:{port}" if port else host
    path = "/…" if parts.path not in ("", "/") or parts.query else ""
    return f"{parts.scheme}://{netloc}{path}"
