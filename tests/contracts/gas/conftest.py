# The gas cases reuse the data-consensus and training fixtures (consensus, informant, rounds, trainers ...).
from tests.contracts.training.conftest import *  # noqa: F401,F403
