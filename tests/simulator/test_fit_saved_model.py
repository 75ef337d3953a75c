"""A saved model is the fit itself: a forecast from it equals one from the fresh fit."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from simulator.backtest import default_splits, rolling, summary
from simulator.fit import fit_history
from simulator.forecast import Options, forecast
from simulator.saved_model import FORMAT, ModelFileError, load_model, save_model
from simulator.worlds import generate
from tests.simulator.scenarios import BASELINE, CHANGES


@pytest.fixture(scope="module")
def world():
    return generate("never-pay", 12_000, 8)


@pytest.fixture(scope="module")
def model(world):
    return fit_history(world.history)


def test_a_forecast_from_the_saved_model_is_the_forecast_from_the_fit(tmp_path, world, model):
    path = save_model(model, tmp_path / "model.npz")
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(np.load(archive.open("meta.npy"), allow_pickle=False).item())
    assert meta["format"] == FORMAT
    assert meta["currency"] == "SEK" and meta["minor_unit_exponent"] == 2
    assert meta["as_of"] == "2025-06-30" and len(meta["fingerprint"]) == 32
    assert meta["layout"]["classes"] == model.layout.classes
    assert meta["selection"]["chosen"] == model.layout.classes
    assert meta["convergence"]["em_converged"] is True
    loaded = load_model(path, world.history)
    assert loaded.warnings == model.warnings  # same history: nothing recomputed
    candidates = {"baseline": BASELINE, "one": CHANGES["one reminder instead of three"]}
    options = Options(draws=16, seed=3)
    fresh = forecast(world.history, model, candidates, options=options)
    again = forecast(world.history, loaded, candidates, options=options)
    assert json.dumps(again, sort_keys=True) == json.dumps(fresh, sort_keys=True)


def test_on_newer_data_the_posteriors_are_recomputed_and_it_says_so(tmp_path, world, model):
    path = save_model(model, tmp_path / "model.npz")
    other = generate("never-pay", 6_000, 9).history
    loaded = load_model(path, other)
    assert loaded.debtor_posterior.shape == (len(other.debtor_ids), model.layout.classes)
    assert loaded.invoice_log_lik.shape == (other.size, model.layout.classes)
    assert any("fitted on other data" in w for w in loaded.warnings)
    assert np.array_equal(loaded.params, model.params)


def test_a_file_that_is_not_a_model_is_refused(tmp_path, model):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError):
        load_model(junk)
    other = tmp_path / "other.npz"
    save_model(model, other)
    with zipfile.ZipFile(other) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(np.load(io.BytesIO(members["meta.npy"])).item())
    meta["format"] = "kravlab-model/99"
    buffer = io.BytesIO()
    np.save(buffer, np.array(json.dumps(meta)))
    members["meta.npy"] = buffer.getvalue()
    with zipfile.ZipFile(other, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    with pytest.raises(ModelFileError, match="kravlab-model/99"):
        load_model(other)


def _rewrite_meta(path, change) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(np.load(io.BytesIO(members["meta.npy"])).item())
    change(meta)
    buffer = io.BytesIO()
    np.save(buffer, np.array(json.dumps(meta)))
    members["meta.npy"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def test_the_model_carries_its_backtest_summary(tmp_path, world, model):
    history = world.history
    report = rolling(history, default_splits(history, 60, 2), 60, draws=4)
    path = save_model(model, tmp_path / "model.npz", backtest=report)
    loaded = load_model(path, history)
    stored = loaded.backtest
    assert stored is not None and stored == summary(report)
    assert stored["horizon"] == 60 and len(stored["splits"]) == len(report["splits"])
    assert stored["mean"]["mae_pp"] == pytest.approx(report["mean"]["mae_pp"])
    assert stored["calibration"] == report["calibration"]
    assert all("points" not in block for block in stored["splits"])  # curves stay out
    # without a backtest the field is absent, and a file written before it existed loads
    plain = save_model(fit_history(history, classes=1), tmp_path / "plain.npz")
    assert load_model(plain).backtest is None
    _rewrite_meta(plain, lambda meta: meta.pop("backtest"))
    assert load_model(plain).backtest is None


def test_a_file_without_the_class_contacts_entry_loads_without_class_effects(tmp_path, world):
    old = fit_history(world.history, classes=2, class_contacts=False)
    assert not any(name.startswith("class_effect[") for name in old.names)
    path = save_model(old, tmp_path / "old.npz")
    _rewrite_meta(path, lambda meta: meta["layout"].pop("class_contacts"))
    loaded = load_model(path, world.history)
    assert loaded.names == old.names and np.array_equal(loaded.params, old.params)
    # a layout that differs from the stored names is refused, never guessed at
    _rewrite_meta(path, lambda meta: meta["layout"].update(class_contacts=True))
    with pytest.raises(ModelFileError, match="refit"):
        load_model(path)


def test_the_class_selections_candidate_models_are_kept_and_widen_calibrated_intervals(
    tmp_path, world, model
):
    """The selection's candidates (each number of classes on the same sample) travel with
    the model; a calibrated forecast runs each, and where they disagree about a policy its
    interval widens by their spread. Uncalibrated intervals say what they leave out."""
    assert sorted(v.classes for v in model.variants) == [1, 2, 3, 4]
    for variant in model.variants:
        assert variant.debtor_posterior.shape == (len(world.history.debtor_ids), variant.classes)
        assert np.allclose(variant.debtor_posterior.sum(axis=1), 1.0)
    path = save_model(model, tmp_path / "model.npz")
    loaded = load_model(path, world.history)
    assert [v.classes for v in loaded.variants] == [v.classes for v in model.variants]
    for got, kept in zip(loaded.variants, model.variants, strict=True):
        assert np.array_equal(got.params, kept.params)
        assert np.array_equal(got.debtor_posterior, kept.debtor_posterior)
    candidates = {"baseline": BASELINE, "one": CHANGES["one reminder instead of three"]}
    zero = {"splits": 0, "bands": [{"from_day": -30, "excess_sd_pp": 0.0, "points": 1}]}
    plain = forecast(world.history, loaded, candidates, options=Options(draws=16, seed=3))
    banded = forecast(
        world.history, loaded, candidates, options=Options(draws=16, seed=3, calibration=zero)
    )
    assert any("calibrate them" in w for w in plain["warnings"])
    assert "model_form" not in plain and any("candidate models (" in w for w in banded["warnings"])
    form = banded["model_form"]
    chosen = model.layout.classes
    assert form["variants"] == [k for k in (1, 2, 3, 4) if k != chosen]
    wider = 0
    for name in candidates:
        for d, (low, high) in plain["results"][name]["recovery_interval"].items():
            low2, high2 = banded["results"][name]["recovery_interval"][d]
            assert banded["results"][name]["recovery"][d] == plain["results"][name]["recovery"][d]
            assert low2 <= low + 1e-12 and high2 >= high - 1e-12
            assert form["sd_pp"][name][d] >= 0
            wider += (high2 - low2) > (high - low) + 1e-9
    assert wider > 0  # the models do disagree somewhere on this world
    # the same forecast from the fresh fit and from the file
    fresh = forecast(
        world.history, model, candidates, options=Options(draws=16, seed=3, calibration=zero)
    )
    assert json.dumps(fresh, sort_keys=True) == json.dumps(banded, sort_keys=True)
    # a file written before the candidates were kept loads without them: no band
    _rewrite_meta(path, lambda meta: meta.pop("variants"))
    older = load_model(path, world.history)
    assert older.variants == []
    none = forecast(
        world.history, older, candidates, options=Options(draws=16, seed=3, calibration=zero)
    )
    assert "model_form" not in none
