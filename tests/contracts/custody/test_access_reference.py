"""WeightAccess against its Python reference, workers.protocol.access: the price on random V over the whole
range (0, around the exponent's clamp at 100, far beyond it) and random base prices and scales, and the fee
split on random amounts, shares and delivery counts, equal to the wei."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contracts.custody.conftest import EXAMPLES, access_params
from workers.protocol.access import MAX_PRICE_EXPONENT, fee_split, price
from workers.protocol.constants import BPS, WAD

UINT96 = 2**96 - 1


def test_price_matches_the_reference_on_random_v(weight_access, gov):
    scales = st.one_of(st.sampled_from([1, WAD, UINT96]), st.integers(1, UINT96))
    bases = st.one_of(st.sampled_from([0, 1, UINT96]), st.integers(0, UINT96))

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(bases, scales, st.data())
    def check(base_price, value_scale, data):
        weight_access.setParams(access_params(basePrice=base_price, valueScale=value_scale), {"from": gov})
        clamp = MAX_PRICE_EXPONENT * value_scale // WAD
        values = st.one_of(
            st.sampled_from([0, 1, clamp, clamp + 1, 2**96]),
            st.integers(0, 2 * clamp + 1),
            st.integers(0, 2**256 - 1),
        )
        for _ in range(5):
            value = data.draw(values)
            assert weight_access.quote(value) == price(base_price, value, value_scale)

    check()


def test_fee_split_matches_the_reference(weight_access, gov):
    @settings(max_examples=EXAMPLES, deadline=None)
    @given(
        st.integers(0, BPS),
        st.integers(0, BPS),
        st.integers(0, BPS),
        st.integers(1, 16),
        st.one_of(st.sampled_from([0, 1, 15, UINT96]), st.integers(0, UINT96)),
    )
    def check(burn_bps, storage_bps, custodian_bps, delivered, amount):
        storage_bps = min(storage_bps, BPS - burn_bps)
        custodian_bps = min(custodian_bps, BPS - burn_bps - storage_bps)
        shares = dict(burnBps=burn_bps, storageBps=storage_bps, custodianBps=custodian_bps)
        weight_access.setParams(access_params(**shares), {"from": gov})
        split = fee_split(amount, burn_bps, storage_bps, custodian_bps, delivered)
        assert tuple(weight_access.feeSplit(amount, delivered)) == (
            split.burned,
            split.storage,
            split.per_custodian,
            split.treasury,
        )
        assert split.burned + split.storage + split.per_custodian * delivered + split.treasury == amount

    check()
