"""The fit as a reader sees it: how many classes and why, whether it converged, what to mind.

Printed by `kravlab sim fit` above the parameter table; the same facts are in `--json`
(`class_selection`, `convergence`, `warnings`) and in a saved model.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from simulator.fit import Fit


def print_fit_summary(model: Fit, out: Console) -> None:
    selection = model.selection
    if selection is not None:
        if selection.get("candidates"):
            table = Table(
                title=(
                    f"latent classes: {selection['chosen']} chosen on held-out data "
                    f"({selection['train_invoices']:,} invoices before the cut, "
                    f"{selection['test_invoices']:,} after)"
                )
            )
            for column in (
                "classes",
                "held-out log-lik",
                "per test invoice",
                "behind best",
                "std. error",
                "shifts",
                "",
            ):
                table.add_column(column, justify="left" if column in ("shifts", "") else "right")
            for c in selection["candidates"]:
                table.add_row(
                    str(c["classes"]),
                    f"{c['held_out_log_lik']:,.1f}",
                    f"{c['per_test_invoice']:.4f}",
                    f"{c['behind_best']:,.1f}",
                    f"{c['standard_error']:,.1f}",
                    ",".join(f"{v:+.2f}" for v in c["class_shift"]),
                    "chosen" if c["classes"] == selection["chosen"] else "",
                )
            out.print(table)
            out.print(selection["rule"])
        else:
            out.print(f"latent classes: {selection['chosen']} ({selection.get('reason', '')})")
    c = model.convergence
    out.print(
        f"convergence: EM {c.get('em_iterations')} iterations "
        f"({'converged' if c.get('em_converged') else 'NOT converged'}), optimiser "
        f"{'succeeded' if c.get('optimiser_success') else 'failed'}, "
        f"{len(c.get('starts', []))} start(s), covariance by {c.get('covariance')} "
        "(debtor-clustered sandwich)"
    )
    for warning in model.warnings:
        out.print(Text.assemble(("warning: ", "yellow"), warning))
