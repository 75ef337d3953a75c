"""The agency's pooled prior: other clients' estimates, robustly weighted, with their spread,
and no client able to dominate or poison it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.tenant_model import POOL_SE_FLOOR, pool

BUMP = "bump[sms,0..2]"


def _summary(**parameters: tuple[object, object, str]) -> dict:
    return {
        "parameters": [
            {"name": name, "estimate": e, "se": se, "source": source}
            for name, (e, se, source) in parameters.items()
        ]
    }


def _honest() -> list[dict]:
    return [
        _summary(**{BUMP: (0.4, 0.1, "data"), "beta[b2c]": (1.0, 0.1, "data")}),
        _summary(**{BUMP: (0.5, 0.2, "data"), "beta[b2c]": (2.0, 0.1, "data")}),
        _summary(**{BUMP: (0.6, 0.1, "data")}),
    ]


def test_contact_effects_pool_by_precision_and_keep_the_clients_spread():
    found = pool(_honest())
    assert set(found) == {BUMP}  # levels and covariates stay each client's own
    mean, sd = found[BUMP]
    weights = np.array([100.0, 25.0, 100.0])
    estimates = np.array([0.4, 0.5, 0.6])
    assert mean == pytest.approx(float((weights * estimates).sum() / weights.sum()))
    between = float(estimates.var(ddof=1))
    assert sd == pytest.approx(math.sqrt(between + 1 / weights.sum()))


def test_priors_and_too_few_clients_are_not_pooled():
    found = pool(
        [
            _summary(
                **{"bump[phone,0..2]": (0.3, 0.5, "prior"), "fee_charged": (0.2, 0.1, "data")}
            ),
            _summary(
                **{"bump[phone,0..2]": (0.3, 0.5, "prior"), "fee_charged": (0.3, 0.1, "data")}
            ),
            _summary(**{"bump[phone,0..2]": (0.3, 0.5, "prior")}),
            {"parameters": []},
        ]
    )
    assert found == {}  # a prior is nobody's finding; two clients are not a pool


@pytest.mark.parametrize(
    ("estimate", "se"),
    [
        (1e6, 1e-9),  # extreme and overconfident
        (-1e6, 0.1),
        (50.0, 1e-12),
        (0.5, 0.0),  # a zero se would be infinite precision
        (float("nan"), 0.1),
        (float("inf"), 0.1),
        (0.5, float("nan")),
        (0.5, float("inf")),
        (0.5, -0.1),
        ("0.5", 0.1),
        (True, 0.1),
        (None, None),
        (1e308, 1e-308),
    ],
)
def test_one_hostile_client_cannot_dominate_or_poison_the_prior(estimate, se):
    honest_mean, _ = pool(_honest())[BUMP]
    found = pool([*_honest(), _summary(**{BUMP: (estimate, se, "data")})])
    mean, sd = found[BUMP]
    assert math.isfinite(mean) and math.isfinite(sd)
    assert sd >= POOL_SE_FLOOR
    # the honest clients span 0.4..0.6: one more client moves the centre a bounded amount
    assert abs(mean - honest_mean) < 0.2, (estimate, se, mean)
    assert sd < 1.0


def test_an_overconfident_client_counts_no_more_than_a_capped_weight():
    # three clients agree on 0.5; a fourth claims 0.9 with an se of 0.001 (precision 10^6)
    agree = [_summary(**{BUMP: (0.5, 0.1, "data")}) for _ in range(3)]
    mean, _ = pool([*agree, _summary(**{BUMP: (0.9, 0.001, "data")})])[BUMP]
    assert 0.5 < mean < 0.7  # uncapped, it would be 0.9 to three decimals


def test_malformed_summaries_are_skipped_not_fatal():
    junk: list = [
        {},
        {"parameters": None},
        {"parameters": "x"},
        {"parameters": [None, 3, {"name": 7}, {"name": BUMP}, {"name": BUMP, "source": "data"}]},
        "not a summary",
    ]
    assert pool([*junk, *_honest()]) == pool(_honest())
    assert pool(junk) == {}


def test_a_client_repeating_a_parameter_counts_once():
    doubled = {"parameters": _summary(**{BUMP: (0.9, 0.1, "data")})["parameters"] * 5}
    two = pool([_honest()[0], doubled])
    assert two == {}  # two clients, however many rows, are not a pool
