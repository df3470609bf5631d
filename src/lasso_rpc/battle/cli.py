"""`lasso-rpc battle run|compare|list` (SPEC §7)."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lasso_rpc.aio import run_coro
from lasso_rpc.battle.catalogue import UnknownScenario, builtin_scenarios, find_scenario
from lasso_rpc.battle.measure.baseline import ScenarioMismatch, Thresholds, compare
from lasso_rpc.battle.report.console import print_slo_table
from lasso_rpc.battle.report.files import ReportPaths
from lasso_rpc.battle.report.schema import InvalidResult, load_result
from lasso_rpc.errors import ConfigError
from lasso_rpc.observability.redact import redact

__all__ = ["battle_app"]

battle_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Battle-test the router.")
_console = Console()


@battle_app.command("run")
def run(
    scenario: Annotated[str, typer.Argument(help="Scenario YAML file or built-in name")],
    out: Annotated[Path, typer.Option(help="Report directory")] = Path("battle_results"),
    baseline: Annotated[Path | None, typer.Option(help="Compare with this baseline JSON")] = None,
    scale: Annotated[float, typer.Option(help="Multiply every time in the scenario")] = 1.0,
    process: Annotated[
        bool | None, typer.Option("--process/--in-process", help="Where the router runs")
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live", help="Print the URL of the router's live dashboard, following the battle"
        ),
    ] = False,
) -> None:
    """Run a scenario; exit code 0 only when every SLO holds."""
    from lasso_rpc.battle.scenario import Scenario  # the whole framework: imported on use

    # The router's own warnings (every failed request under chaos) would drown the progress bar;
    # they are all in the report.
    logging.getLogger("lasso_rpc").setLevel(logging.ERROR)

    try:
        path = find_scenario(scenario)
    except UnknownScenario as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        sc = Scenario.from_yaml(path)
        if scale != 1.0:
            sc = sc.scaled(scale)
        if process is not None:
            sc = dataclasses.replace(
                sc, router_opts=dataclasses.replace(sc.router_opts, process=process)
            )
        sc.validate()
        base = load_result(baseline) if baseline is not None else None
        if base is not None and base["scenario"]["name"] != sc.name:
            raise ScenarioMismatch(
                f"the baseline {baseline} is a run of {base['scenario']['name']!r}, "
                f"not of {sc.name!r}"
            )
    except (ValueError, ConfigError, InvalidResult, ScenarioMismatch, OSError) as exc:
        _console.print(f"[red]cannot run {scenario}:[/] {redact(str(exc))}")
        raise typer.Exit(2) from exc
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeRemainingColumn(),
        console=_console,
        transient=True,
    ) as bar:
        task = bar.add_task(sc.name, total=1.0)

        def progress(done: float, total: float) -> None:
            bar.update(task, completed=done, total=total)

        def on_router(url: str) -> None:
            bar.console.print(f"live dashboard: {live_url(url)}", markup=False, highlight=False)

        result = run_coro(
            sc.run(progress=progress, baseline=base, on_router=on_router if live else None)
        )
    paths = result.write_reports(out)
    print_slo_table(result.data, _console)
    _console.print(report_lines(paths), markup=False, highlight=False)
    if live:
        _console.print("(the router has stopped; an open dashboard keeps the run's data)")
    code = 0 if result.passed else 1
    if base is not None:
        cmp = compare(result.data, base, Thresholds())
        _console.print(cmp.render())
        if cmp.regressed:
            code = 1
    for d in result.data.get("notifications") or []:
        state = "sent" if d["ok"] else f"[red]NOT sent[/] ({d['error']})"
        _console.print(f"notify {d['channel']} {d['target']}: {state} after {d['attempts']} tries")
    raise typer.Exit(code)


def live_url(router_url: str) -> str:
    """The dashboard in battle mode: the timeline covers the whole run from now."""
    return f"{router_url}/dashboard?battle&t0={time.time():.3f}"


def report_lines(paths: ReportPaths) -> str:
    """Where the reports went, one per line (not a Python repr)."""
    rows = [
        ("JSON", paths.json),
        ("Markdown", paths.markdown),
        ("HTML", paths.html),
        ("JUnit", paths.junit),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"  {k.ljust(width)}  {p}" for k, p in rows]
    return "reports:\n" + "\n".join(lines) + f"\n  (and latest.* copies in {paths.json.parent})"


@battle_app.command("compare")
def compare_cmd(
    new: Annotated[Path, typer.Argument(help="New result JSON")],
    baseline: Annotated[Path, typer.Argument(help="Baseline result JSON")],
    thresholds: Annotated[
        Path | None, typer.Option(help="YAML thresholds overriding the defaults")
    ] = None,
) -> None:
    """Compare a result with a baseline: exit 1 on a regression (any metric or SLO worse, or
    gone), 2 when they cannot be compared (different scenarios, unreadable files)."""
    try:
        th = Thresholds()
        if thresholds is not None:
            th = Thresholds.from_dict(yaml.safe_load(thresholds.read_text()) or {})
        cmp = compare(load_result(new), load_result(baseline), th)
    except (InvalidResult, ConfigError, OSError, ScenarioMismatch) as exc:
        _console.print(f"[red]cannot compare:[/] {exc}")
        raise typer.Exit(2) from exc
    _console.print(cmp.render())
    raise typer.Exit(1 if cmp.regressed else 0)


@battle_app.command("list")
def list_cmd() -> None:
    """The built-in scenarios."""
    table = Table(title="built-in scenarios")
    for col in ("name", "description", "file"):
        table.add_column(col)
    for name, path in builtin_scenarios().items():
        doc = yaml.safe_load(path.read_text()) or {}
        table.add_row(name, str(doc.get("description", "")).strip(), str(path))
    _console.print(table)
