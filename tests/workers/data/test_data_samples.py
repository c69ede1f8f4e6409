"""The sample datasets the demo uses: a clean one, a junk one that is well-formed, a malformed one."""

from workers.data import SAMPLES_DIR, is_canonical, normalise, validate


def test_good_sample_is_valid_and_varied():
    report = validate(SAMPLES_DIR / "good.jsonl")
    assert report.ok and 45 <= report.manifest.records <= 60
    assert report.manifest.approx_tokens > 1500


def test_junk_sample_is_well_formed():
    # Junk passes the format check on purpose: rejecting it is the curators' job, and the demo submits it.
    assert validate(SAMPLES_DIR / "junk.jsonl").ok


def test_malformed_sample_breaks_the_format():
    report = validate(SAMPLES_DIR / "malformed.jsonl")
    assert report.problem_count == 9


def test_samples_normalise_to_canonical_bytes():
    for name in ("good", "junk"):
        assert is_canonical(normalise(SAMPLES_DIR / f"{name}.jsonl"))
