"""The agency's pooled prior: other clients' estimates, precision-weighted, with their spread."""

from __future__ import annotations

import math

import pytest

from backend.tenant_model import pool


def _summary(**parameters: tuple[float, float, str]) -> dict:
    return {
        "parameters": [
            {"name": name, "estimate": e, "se": se, "source": source}
            for name, (e, se, source) in parameters.items()
        ]
    }


def test_contact_effects_pool_by_precision_and_keep_the_clients_spread():
    found = pool(
        [
            _summary(**{"bump[sms,0..2]": (0.4, 0.1, "data"), "beta[b2c]": (1.0, 0.1, "data")}),
            _summary(**{"bump[sms,0..2]": (0.8, 0.2, "data"), "beta[b2c]": (2.0, 0.1, "data")}),
        ]
    )
    assert set(found) == {"bump[sms,0..2]"}  # levels and covariates stay each client's own
    mean, sd = found["bump[sms,0..2]"]
    assert mean == pytest.approx((0.4 / 0.01 + 0.8 / 0.04) / (1 / 0.01 + 1 / 0.04))
    between = ((0.4 - 0.6) ** 2 + (0.8 - 0.6) ** 2) / 1
    assert sd == pytest.approx(math.sqrt(between + 1 / (1 / 0.01 + 1 / 0.04)))


def test_priors_and_lone_estimates_are_not_pooled():
    found = pool(
        [
            _summary(
                **{"bump[phone,0..2]": (0.3, 0.5, "prior"), "fee_charged": (0.2, 0.1, "data")}
            ),
            _summary(**{"bump[phone,0..2]": (0.3, 0.5, "prior")}),
            {"parameters": []},
        ]
    )
    assert found == {}  # a prior is nobody's finding; one client is not a pool
