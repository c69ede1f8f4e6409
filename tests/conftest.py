"""Settings every test shares."""

from hypothesis import HealthCheck, settings


def pytest_configure(config):
    # Hypothesis' "too slow" and "too large" checks time the generation of examples: on a loaded machine they fail
    # tests whose code is right. Keep brownie's profile (brownie-config.yaml) and drop only those checks.
    settings.register_profile(
        "deepshard",
        settings(settings.default, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]),
    )
    settings.load_profile("deepshard")
