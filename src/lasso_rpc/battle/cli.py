"""`lasso-rpc battle run|compare|list` (SPEC §7)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lasso_rpc.errors import ConfigError

__all__ = ["battle_app", "builtin_scenarios", "find_scenario"]

battle_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Battle-test the router.")
_console = Console()


def _scenario_dirs() -> list[Path]:
    here = Path(__file__).resolve()
    dirs = [Path.cwd() / "examples" / "scenarios"]
    dirs += [p / "examples" / "scenarios" for p in here.parents[:4]]
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def builtin_scenarios() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for d in _scenario_dirs():
        for f in sorted(d.glob("*.yaml")):
            out.setdefault(f.stem.replace("_", "-"), f)
    return out


def find_scenario(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.is_file():
        return p
    found = builtin_scenarios().get(name_or_path.replace("_", "-"))
    if found is None:
        raise typer.BadParameter(
            f"{name_or_path}: no such file or built-in scenario (see `battle list`)"
        )
    return found


def print_slo_table(data: dict[str, Any]) -> None:
    s = data["summary"]
    lat = s["latency_ms"]
    table = Table(title=f"{data['scenario']['name']} — {'PASSED' if data['passed'] else 'FAILED'}")
    for col in ("SLO", "target", "actual", "verdict"):
        table.add_column(col)
    for v in data["slos"]:
        actual = v["actual"]
        shown = (
            "n/a"
            if actual is None
            else (f"{actual:.4g}" if isinstance(actual, float) else str(actual))
        )
        table.add_row(
            v["key"],
            f"{v['op']} {v['target']}",
            shown,
            "[green]ok[/]" if v["passed"] else "[red]VIOLATED[/]",
        )
    _console.print(table)
    _console.print(
        f"requests {s['requests']}  success {s['success_rate']:.4%}  "
        f"throughput {s['throughput_rps']:.1f}/s  "
        f"p50 {lat['p50']:.1f} ms  p95 {lat['p95']:.1f} ms  p99 {lat['p99']:.1f} ms  "
        f"failovers {s['failovers']} (client view {s['failovers_client_view']})"
    )
    for v in data["slos"]:
        if not v["passed"]:
            _console.print(f"[red]violation:[/] {v['message']}")


@battle_app.command("run")
def run(
    scenario: Annotated[str, typer.Argument(help="Scenario YAML file or built-in name")],
    out: Annotated[Path, typer.Option(help="Report directory")] = Path("battle_results"),
    baseline: Annotated[Path | None, typer.Option(help="Compare with this baseline JSON")] = None,
    scale: Annotated[float, typer.Option(help="Multiply every time in the scenario")] = 1.0,
    process: Annotated[
        bool | None, typer.Option("--process/--in-process", help="Where the router runs")
    ] = None,
) -> None:
    """Run a scenario; exit code 0 only when every SLO holds."""
    from lasso_rpc.battle.scenario import Scenario
    from lasso_rpc.cli import run_coro

    # The router's own warnings (every failed request under chaos) would drown the progress bar;
    # they are all in the report.
    logging.getLogger("lasso_rpc").setLevel(logging.ERROR)

    sc = Scenario.from_yaml(find_scenario(scenario))
    if scale != 1.0:
        sc = sc.scaled(scale)
    if process is not None:
        import dataclasses

        sc = dataclasses.replace(
            sc, router_opts=dataclasses.replace(sc.router_opts, process=process)
        )
    results: list[Any] = []
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

        async def main() -> None:
            results.append(await sc.run(progress=progress))

        run_coro(main())
    result = results[0]
    paths = result.write_reports(out)
    print_slo_table(result.data)
    _console.print(f"reports: {paths}")
    code = 0 if result.passed else 1
    if baseline is not None:
        from lasso_rpc.battle.measure.baseline import Thresholds, compare
        from lasso_rpc.battle.report.schema import load_result

        cmp = compare(result.data, load_result(baseline), Thresholds())
        _console.print(cmp.render())
        if cmp.regressed:
            code = 1
    raise typer.Exit(code)


@battle_app.command("compare")
def compare_cmd(
    new: Annotated[Path, typer.Argument(help="New result JSON")],
    baseline: Annotated[Path, typer.Argument(help="Baseline result JSON")],
    thresholds: Annotated[
        Path | None, typer.Option(help="YAML thresholds overriding the defaults")
    ] = None,
) -> None:
    """Compare a result with a baseline; non-zero exit on regression."""
    from lasso_rpc.battle.measure.baseline import Thresholds, compare
    from lasso_rpc.battle.report.schema import InvalidResult, load_result

    try:
        th = Thresholds()
        if thresholds is not None:
            th = Thresholds.from_dict(yaml.safe_load(thresholds.read_text()) or {})
        cmp = compare(load_result(new), load_result(baseline), th)
    except (InvalidResult, ConfigError, OSError) as exc:
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
