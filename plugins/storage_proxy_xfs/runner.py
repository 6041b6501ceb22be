"""The command-runner seam (shared with the ddn backend: :mod:`storage_proxy.volumes.commands`)."""

from __future__ import annotations

from storage_proxy.volumes.commands import CommandResult, CommandRunner

__all__ = ["CommandResult", "CommandRunner"]
