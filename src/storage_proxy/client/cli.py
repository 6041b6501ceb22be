"""The ``storage-proxy-client`` command: upload, download, ls — with progress bars."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import click
from tqdm import tqdm

from . import transfer

T = TypeVar("T")


def _run(ctx: click.Context, work: Callable[[aiohttp.ClientSession], Awaitable[T]]) -> T:
    if not ctx.obj["token"]:  # asked for here, not by the group: --help needs no token
        raise click.UsageError(
            "Missing option '--token' (or set STORAGE_PROXY_TOKEN); "
            "an operator mints one with: storage-proxy token issue --user ID",
            ctx,
        )

    async def main() -> T:
        headers = {"Authorization": f"Bearer {ctx.obj['token']}"}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            return await work(session)

    try:
        return asyncio.run(main())
    except transfer.TransferError as e:
        click.echo(f"storage-proxy-client: {e}", err=True)
        sys.exit(1)
    except aiohttp.ClientError as e:
        click.echo(f"storage-proxy-client: cannot reach {ctx.obj['url']}: {e}", err=True)
        sys.exit(1)
    except OSError as e:
        click.echo(f"storage-proxy-client: {e}", err=True)
        sys.exit(1)


class _Bar:
    """A tqdm bar (bytes, rate, ETA) created once the total is known."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label = label
        self.quiet = quiet
        self.bar: Any = None

    def start(self, offset: int, total: int) -> None:
        if offset:
            click.echo(f"{self.label}: resuming at byte {offset} of {total}", err=True)
        self.bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=self.label,
            disable=self.quiet,
            file=sys.stderr,
        )

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.group()
@click.option(
    "--url",
    envvar="STORAGE_PROXY_URL",
    default="http://127.0.0.1:6021",
    show_default=True,
    help="Client API base URL (env STORAGE_PROXY_URL).",
)
@click.option(
    "--token",
    envvar="STORAGE_PROXY_TOKEN",
    default=None,
    help="User token (env STORAGE_PROXY_TOKEN); needed by every command but --help.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def main(ctx: click.Context, url: str, token: str | None, quiet: bool) -> None:
    """Move files in and out of vfolders through a storage-proxy client API."""
    ctx.obj = {"url": url.rstrip("/"), "token": token, "quiet": quiet}


@main.command()
@click.argument("local", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("volume")
@click.argument("vfid")
@click.argument("remote")
@click.option("--chunk-size", default=transfer.DEFAULT_CHUNK, show_default=True)
@click.option(
    "--state-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Where interrupted uploads are remembered.",
)
@click.pass_context
def upload(
    ctx: click.Context,
    local: Path,
    volume: str,
    vfid: str,
    remote: str,
    chunk_size: int,
    state_file: Path | None,
) -> None:
    """Upload LOCAL to REMOTE in VOLUME/VFID; re-running an interrupted upload resumes it."""
    target = transfer.Target(ctx.obj["url"], volume, vfid, remote.lstrip("/"))
    state = transfer.UploadState(state_file or transfer.default_state_file())
    bar = _Bar(f"↑ {local.name}", ctx.obj["quiet"])
    try:
        meta = _run(
            ctx,
            lambda s: transfer.upload(
                s,
                local,
                target,
                state=state,
                chunk_size=chunk_size,
                on_start=bar.start,
                progress=bar.update,
            ),
        )
    finally:
        bar.close()
    click.echo(f"{remote}: {meta['size']} bytes, sha256 {meta['sha256']} (verified)")


@main.command()
@click.argument("volume")
@click.argument("vfid")
@click.argument("remote")
@click.argument("local", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def download(ctx: click.Context, volume: str, vfid: str, remote: str, local: Path) -> None:
    """Download REMOTE from VOLUME/VFID to LOCAL; re-running resumes from LOCAL.part."""
    target = transfer.Target(ctx.obj["url"], volume, vfid, remote.lstrip("/"))
    bar = _Bar(f"↓ {local.name}", ctx.obj["quiet"])
    try:
        meta = _run(
            ctx,
            lambda s: transfer.download(s, target, local, on_start=bar.start, progress=bar.update),
        )
    finally:
        bar.close()
    verified = "sha256 verified" if meta.get("sha256") else "no stored checksum to verify"
    click.echo(f"{local}: {local.stat().st_size} bytes ({verified})")


@main.command("ls")
@click.argument("volume")
@click.argument("vfid")
@click.argument("prefix", default="")
@click.pass_context
def ls(ctx: click.Context, volume: str, vfid: str, prefix: str) -> None:
    """List files in VOLUME/VFID below PREFIX ("" or "/": the whole vfolder)."""
    prefix = prefix.lstrip("/")  # "/" is the vfolder's root, as a person means it
    files = _run(ctx, lambda s: transfer.list_files(s, ctx.obj["url"], volume, vfid, prefix))
    if not files:
        where = f"below {prefix!r}" if prefix else "in this vfolder"
        click.echo(f"no files {where} ({volume} {vfid})")
        return
    for f in files:
        click.echo(f"{f['size']:>14}  {f['modified'][:19]}  {f['path']}")


if __name__ == "__main__":
    main()
