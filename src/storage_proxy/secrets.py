"""Secrets the embedded default generates on first start, stored owner-only (mode 0600)."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MANAGER_SECRET_FILE = "manager-secret"
TOKEN_SECRET_FILE = "token-secret"


@dataclass(frozen=True, slots=True)
class Secret:
    value: str
    path: Path | None  # where it is stored, when the daemon generated it
    generated_now: bool = False

    @property
    def fingerprint(self) -> str:
        """Enough to tell secrets apart in a log line; never the secret itself."""
        return self.value[:4] + "…"


def ensure_secret(configured: str | None, data_dir: Path, filename: str) -> Secret:
    """Return the configured secret, or the one stored under ``data_dir`` (made on first use)."""
    if configured:
        return Secret(configured, None)
    path = data_dir / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s is readable by others (mode %o); run: chmod 600 %s", path, mode, path)
        value = path.read_text().strip()
        if len(value) < 16:
            raise ValueError(
                f"{path} holds no usable secret; delete it to generate a new one"
            ) from None
        return Secret(value, path)
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return Secret(value, path, generated_now=True)
