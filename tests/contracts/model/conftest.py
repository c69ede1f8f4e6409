# The model registry tests reuse the training fixtures (model_registry, delta CIDs).
from tests.contracts.training.conftest import *  # noqa: F401,F403
