"""Click commands for the view; the daemon's CLI registers them with ``main.add_command``."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click

from ..core.errors import ConfigError

EXIT_CONFIG = 2


async def _until_signal(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` until SIGINT or SIGTERM, then cancel it (listeners close in its finally)."""
    task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass


@click.command("delta-view")
@click.option(
    "--config",
    "-f",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="config.json of the view (PROXY_* environment variables override its keys).",
)
@click.option("--check", is_flag=True, help="Validate the config and exit.")
def delta_view(config_path: Path | None, check: bool) -> None:
    """Run the Delta Lake S3 view (S3 on `port`, Prometheus on `metricsPort`)."""
    from .config import load_json
    from .server import serve

    try:
        cfg = load_json(config_path)
    except ConfigError as e:
        click.echo(f"storage-proxy: {e}", err=True)
        sys.exit(EXIT_CONFIG)
    if check:
        click.echo(f"{config_path or '(defaults)'}: OK — tables: {', '.join(cfg.table_mapping)}")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(_until_signal(serve(cfg)))
    except OSError as e:
        click.echo(f"storage-proxy: cannot start: {e}", err=True)
        sys.exit(1)


@click.command("client-proxy")
@click.option("--upstream", required=True, help="The view's URL, e.g. http://host:18080.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=18081, show_default=True, type=int)
def client_proxy(upstream: str, host: str, port: int) -> None:
    """Local proxy that follows the view's 307s itself, without the Authorization header."""
    from .client_proxy import serve

    asyncio.run(_until_signal(serve(upstream, host, port)))
