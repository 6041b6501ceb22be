"""Logging: one line per record, text or JSON, to the console (and a file if configured)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class OneLineBadRequests(logging.Filter):
    """aiohttp logs a malformed request head (a ``\\x7f`` in a header, say) with a traceback,
    though it answers a plain 400: a client's mistake, not ours.  One INFO line instead, naming
    what was wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            what = " ".join(str(exc).split())
            record.msg, record.args = f"{record.getMessage()}: {type(exc).__name__}: {what}", None
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


BAD_REQUESTS = OneLineBadRequests()


def setup_logging(config: dict[str, Any], level_override: str | None = None) -> None:
    level = (level_override or config["level"]).upper()
    if config.get("format") == "json":
        formatter: logging.Formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = []
    if "console" in config["drivers"]:
        handlers.append(logging.StreamHandler(sys.stderr))
    file_cfg = config.get("file") or {}
    if "file" in config["drivers"] and file_cfg.get("path"):
        from logging.handlers import RotatingFileHandler

        path = f"{file_cfg['path']}/{file_cfg.get('filename', 'storage-proxy.log')}"
        handlers.append(
            RotatingFileHandler(
                path,
                maxBytes=int(file_cfg.get("rotation-size", 10 << 20)),
                backupCount=int(file_cfg.get("backup-count", 5)),
            )
        )
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        h.setFormatter(formatter)
        root.addHandler(h)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(BAD_REQUESTS)  # added once: the same object
