"""The `deepshard` CLI, run in-process: successes print the result, expected failures print one
`error: ...` line, exit 1 and send nothing (the account's nonce and the chain's height are unchanged)."""

import time

import pytest
from eth_utils import to_checksum_address
from services import NO_HANG_SECONDS

from workers import cli
from workers.chain import staking
from workers.chain.accounts import PRIVATE_KEY_ENV
from workers.chain.client import RPC_URL_ENV
from workers.chain.deployments import DEPLOYMENTS_DIR_ENV
from workers.chain.localnode import free_port
from workers.chain.roles import ROLES
from workers.chain.units import WEI_PER_DSH


@pytest.fixture
def cli_account(make_account, monkeypatch, anvil):
    """A funded account whose key the CLI reads from the environment, with the RPC URL from env too."""
    account = make_account(dsh=5_000)
    monkeypatch.setenv(PRIVATE_KEY_ENV, account.key)
    monkeypatch.setenv(RPC_URL_ENV, anvil.url)
    return account


def run_cli(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_error_line(err, fragment):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]


def test_stake_prints_tx_and_new_stake(cli_account, capsys):
    status, out, err = run_cli(capsys, "stake", "CURATOR", "1200.5")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("tx 0x") and len(lines[0]) == 3 + 66
    assert lines[1] == f"new CURATOR stake of {cli_account.address}: 1,200.5 DSH"


def test_stake_with_permit_flag(cli_account, capsys, anvil):
    status, out, err = run_cli(capsys, "stake", "storage", "500", "--permit", "--rpc", anvil.url)
    assert status == 0, err
    assert "new STORAGE stake" in out and ": 500 DSH" in out


def test_stake_with_permit_survives_a_front_run_permit(cli_account, make_account, capsys, monkeypatch):
    """Someone copies the permit out of the pending stakeWithPermit and submits it first (lido core 803): the
    token spends the permit's nonce, the registry's own permit call then fails, and the stake must still go
    through on the allowance the front-runner set (StakeRegistry tries the permit and ignores its failure)."""
    attacker = make_account(dsh=0)
    real_sign = staking.sign_permit
    front_run = []

    def sign_and_leak(client, token, spender, value, deadline):
        v, r, s = real_sign(client, token, spender, value, deadline)
        permit = attacker.client.contract("DeepshardToken").functions.permit
        front_run.append(attacker.client.transact(permit(client.address, spender, value, deadline, v, r, s)))
        return v, r, s

    monkeypatch.setattr(staking, "sign_permit", sign_and_leak)
    token = cli_account.client.contract("DeepshardToken")
    registry = cli_account.client.contract("StakeRegistry")
    status, out, err = run_cli(capsys, "stake", "trainer", "1000", "--permit")
    assert status == 0, err
    assert front_run and front_run[0]["status"] == 1 and token.functions.nonces(cli_account.address).call() == 1
    assert f"new TRAINER stake of {cli_account.address}: 1,000 DSH" in out
    assert registry.functions.stakeOf(cli_account.address, ROLES.index("TRAINER")).call() == 1000 * WEI_PER_DSH
    assert token.functions.allowance(cli_account.address, registry.address).call() == 0


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["stake", "janitor", "100"], "unknown role 'janitor'"),
        (["stake", "trainer", "999"], "the stake would be 999 DSH, the minimum is 1,000 DSH"),
        (["stake", "trainer", "-5"], "amount must be greater than 0"),
        (["stake", "trainer", "lots"], "is not a number"),
        (["stake", "inference", "10000"], "insufficient DSH"),
        (["stake", "inference", "10000"], "`deepshard transfer"),
        (["transfer", "0x" + "12" * 20, "1,00"], "commas may only separate groups of three digits"),
        (["transfer", "not-an-address", "10"], "'not-an-address' is not a recipient address"),
        (["transfer", "0x" + "12" * 20, "5,000.5"], "holds 5,000 DSH, the transfer needs 5,000.5 DSH"),
    ],
)
def test_invalid_stake_requests(cli_account, capsys, argv, fragment):
    nonce, height = cli_account.nonce(), cli_account.client.w3.eth.block_number
    status, out, err = run_cli(capsys, *argv)
    assert status == 1 and out == ""
    assert_one_error_line(err, fragment)
    assert cli_account.nonce() == nonce
    assert cli_account.client.w3.eth.block_number == height


