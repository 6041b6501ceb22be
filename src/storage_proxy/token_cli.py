"""``storage-proxy token issue``: a user token minted on the node, for operators.

It signs with the same secret the daemon uses (``[storage-proxy] secret``, from etcd when
``[etcd]`` overlays it, else ``<data-dir>/token-secret``, made on first use exactly as the daemon
makes it) and by the same rule as ``POST /token`` (:meth:`TokenService.mint_user`).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from .cli_config import load_or_exit
from .core.errors import StorageProxyError
from .core.units import parse_duration
from .secrets import TOKEN_SECRET_FILE, ensure_secret
from .services.tokens import TokenService, UserTokenPolicy

EXIT_USAGE = 2


@click.group("token")
def token_group() -> None:
    """Mint user tokens for the client API and the web UI."""


@token_group.command("issue")
@click.option("--user", required=True, help="The user id the token names (its 'sub').")
@click.option(
    "--group", "groups", multiple=True, help="A group the user belongs to (repeat for more)."
)
@click.option(
    "--expires-in",
    default=None,
    help="Lifetime such as 30m, 1h or 1d (default: [storage-proxy] user-token-expire; "
    "capped by user-token-max-expire).",
)
@click.option(
    "--config",
    "-f",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="The daemon's TOML config (default: embedded defaults, or $STORAGE_PROXY_CONFIG).",
)
@click.option("--link", is_flag=True, help="Print the web UI sign-in link instead of the token.")
@click.option("--json", "as_json", is_flag=True, help="Print token, expires_at and ui_url as JSON.")
def issue(
    user: str,
    groups: tuple[str, ...],
    expires_in: str | None,
    config_path: Path | None,
    link: bool,
    as_json: bool,
) -> None:
    """Print a user token (stdout); when it expires goes to stderr."""
    from .api.manager.tokens import ui_link
    from .services.dataproxy import DataProxySettings

    cfg = asyncio.run(_shared(load_or_exit(config_path)))
    try:
        lifetime = parse_duration(expires_in) if expires_in is not None else None
        sp = cfg["storage-proxy"]
        secret = ensure_secret(sp["secret"], Path(sp["data-dir"]), TOKEN_SECRET_FILE)
        service = TokenService(secret.value, sp["session-expire"])
        issued = service.mint_user(user, groups, lifetime, UserTokenPolicy.from_config(cfg))
    except (ValueError, StorageProxyError) as e:
        detail = e.detail if isinstance(e, StorageProxyError) else str(e)
        click.echo(f"storage-proxy token issue: {detail}", err=True)
        sys.exit(EXIT_USAGE)
    url = ui_link(DataProxySettings.from_config(cfg).client_url, issued.token)
    if as_json:
        body = {"token": issued.token, "expires_at": issued.expires_at.isoformat(), "ui_url": url}
        click.echo(json.dumps(body))
        return
    click.echo(url if link else issued.token)
    click.echo(f"expires {issued.expires_at.isoformat()}", err=True)


async def _shared(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config as the daemon sees it: with ``[etcd]``, the shared keys overlaid."""
    if not cfg.get("etcd"):
        return cfg
    from .infra.shared_config import open_shared_config

    try:
        merged, shared = await open_shared_config(cfg)
    except Exception as e:  # etcd unreachable: say so, as the daemon would
        raise click.ClickException(f"cannot read the shared config from etcd: {e}") from None
    if shared is not None:
        await shared.client.close()
    return merged


__all__ = ["token_group"]
