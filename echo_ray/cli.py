"""The `echo-ray` command line (typer)."""

from __future__ import annotations

import typer

app = typer.Typer(help="echo-ray: Deep Tree Echo State Networks served at scale on Ray.",
                  no_args_is_help=True)


@app.command()
def serve() -> None:
    """Deploy the cognitive API on the Ray cluster at RAY_ADDRESS (or a new local one)."""
    from echo_ray.launch import main

    main()


@app.command()
def demo() -> None:
    """Train a DTESN on Mackey-Glass on Ray actors and print the NRMSE."""
    from echo_ray.demo import main

    main()


@app.command()
def status(address: str = typer.Option(None, help="Ray address (default RAY_ADDRESS or auto)")) -> None:
    """Applications, deployments, replicas with their routing stats, and each routing strategy."""
    from echo_ray.status import main

    main(address)


from echo_ray.autoscaling.cli import scaling_app  # noqa: E402

app.add_typer(scaling_app, name="scaling", help="Scaling decisions and cost (`events`, `cost`).")

from echo_ray.sim.cli import register as register_sim  # noqa: E402

register_sim(app)

from echo_ray.ops.cli import register as register_ops  # noqa: E402

register_ops(app)

if __name__ == "__main__":
    app()
