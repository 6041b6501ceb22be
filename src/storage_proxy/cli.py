"""The ``storage-proxy`` command: start-server, config check, volumes list."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__, eventloop
from .cli_config import load_or_exit
from .core.errors import PluginError
from .deltaview.cli import client_proxy, delta_view
from .token_cli import token_group
from .volumes.registry import available_backends, load_backend


@click.group()
@click.version_option(__version__, prog_name="storage-proxy")
def main() -> None:
    """storage-proxy: volumes, vfolders, quotas and transfers behind one daemon."""


@main.command("start-server")
@click.option(
    "--config",
    "-f",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="TOML config file (default: embedded defaults, or $STORAGE_PROXY_CONFIG).",
)
@click.option("--log-level", default=None, help="Override [logging].level.")
def start_server(config_path: Path | None, log_level: str | None) -> None:
    """Run the daemon until SIGTERM or SIGINT."""
    from .logsetup import setup_logging
    from .server import cancel_leftover_tasks, serve

    cfg = load_or_exit(config_path)
    setup_logging(cfg["logging"], log_level)
    workers = cfg["storage-proxy"]["num-proc"] or 1
    if workers > 1:
        from .supervisor import run_workers

        sys.exit(run_workers(cfg, workers, log_level))

    async def run() -> None:
        try:
            await serve(cfg)
        finally:
            await cancel_leftover_tasks()

    try:
        eventloop.run(run, cfg["storage-proxy"]["event-loop"])
    except (PluginError, PermissionError, OSError) as e:
        click.echo(f"storage-proxy: cannot start: {e}", err=True)
        sys.exit(1)


@main.group("config")
def config_group() -> None:
    """Inspect configuration."""


@config_group.command("check")
@click.argument("path", type=click.Path(path_type=Path))
def config_check(path: Path) -> None:
    """Validate PATH; exit 2 with the bad key named if it is invalid."""
    cfg = load_or_exit(path)
    vols = ", ".join(f"{n} ({v['backend']})" for n, v in cfg["volume"].items())
    click.echo(f"{path}: OK — volumes: {vols}")


@main.group("volumes")
def volumes_group() -> None:
    """Inspect volumes."""


@volumes_group.command("list")
@click.option("--config", "-f", "config_path", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def volumes_list(config_path: Path | None, as_json: bool) -> None:
    """The configured volumes with their backends and capabilities."""
    cfg = load_or_exit(config_path)
    rows = []
    for name, vol in cfg["volume"].items():
        backend = load_backend(vol["backend"])
        caps = sorted(c.value for c in backend.capabilities)
        rows.append(
            {"name": name, "backend": vol["backend"], "path": vol["path"], "capabilities": caps}
        )
    if as_json:
        click.echo(json.dumps({"volumes": rows}, indent=2))
        return
    click.echo(f"{'NAME':<16} {'BACKEND':<10} {'PATH':<48} CAPABILITIES")
    for r in rows:
        click.echo(
            f"{r['name']:<16} {r['backend']:<10} {r['path']:<48} {','.join(r['capabilities'])}"
        )


@main.group("backends")
def backends_group() -> None:
    """Inspect installed volume backends."""


@backends_group.command("list")
def backends_list() -> None:
    """Backends found in the storage_proxy.volume_backends entry-point group."""
    for name, ep in sorted(available_backends().items()):
        click.echo(f"{name:<12} {ep.value}")


main.add_command(delta_view)  # storage-proxy delta-view --config config.json
main.add_command(client_proxy)  # storage-proxy client-proxy --upstream URL
main.add_command(token_group)  # storage-proxy token issue --user ID


if __name__ == "__main__":
    main()
