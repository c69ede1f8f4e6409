"""The same client on ganache 7.9.2 (the other chain we support): deploy, stake both ways, decode reverts."""

import pytest

from workers.chain import ChainClient, TransactionReverted, deploy_network, stake
from workers.chain.localnode import dev_signer, start_ganache
from workers.chain.units import WEI_PER_DSH


@pytest.fixture(scope="module")
def ganache_network(tmp_path_factory):
    node = start_ganache()
    try:
        deployments = tmp_path_factory.mktemp("ganache-deployments")
        treasury = ChainClient(node.url, dev_signer(0), deployments_dir=deployments)
        deploy_network(treasury)
        yield node, treasury, deployments
    finally:
        node.stop()


def test_ganache_deploy_and_stake(ganache_network):
    node, treasury, deployments = ganache_network
    assert treasury.chain_id == 1337
    token = treasury.contract("DeepshardToken")
    stakers = [ChainClient(node.url, dev_signer(i), deployments_dir=deployments) for i in (1, 2)]
    for client in stakers:
        treasury.transact(token.functions.transfer(client.address, 5000 * WEI_PER_DSH))
    assert stake(stakers[0], "trainer", "1000").new_stake == 1000 * WEI_PER_DSH
    assert stake(stakers[1], "curator", "1500", use_permit=True).new_stake == 1500 * WEI_PER_DSH


def test_ganache_revert_decoding(ganache_network):
    _, treasury, _ = ganache_network
    registry = treasury.contract("StakeRegistry")
    with pytest.raises(TransactionReverted, match=r"would revert: BelowMinimum\(stakeAfter=1, minStake="):
        treasury.transact(registry.functions.stake(0, 1))
    with pytest.raises(TransactionReverted, match=r"reverted on-chain in tx 0x[0-9a-f]{64}: BelowMinimum\("):
        treasury.transact(registry.functions.stake(0, 1), gas=200_000)
