"""`echo-ray start | deploy | stop`: run the app on a local or live Ray cluster.

Mount into the main CLI with `register(app)` (adds the three commands at top level), or run
standalone: `python -m echo_ray.ops.cli deploy deployments/serve_config.yaml`.
Every command takes `--address` (default RAY_ADDRESS, else the latest `ray start` here).
`start` is the one way to start the app (`make run`).
"""

from __future__ import annotations

from pathlib import Path

import typer

DEFAULT_CONFIG = Path("deployments/serve_config.yaml")

ops_app = typer.Typer(help="Start, deploy and stop echo-ray on Ray clusters.",
                      no_args_is_help=True)

ADDRESS = typer.Option(None, "--address",
                       help="Ray cluster address (host:port); default RAY_ADDRESS, else the "
                            "latest `ray start` on this machine.")
TIMEOUT = typer.Option(300.0, "--timeout", help="Seconds to wait for the apps to run.")


def _console():
    from rich.console import Console

    return Console()


def _print_statuses(statuses: dict) -> None:
    from rich.table import Table

    table = Table(title="Serve applications")
    for col in ("app", "status", "deployments"):
        table.add_column(col)
    for name, s in statuses.items():
        deps = ", ".join(f"{d}: {st}" for d, st in s["deployments"].items())
        table.add_row(name, s["status"], deps)
    _console().print(table)


def _fail(message: str) -> None:
    _console().print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@ops_app.command()
def deploy(config: Path = typer.Argument(..., help="Serve config YAML (serve deploy format)."),
           address: str = ADDRESS, timeout: float = TIMEOUT,
           http_host: str = typer.Option(None, help="Override http_options.host."),
           http_port: int = typer.Option(None, help="Override http_options.port.")) -> None:
    """Check a Serve config strictly, deploy it, and wait until every app is RUNNING."""
    from echo_ray.ops.deploy import deploy_config
    from echo_ray.ops.serveconfig import load_yaml, with_http

    try:
        data = with_http(load_yaml(config), host=http_host, port=http_port)
        statuses = deploy_config(data, address=address, timeout_s=timeout)
    except (ValueError, RuntimeError, TimeoutError, ConnectionError) as exc:
        _fail(str(exc))
    _print_statuses(statuses)


@ops_app.command()
def start(port: int = typer.Option(6390, help="GCS port of the local head."),
          config: Path = typer.Option(None, help="Serve config YAML (e.g. "
                                                 f"{DEFAULT_CONFIG}); default: the app from "
                                                 "code, configured by env vars."),
          http_host: str = typer.Option(None, help="Where the HTTP proxy listens (default "
                                                   "ECHO_RAY_HTTP_HOST, else 127.0.0.1)."),
          http_port: int = typer.Option(None, help="HTTP proxy port (default "
                                                   "ECHO_RAY_HTTP_PORT, else 8000)."),
          dashboard_port: int = typer.Option(8265, help="Dashboard port (127.0.0.1)."),
          metrics_export_port: int = typer.Option(8080, help="Prometheus metrics port."),
          num_cpus: int = typer.Option(None, help="CPUs the head advertises (default: all)."),
          timeout: float = TIMEOUT) -> None:
    """A local Ray head on 127.0.0.1:PORT (reused if running) with the app deployed."""
    from echo_ray.ops.deploy import deploy_config, http_base, wait_http_ready
    from echo_ray.ops.localcluster import LocalCluster, Ports, free_port, port_open
    from echo_ray.ops.serveconfig import check_serve_config, default_config, load_yaml, with_http
    from echo_ray.settings import get_settings

    console = _console()
    try:
        service = get_settings().service
    except ValueError as exc:
        _fail(str(exc))
    http_host = http_host or service.http_host
    http_port = http_port or service.http_port
    if config is None:
        data = default_config()
    else:
        try:
            data = load_yaml(config)
        except ValueError as exc:
            _fail(str(exc))
    try:
        data = with_http(data, host=http_host, port=http_port)
        check_serve_config(data)
    except ValueError as exc:
        _fail(str(exc))
    address = f"127.0.0.1:{port}"
    if port_open("127.0.0.1", port):
        console.print(f"Using the Ray cluster already running on {address}.")
    else:
        ports = Ports(gcs=port, dashboard=dashboard_port, metrics_export=metrics_export_port,
                      client_server=free_port())
        try:
            LocalCluster.start(ports=ports, ray_default_temp_dir=True, num_cpus=num_cpus,
                               object_store_mb=None, block=False)
        except (RuntimeError, TimeoutError) as exc:
            _fail(str(exc))
        console.print(f"Started a Ray head on {address} (dashboard http://127.0.0.1:"
                      f"{dashboard_port}, metrics :{metrics_export_port}).")
    try:
        statuses = deploy_config(data, address=address, timeout_s=timeout)
        schema = check_serve_config(data)
        base = http_base(schema)
        for app in schema.applications:
            prefix = (app.route_prefix or "/").rstrip("/")
            wait_http_ready(f"{base}{prefix}/readyz", timeout)
    except (ValueError, RuntimeError, TimeoutError, ConnectionError) as exc:
        _fail(str(exc))
    _print_statuses(statuses)
    # the variable's name, never its value: the token stays out of the terminal and logs
    auth = ' -H "Authorization: Bearer $ECHO_RAY_API_TOKEN"' if service.api_token else ""
    console.print(f"\necho-ray is serving on {base} (OpenAPI: {base}/docs)\n"
                  f"  curl -s{auth} -X POST {base}/v1/sessions\n  curl -s{auth} {base}/v1/stats\n"
                  f"`echo-ray stop` removes the app; `echo-ray stop --cluster` also stops Ray.",
                  highlight=False)


@ops_app.command()
def stop(address: str = ADDRESS,
         app: str = typer.Option(None, help="Delete only this application."),
         cluster: bool = typer.Option(False, "--cluster", help="Then stop the local Ray "
                                      "processes too (`ray stop`: every Ray process on this "
                                      "machine).")) -> None:
    """Delete the app (or shut Serve down); with --cluster also stop local Ray."""
    import subprocess

    from echo_ray.connection import ray_address
    from echo_ray.ops.deploy import shutdown
    from echo_ray.ops.localcluster import ray_executable

    console = _console()
    address = ray_address(address)
    if cluster and address and address.split(":")[0] not in ("127.0.0.1", "localhost", "auto"):
        _fail(f"--cluster stops Ray on this machine only; {address!r} is not local")
    try:
        removed = shutdown(address, app)
        console.print(f"Removed Serve applications: {', '.join(removed) or '(none)'}")
    except ValueError as exc:
        _fail(str(exc))
    except ConnectionError as exc:
        if not cluster:
            _fail(f"no Ray cluster to stop: {exc}")
        console.print(f"No Ray cluster answered ({exc}).")
    if cluster:
        subprocess.run([ray_executable(), "stop"], check=False)


def register(app: typer.Typer) -> None:
    """Add `start`, `deploy` and `stop` to the main `echo-ray` CLI."""
    app.command("start")(start)
    app.command("deploy")(deploy)
    app.command("stop")(stop)


if __name__ == "__main__":
    ops_app()
