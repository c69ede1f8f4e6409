# The gas cases reuse the data-consensus fixtures (consensus, informant, vote ...).
from tests.contracts.data.conftest import *  # noqa: F401,F403
