"""`kravlab sim …`: generate worlds, fit, forecast and backtest from the command line."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from simulator.backtest import CALIBRATION_HORIZON, rolling, split_days, summary, summary_lines
from simulator.currency import major
from simulator.fit import Fit, fit_history
from simulator.fit_report import print_fit_summary
from simulator.forecast import ACTUAL, DEFAULT_CHANNEL_COSTS, Options, default_cohort, forecast
from simulator.history import (
    History,
    HistoryError,
    canonical,
    day_date,
    day_number,
    load_history,
)
from simulator.policy import PolicyError, parse_policies
from simulator.saved_model import ModelFileError, load_model, save_model
from simulator.worlds import WORLDS, generate, write

# Markup off: parameter names ("beta[b2c]"), policy names and messages from the user's
# files hold square brackets that rich would otherwise take for style tags and drop.
console = Console(stderr=True, markup=False, highlight=False)
out = Console(markup=False, highlight=False)


def add_parser(commands: Any) -> None:
    sim = commands.add_parser("sim", help="the credit-policy simulator")
    sub = sim.add_subparsers(dest="sim_command", required=True)
    gen = sub.add_parser("generate", help="write a synthetic history with its truth")
    gen.add_argument("--world", choices=sorted(WORLDS), required=True)
    gen.add_argument("--invoices", type=int, default=100_000)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--out", required=True)
    fit_p = sub.add_parser("fit", help="fit the payment-behaviour model and print its parameters")
    fit_p.add_argument("dir")
    fit_p.add_argument("--as-of", type=date.fromisoformat)
    fit_p.add_argument("--json", action="store_true")
    fit_p.add_argument("--out", metavar="MODEL", help="write the fitted model to this file")
    fit_p.add_argument(
        "--classes", type=int, help="latent classes (default: chosen on held-out data)"
    )
    fit_p.add_argument(
        "--backtest",
        action="store_true",
        help="also run rolling backtests of this history and store their summary in the model "
        "(a later `forecast --model MODEL --calibrate` reuses its calibration)",
    )
    fc = sub.add_parser("forecast", help="forecast recovery and cash under policies")
    fc.add_argument("dir")
    fc.add_argument(
        "--policy",
        action="append",
        required=True,
        metavar="NAME=FILE",
        help="a policy file (NAME=actual replays the recorded contacts); repeat",
    )
    fc.add_argument("--horizon", type=int, default=180)
    fc.add_argument("--due-from", type=date.fromisoformat, help="cohort: due on or after")
    fc.add_argument("--due-to", type=date.fromisoformat, help="cohort: due on or before")
    fc.add_argument(
        "--calibrate",
        action="store_true",
        help="widen intervals by the model-form error of rolling backtests of this history and "
        "by how far the class selection's candidate models disagree about each policy",
    )
    fc.add_argument("--as-of", type=date.fromisoformat)
    fc.add_argument("--draws", type=int, default=100)
    fc.add_argument(
        "--cost",
        action="append",
        default=[],
        metavar="CHANNEL=MINOR_UNITS",
        help="cost of one contact, e.g. letter=1200 (öre); repeat per channel",
    )
    fc.add_argument("--json", action="store_true")
    fc.add_argument("--plot", metavar="PNG")
    fc.add_argument("--model", metavar="MODEL", help="a model saved by `sim fit --out`")
    bt = sub.add_parser("backtest", help="fit before a split date, predict after it")
    bt.add_argument("dir")
    bt.add_argument(
        "--split",
        type=date.fromisoformat,
        help="the latest split date (default: the latest possible)",
    )
    bt.add_argument(
        "--splits",
        type=int,
        help="rolling origins stepping back from it (default 1 with --split, else 4)",
    )
    bt.add_argument("--horizon", type=int, default=180)
    bt.add_argument("--json", action="store_true")


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _load(directory: str, as_of: date | None) -> History:
    with _progress() as progress:
        progress.add_task(f"loading {directory}", total=None)
        # The canonical order, which the service's extract of a book uses too: the same
        # history gives the same fit and forecast whichever way it was read.
        return canonical(load_history(directory, as_of))


def _fit(history: History, classes: int | None = None) -> Fit:
    with _progress() as progress:
        task = progress.add_task("fitting", total=None)
        return fit_history(
            history,
            classes=classes,
            progress=lambda text: progress.update(task, description=text),
        )


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except HistoryError as exc:
        console.print(Text("the history has problems:", style="red"))
        console.print(str(exc))
    except PolicyError as exc:
        console.print(Text("the policy has problems:", style="red"))
        for path, message in exc.violations:
            console.print(f"  {path}: {message}")
    except (OSError, ValueError, ModelFileError) as exc:
        console.print(Text(str(exc), style="red"))
    return 2


def _policies(spec: str) -> tuple[str, Any]:
    name, sep, file = spec.partition("=")
    if not sep or not name or not file:
        raise ValueError(f"--policy takes NAME=FILE, got {spec!r}")
    if file == ACTUAL:
        return name, ACTUAL
    try:
        document = json.loads(Path(file).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file}: not JSON: {exc}") from exc
    return name, parse_policies(document)


def _costs(specs: list[str]) -> dict[str, int]:
    costs = dict(DEFAULT_CHANNEL_COSTS)
    for spec in specs:
        channel, _, value = spec.partition("=")
        if channel not in costs or not value.isdigit():
            raise ValueError(
                f"--cost takes CHANNEL=MINOR_UNITS with a channel of {', '.join(costs)}, got {spec!r}"
            )
        costs[channel] = int(value)
    return costs


def _run(args: argparse.Namespace) -> int:
    if args.sim_command == "generate":
        with _progress() as progress:
            progress.add_task(f"generating {args.invoices:,} invoices of {args.world}", total=None)
            world = generate(args.world, args.invoices, args.seed)
            write(world, args.out)
        console.print(f"wrote {args.out}/invoices.csv, payments.csv, actions.csv and truth.json")
        return 0
    if args.sim_command == "fit":
        history = _load(args.dir, args.as_of)
        model = _fit(history, args.classes)
        if args.backtest:
            with _progress() as progress:
                progress.add_task("backtesting", total=None)
                horizon = CALIBRATION_HORIZON
                report = rolling(history, split_days(history, None, None, horizon), horizon)
            model.backtest = summary(report)
            if not args.json:
                for line in summary_lines(report):
                    out.print(line)
        if args.out:
            save_model(model, args.out)
            console.print(f"wrote the model to {args.out}")
        if args.json:
            print(
                json.dumps(
                    {
                        "invoices": model.invoices,
                        "fitted_at": model.fitted_at,
                        "classes": model.layout.classes,
                        "class_share": {
                            "b2b": model.class_share[0].tolist(),
                            "b2c": model.class_share[1].tolist(),
                        },
                        "class_selection": model.selection,
                        "convergence": model.convergence,
                        "backtest": model.backtest,
                        "warnings": model.warnings,
                        "parameters": model.report(),
                    },
                    indent=1,
                )
            )
            return 0
        print_fit_summary(model, out)
        table = Table(
            title=f"fitted on {model.invoices:,} invoices ({model.iterations} EM iterations)"
        )
        for column in ("parameter", "estimate", "std. error", "source"):
            table.add_column(
                column, justify="right" if column in ("estimate", "std. error") else "left"
            )
        for row in model.report():
            table.add_row(
                str(row["name"]), f"{row['estimate']:.3f}", f"{row['se']:.3f}", str(row["source"])
            )
        out.print(table)
        return 0
    if args.sim_command == "forecast":
        candidates = dict(_policies(spec) for spec in args.policy)
        history = _load(args.dir, args.as_of)
        model = load_model(args.model, history) if args.model else _fit(history)
        calibration = None
        stored = model.backtest if args.model else None
        if (
            args.calibrate
            and stored
            and stored.get("calibration")
            and stored["as_of"] == (day_date(history.as_of).isoformat())
        ):
            calibration = stored["calibration"]  # the saved model's own backtests
        elif args.calibrate:
            with _progress() as progress:
                progress.add_task("backtesting to calibrate the intervals", total=None)
                horizon = min(args.horizon, CALIBRATION_HORIZON)
                splits = split_days(history, None, None, horizon)
                calibration = rolling(history, splits, horizon)["calibration"]
        with _progress() as progress:
            progress.add_task(f"forecasting {len(candidates)} policies", total=None)
            result = forecast(
                history,
                model,
                candidates,
                default_cohort(
                    history,
                    day_number(args.due_from) if args.due_from else None,
                    day_number(args.due_to) if args.due_to else None,
                ),
                Options(
                    horizon=args.horizon,
                    draws=args.draws,
                    channel_costs=_costs(args.cost),
                    calibration=calibration,
                ),
            )
        if args.plot:
            plot(result, args.plot)
        if args.json:
            print(json.dumps(result, indent=1))
        else:
            _print_forecast(result)
        return 0
    if args.sim_command == "backtest":
        history = _load(args.dir, None)
        with _progress() as progress:
            progress.add_task("backtesting", total=None)
            latest = day_number(args.split) if args.split else None
            report = rolling(
                history, split_days(history, latest, args.splits, args.horizon), args.horizon
            )
        if args.json:
            print(json.dumps(report, indent=1))
        else:
            console.print(
                f"train {report['train']['invoices']:,} invoices before {report['split']}, "
                f"test {report['test']['invoices']:,} due on or after it"
            )
            table = Table()
            for column in ("day", "predicted", "actual", "90% interval"):
                table.add_column(column, justify="right")
            for d, predicted, actual, low, high in report["points"][::15]:
                table.add_row(
                    str(d), f"{predicted:.1%}", f"{actual:.1%}", f"{low:.1%} – {high:.1%}"
                )
            out.print(table)
            out.print(
                f"mean error {report['mae_pp']:.2f} pp, largest {report['max_abs_pp']:.2f} pp, "
                f"interval coverage {report['coverage']:.0%}"
            )
            for line in summary_lines(report):
                out.print(line)
        return 0
    raise AssertionError(args.sim_command)


def _print_forecast(result: dict[str, Any]) -> None:
    cohort = result["cohort"]
    out.print(
        f"cohort: {cohort['invoices']:,} invoices, "
        f"{major(cohort['amount'], cohort['currency']):,.0f} {cohort['currency']}, "
        f"due {cohort['due_from']} to {cohort['due_to']}; as of {result['as_of']}"
    )
    # One column per policy, one row per measure: stays readable in a narrow terminal.
    results = result["results"]
    table = Table()
    table.add_column("")
    for name in results:
        table.add_column(name, justify="right")
    days = list(next(iter(results.values()))["recovery"])
    for d in days:
        cells = []
        for r in results.values():
            interval = r["recovery_interval"].get(d)
            cells.append(
                f"{r['recovery'][d]:.1%}"
                + (f"\n{interval[0]:.1%}–{interval[1]:.1%}" if interval else "")
            )
        table.add_row(f"recovered by day {d}", *cells)
    table.add_row("days beyond terms", *(f"{r['days_beyond_terms']:.1f}" for r in results.values()))
    table.add_row("contacts", *(f"{sum(r['actions'].values()):,.0f}" for r in results.values()))
    table.add_row("escalations", *(f"{r['escalations']['count']:,.0f}" for r in results.values()))
    currency = cohort["currency"]
    for label, key in (
        ("fee income", "fee_income"),
        ("interest income", "interest_income"),
        ("channel cost", "channel_cost"),
    ):
        table.add_row(
            f"{label} ({currency})", *(f"{major(r[key], currency):,.0f}" for r in results.values())
        )
    out.print(table)
    for name, delta in result["deltas"].items():
        parts = [f"day {d}: {v * 100:+.2f} pp" for d, v in delta["recovery"].items() if d != "0"]
        out.print(f"{name} vs {next(iter(result['results']))}: " + ", ".join(parts))
    for warning in result["warnings"]:
        out.print(Text.assemble(("warning: ", "yellow"), warning))


def plot(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5))
    for name, r in result["results"].items():
        rows = r["cash_curve"]
        days = [row[0] for row in rows]
        axes.plot(days, [row[1] for row in rows], label=name)
        axes.fill_between(days, [row[2] for row in rows], [row[3] for row in rows], alpha=0.2)
    axes.axvline(0, color="grey", linewidth=0.8)
    axes.set_xlabel("days after due date")
    axes.set_ylabel("share of invoiced amount paid")
    axes.set_title(
        f"Cash-in curve, cohort of {result['cohort']['invoices']:,} invoices (90 % bands)"
    )
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