def test_no_deployment_for_chain(cli_account, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv(DEPLOYMENTS_DIR_ENV, str(tmp_path))
    nonce = cli_account.nonce()
    status, _, err = run_cli(capsys, "stake", "trainer", "1000")
    assert status == 1
    assert_one_error_line(err, "no deployment for chain 31337")
    assert cli_account.nonce() == nonce


def test_node_not_answering(cli_account, capsys):
    dead = f"http://127.0.0.1:{free_port()}"
    nonce = cli_account.nonce()
    started = time.monotonic()
    status, _, err = run_cli(capsys, "stake", "trainer", "1000", "--rpc", dead)
    assert time.monotonic() - started < NO_HANG_SECONDS
    assert status == 1
    assert_one_error_line(err, f"no Ethereum node answers at {dead}")
    assert cli_account.nonce() == nonce


def test_missing_key(cli_account, capsys, monkeypatch):
    monkeypatch.delenv(PRIVATE_KEY_ENV)
    height = cli_account.client.w3.eth.block_number
    status, _, err = run_cli(capsys, "stake", "trainer", "1000")
    assert status == 1
    assert_one_error_line(err, "no signing key")
    assert cli_account.client.w3.eth.block_number == height


def test_reverting_transaction_is_reported_and_not_sent(cli_account, capsys, monkeypatch):
    # An expired permit passes every local check, but stakeWithPermit would revert: the registry ignores
    # the failed permit and the token's transferFrom finds no allowance. Gas estimation catches it.
    monkeypatch.setattr(staking, "PERMIT_TTL", -3600)
    nonce = cli_account.nonce()
    status, _, err = run_cli(capsys, "stake", "trainer", "1000", "--permit")
    assert status == 1
    assert_one_error_line(err, "StakeRegistry.stakeWithPermit would revert: ERC20InsufficientAllowance(")
    assert cli_account.nonce() == nonce


def test_deploy_with_governance(capsys, monkeypatch, make_account, anvil, tmp_path):
    deployer = make_account(dsh=0)
    monkeypatch.setenv(PRIVATE_KEY_ENV, deployer.key)
    monkeypatch.setenv(DEPLOYMENTS_DIR_ENV, str(tmp_path))
    governance = "0x" + "ab" * 20
    status, out, err = run_cli(capsys, "deploy", "--rpc", anvil.url, "--governance", governance)
    assert status == 0, err
    assert (tmp_path / "31337.json").is_file()
    assert "StakeRegistry" in out and f"governance       {to_checksum_address(governance)}" in out
    # A second deploy would orphan the first: refused, nothing sent.
    nonce = deployer.nonce()
    status, _, err = run_cli(capsys, "deploy", "--rpc", anvil.url)
    assert status == 1
    assert_one_error_line(err, "already has a live deployment")
    assert deployer.nonce() == nonce


def test_balances(cli_account, capsys):
    run_cli(capsys, "stake", "informant", "150")
    status, out, err = run_cli(capsys, "balances")
    assert status == 0, err
    row = next(line for line in out.splitlines() if line.startswith(cli_account.address))
    assert "4,850" in row and "INFORMANT=150" in row
    status, _, err = run_cli(capsys, "balances", "not-an-address")
    assert status == 1
    assert_one_error_line(err, "'not-an-address' is not an address")


def test_transfer_sends_dsh_with_thousands_separators(cli_account, capsys, make_account):
    recipient = make_account(dsh=0)
    status, out, err = run_cli(capsys, "transfer", recipient.address, "1,000.5")
    assert status == 0, err
    assert out.splitlines()[1] == (
        f"sent 1,000.5 DSH from {cli_account.address} to {recipient.address}; {cli_account.address} now holds "
        "3,999.5 DSH"
    )
    token = cli_account.client.contract("DeepshardToken")
    assert token.functions.balanceOf(recipient.address).call() == 10_005 * 10**17


def test_rpc_without_a_scheme_is_http(cli_account, capsys, anvil):
    host_port = anvil.url.removeprefix("http://")
    status, out, err = run_cli(capsys, "balances", cli_account.address, "--rpc", host_port)
    assert status == 0, err
    status, _, err = run_cli(capsys, "balances", cli_account.address, "--rpc", "127.0.0.1")
    assert status == 1
    assert_one_error_line(err, "names no port: give HOST:PORT")


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["stake", "trainer"])
    assert raised.value.code == 2
