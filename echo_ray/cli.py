"""The `echo-ray` command line (typer)."""

from __future__ import annotations

import typer

app = typer.Typer(help="echo-ray: Deep Tree Echo State Networks served at scale on Ray.",
                  no_args_is_help=True)


@app.command()
def demo() -> None:
    """Train a DTESN on Mackey-Glass on Ray actors and print the NRMSE."""
    from echo_ray.demo import main

    main()


@app.command()
def status(address: str = typer.Option(None, help="Ray address (default RAY_ADDRESS, else "
                                                    "the latest `ray start` here)")) -> None:
    """Applications, deployments, replicas with their routing stats, and each routing strategy."""
    from echo_ray.status import main

    try:
        main(address)
    except ConnectionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def config(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
           markdown: bool = typer.Option(False, "--markdown",
                                         help="Print the configuration reference.")) -> None:
    """The effective settings (environment and defaults), secrets masked."""
    import json

    from echo_ray.settings import get_settings
    from echo_ray.settings import markdown as reference

    if markdown:
        typer.echo(reference())
        return
    try:
        settings = get_settings()
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    shown = settings.effective()
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="echo-ray settings")
    for col in ("section", "setting", "variable", "value"):
        table.add_column(col)
    for section, values in shown.items():
        variables = type(getattr(settings, section)).variables()
        for name, value in values.items():
            table.add_row(section, name, variables.get(name, ""),
                          "-" if value is None else str(value))
    Console().print(table)


from echo_ray.autoscaling.cli import scaling_app  # noqa: E402

app.add_typer(scaling_app, name="scaling", help="Scaling decisions and cost (`events`, `cost`).")

from echo_ray.sim.cli import register as register_sim  # noqa: E402

register_sim(app)

from echo_ray.ops.cli import register as register_ops  # noqa: E402

register_ops(app)

if __name__ == "__main__":
    app()
