"""Loading the configuration for a command: checked whole (the Delta view's section and every
volume's backend options too), or a clear message and exit status 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .config import load_config
from .core.errors import ConfigError, PluginError
from .volumes.registry import load_backend

EXIT_CONFIG = 2


def load_or_exit(path: Path | None) -> dict[str, Any]:
    try:
        cfg = load_config(path)
        if cfg["delta-view"] is not None:
            from .deltaview import validate as validate_delta_view

            try:
                cfg["delta-view"] = validate_delta_view(cfg["delta-view"])
            except ConfigError as e:
                raise ConfigError(f"[delta-view]: {e}") from None
        for name, vol in cfg["volume"].items():
            try:
                backend = load_backend(vol["backend"])
                backend.options_schema.check(vol["options"])
            except PluginError as e:
                raise ConfigError(f"volume.{name}.backend: {e}") from None
            except Exception as e:  # trafaret.DataError from the backend's option schema
                detail = e.as_dict() if hasattr(e, "as_dict") else e
                raise ConfigError(f"volume.{name}.options: {detail}") from None
        return cfg
    except ConfigError as e:
        click.echo(f"storage-proxy: {e}", err=True)
        sys.exit(EXIT_CONFIG)
