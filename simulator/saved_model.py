"""A fitted model as one versioned file (formats §5): fit once, forecast and backtest often.

The file is a NumPy `.npz` archive (no pickles) holding a JSON header under `meta` and the
arrays: parameters, their covariance, priors, and the debtors' class posteriors and each
invoice's own evidence for the history it was fitted on. Applied to that same history
(the fingerprint matches) a loaded model is the fit itself, so a forecast from it gives the
same answer as one that fits afresh. Applied to another history (newer data of the same
client) the posteriors are recomputed there by one E-step under the saved parameters.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from simulator.backtest import summary
from simulator.currency import minor_unit_exponent
from simulator.fit import Fit, Variant, fingerprint, own_evidence, posterior_start, prepare
from simulator.history import History, day_date
from simulator.model import Layout

FORMAT = "kravlab-model/1"
_ARRAYS = (
    "params",
    "cov",
    "prior_mean",
    "prior_sd",
    "data_share",
    "class_share",
    "debtor_posterior",
    "invoice_log_lik",
)


class ModelFileError(ValueError):
    """The file is not a saved model this version can read, or does not fit the history."""


def save_model(model: Fit, path: str | Path, backtest: dict[str, Any] | None = None) -> Path:
    """Write `model` to `path` (".npz" is appended by NumPy when missing).

    `backtest` (a `backtest.summary` of rolling backtests, or a whole `backtest.rolling`
    report, which is summarised) is stored with the model and becomes `model.backtest`;
    without it the model's own `backtest`, if any, is written.
    """
    target = Path(path)
    if backtest is not None:
        model.backtest = summary(backtest) if "splits" in backtest else backtest
    meta: dict[str, Any] = {
        "format": FORMAT,
        "currency": model.currency,
        "minor_unit_exponent": minor_unit_exponent(model.currency) if model.currency else None,
        "as_of": day_date(model.as_of).isoformat(),
        "as_of_day": model.as_of,
        "fingerprint": model.fingerprint,
        "fitted_at": model.fitted_at,
        "invoices": model.invoices,
        "log_lik": model.log_lik,
        "iterations": model.iterations,
        "layout": {
            "classes": model.layout.classes,
            "class_contacts": model.layout.class_contacts,
            "parameters": model.names,
        },
        "is_prior": model.is_prior().tolist(),
        "selection": model.selection,
        "convergence": model.convergence,
        "warnings": model.warnings,
        "extra": model.extra,
        "backtest": model.backtest,
        # the class selection's candidate models, for the model-form band (`forecast`)
        "variants": [
            {"classes": v.layout.classes, "class_contacts": v.layout.class_contacts}
            for v in model.variants
        ],
    }
    payload: dict[str, Any] = {name: np.asarray(getattr(model, name)) for name in _ARRAYS}
    for i, v in enumerate(model.variants):
        payload[f"variant{i}_params"] = v.params
        payload[f"variant{i}_class_share"] = v.class_share
        payload[f"variant{i}_posterior"] = v.debtor_posterior
    payload["meta"] = np.array(json.dumps(meta))
    with target.open("wb") as handle:
        np.savez_compressed(handle, **payload)
    return target


def load_model(path: str | Path, history: History | None = None) -> Fit:
    """Read a saved model; with `history`, make its class posteriors those of that history.

    Raises ModelFileError when the file is not a model of this format or its layout differs
    from this version's (a model saved by another version must be refitted, not guessed at).
    """
    try:
        with np.load(Path(path), allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            arrays = {name: archive[name] for name in _ARRAYS}
            # files saved before the variants were kept have none (no model-form band)
            variants = [
                Variant(
                    Layout(int(v["classes"]), bool(v["class_contacts"])),
                    archive[f"variant{i}_params"],
                    archive[f"variant{i}_class_share"],
                    archive[f"variant{i}_posterior"],
                )
                for i, v in enumerate(meta.get("variants", []))
            ]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # A truncated or overwritten file is not a model: say so, never crash on it.
        raise ModelFileError(f"{path}: not a saved model ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: format {meta.get('format')!r}, this version reads {FORMAT}")
    # Files written before classes had their own contact effects have no such entry.
    layout = Layout(
        int(meta["layout"]["classes"]), bool(meta["layout"].get("class_contacts", False))
    )
    if layout.names() != meta["layout"]["parameters"]:
        raise ModelFileError(f"{path}: the model's parameters differ from this version's; refit")
    if any(len(v.params) != v.layout.size for v in variants):
        raise ModelFileError(f"{path}: a candidate model's parameters differ from its layout")
    model = Fit(
        layout,
        arrays["params"],
        arrays["cov"],
        arrays["prior_mean"],
        arrays["prior_sd"],
        arrays["data_share"],
        arrays["class_share"],
        arrays["debtor_posterior"],
        float(meta["log_lik"]),
        int(meta["invoices"]),
        int(meta["iterations"]),
        arrays["invoice_log_lik"],
        fitted_at=meta["fitted_at"],
        convergence=meta["convergence"],
        warnings=list(meta["warnings"]),
        selection=meta["selection"],
        currency=meta["currency"],
        as_of=int(meta["as_of_day"]),
        fingerprint=meta["fingerprint"],
        extra=meta["extra"],
        backtest=meta.get("backtest"),  # optional: files without one load as before
        variants=variants,
    )
    if history is not None:
        attach(model, history)
    return model


def attach(model: Fit, history: History) -> Fit:
    """Make the model's debtor posteriors and per-invoice evidence those of `history`.

    On the history it was fitted on nothing changes. On another one the posteriors come
    from one E-step under the saved parameters, with a warning in the model's warnings.
    """
    if history.currency != model.currency and model.currency:
        raise ModelFileError(
            f"the model was fitted on {model.currency} amounts, the history is in {history.currency}"
        )
    if fingerprint(history) == model.fingerprint:
        return model
    data = prepare(history)
    model.debtor_posterior = posterior_start(data, model)
    model.invoice_log_lik = own_evidence(data, model)
    for variant in model.variants:
        variant.debtor_posterior = posterior_start(data, variant)
    note = (
        f"the model was fitted on other data (as of {day_date(model.as_of).isoformat()}); "
        "its parameters are applied to this history unchanged"
    )
    if note not in model.warnings:
        model.warnings.append(note)
    return model
