"""Deploys the Deepshard contracts with brownie's account and records them in deployments/<chain-id>.json.

    brownie run scripts/deploy.py --network NAME
    brownie run scripts/deploy.py main 0xGovernance --network NAME   # hand admin to governance

The account comes from brownie (see workers.chain.brownie_bridge); the deployment itself is
workers.chain.deploy_network, the same code as `deepshard deploy`.
"""

from workers.chain import DeployParams, deploy_network
from workers.chain.brownie_bridge import brownie_client, run_or_exit


def main(governance=None):
    def deploy():
        client = brownie_client()
        record = deploy_network(client, DeployParams(), governance=governance or None)
        width = max(len(name) for name in record["contracts"])
        for name, entry in record["contracts"].items():
            print(f"{name:<{width}} {entry['address']}")
        print(f"{'governance':<{width}} {record['governance']}")
        return record

    return run_or_exit(deploy)
