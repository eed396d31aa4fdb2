"""A second site's scanner mix: vendor_weights skews the phantom's vendors (absent: all three, uniformly)."""

from __future__ import annotations

from collections import Counter

import pytest

from cinefm.phantom.plan import plan_cohort

ARGS = dict(patients=40, seed=3, studies_per_patient=(1, 2), frames=(20, 20), sax_slices=(8, 8), faults=False)


def _vendors(plans) -> Counter:
    return Counter(s.vendor for p in plans for s in p.studies)


def test_vendor_weights_give_a_site_mostly_one_vendor():
    uniform = _vendors(plan_cohort(**ARGS))
    assert len(uniform) == 3 and max(uniform.values()) < 0.6 * sum(uniform.values())
    philips = _vendors(plan_cohort(**ARGS, vendor_weights={"philips": 0.9, "ge": 0.1}))
    assert philips["philips"] > 0.75 * sum(philips.values()) and philips["siemens"] == 0
    assert set(_vendors(plan_cohort(**ARGS, vendor_weights={"ge": 1.0}))) == {"ge"}


@pytest.mark.parametrize(("weights", "match"), [({"canon": 1.0}, "unknown vendors"), ({"ge": 0.0}, "positive sum"),
                                                 ({"ge": -1.0, "philips": 2.0}, ">= 0")])
def test_bad_weights_fail_naming_the_key(weights, match):
    with pytest.raises(ValueError, match=match):
        plan_cohort(**ARGS, vendor_weights=weights)
