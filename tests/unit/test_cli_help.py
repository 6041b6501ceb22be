"""``--help`` answers at every level of both commands without a token or a config, and a
command that needs a token says how to get one."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from storage_proxy.cli import main as daemon_cli
from storage_proxy.client.cli import main as client_cli

NO_TOKEN = {"STORAGE_PROXY_TOKEN": None, "STORAGE_PROXY_CONFIG": None, "STORAGE_PROXY_URL": None}


def command_paths(group: click.Command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if isinstance(group, click.Group):
        for name, sub in group.commands.items():
            paths += command_paths(sub, (*prefix, name))
    return paths


CASES = [("storage-proxy", daemon_cli, p) for p in command_paths(daemon_cli)] + [
    ("storage-proxy-client", client_cli, p) for p in command_paths(client_cli)
]


@pytest.mark.parametrize(
    ("cli", "path"), [(c, p) for _, c, p in CASES], ids=[" ".join((n, *p)) for n, _, p in CASES]
)
def test_help_needs_no_token(cli: click.Command, path: tuple[str, ...]) -> None:
    result = CliRunner(env=NO_TOKEN).invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage:")


def test_the_commands_are_all_there() -> None:
    assert ("token", "issue") in command_paths(daemon_cli)
    assert {("upload",), ("download",), ("ls",)} <= set(command_paths(client_cli))


def test_a_command_without_token_says_how_to_get_one() -> None:
    result = CliRunner(env=NO_TOKEN).invoke(client_cli, ["ls", "vol", "user:x/y"])
    assert result.exit_code == 2
    assert "--token" in result.output and "storage-proxy token issue" in result.output
