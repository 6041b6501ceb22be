"""The ``storage-proxy-client`` command: upload, download, ls — with progress bars — and the
versions of files and snapshots of vfolders (``versions ls|get|restore``, ``snapshots ls|get``)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import click
from tqdm import tqdm

from . import parallel, transfer
from .sync_cmd import sync_command

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


PARALLEL = click.option(
    "--parallel",
    "parallel_parts",
    type=click.IntRange(1, 64),
    default=None,
    help=f"Parts moved at once, each resumed on its own (default: 1 below "
    f"{parallel.PARALLEL_THRESHOLD >> 20} MiB, up to {parallel.MAX_AUTO_PARALLEL} above).",
)


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
@PARALLEL
@click.pass_context
def upload(
    ctx: click.Context,
    local: Path,
    volume: str,
    vfid: str,
    remote: str,
    chunk_size: int,
    state_file: Path | None,
    parallel_parts: int | None,
) -> None:
    """Upload LOCAL to REMOTE in VOLUME/VFID; re-running an interrupted upload resumes it."""
    target = transfer.Target(ctx.obj["url"], volume, vfid, remote.lstrip("/"))
    state = transfer.UploadState(state_file or transfer.default_state_file())
    bar = _Bar(f"↑ {local.name}", ctx.obj["quiet"])
    try:
        meta = _run(
            ctx,
            lambda s: parallel.upload(
                s,
                local,
                target,
                state=state,
                parallel=parallel_parts,
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
@PARALLEL
@click.pass_context
def download(
    ctx: click.Context,
    volume: str,
    vfid: str,
    remote: str,
    local: Path,
    parallel_parts: int | None,
) -> None:
    """Download REMOTE from VOLUME/VFID to LOCAL; re-running resumes from LOCAL.part."""
    target = transfer.Target(ctx.obj["url"], volume, vfid, remote.lstrip("/"))
    bar = _Bar(f"↓ {local.name}", ctx.obj["quiet"])
    try:
        meta = _run(
            ctx,
            lambda s: parallel.download(
                s,
                target,
                local,
                parallel=parallel_parts,
                on_start=bar.start,
                progress=bar.update,
            ),
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


def _get(
    ctx: click.Context, target: transfer.Target, local: Path, source: str, sha: str | None
) -> None:
    bar = _Bar(f"↓ {local.name}", ctx.obj["quiet"])
    try:
        _run(
            ctx,
            lambda s: transfer.download(
                s, target, local, on_start=bar.start, progress=bar.update, source=source, sha256=sha
            ),
        )
    finally:
        bar.close()
    verified = "sha256 verified" if sha else "no checksum to verify"
    click.echo(f"{local}: {local.stat().st_size} bytes ({verified})")


@main.group()
def versions() -> None:
    """Kept versions of a file (a vfolder keeps them once its versions setting is above 0)."""


@versions.command("ls")
@click.argument("volume")
@click.argument("vfid")
@click.argument("path")
@click.pass_context
def versions_ls(ctx: click.Context, volume: str, vfid: str, path: str) -> None:
    """List the versions of PATH in VOLUME/VFID, newest first."""
    url = f"{transfer.vfolder_url(ctx.obj['url'], volume, vfid)}/versions/{path.lstrip('/')}"
    found = _run(ctx, lambda s: transfer.call_json(s, "GET", url, "listing versions"))
    if not found["versions"]:
        click.echo(f"no versions of {path!r} ({volume} {vfid})")
    for v in found["versions"]:
        who = v["who"] or "-"
        click.echo(f"{v['version_id']}  {v['size']:>14}  {v['kept'][:19]}  {v['reason']:<9} {who}")


def _version_url(ctx: click.Context, volume: str, vfid: str, path: str, version: str) -> str:
    base = transfer.vfolder_url(ctx.obj["url"], volume, vfid)
    return f"{base}/version/{version}/{path.lstrip('/')}"


@versions.command("get")
@click.argument("volume")
@click.argument("vfid")
@click.argument("path")
@click.argument("version")
@click.argument("local", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def versions_get(
    ctx: click.Context, volume: str, vfid: str, path: str, version: str, local: Path
) -> None:
    """Download VERSION of PATH to LOCAL (verified against its sha256)."""
    base = transfer.vfolder_url(ctx.obj["url"], volume, vfid)
    listing = f"{base}/versions/{path.lstrip('/')}"
    found = _run(ctx, lambda s: transfer.call_json(s, "GET", listing, "listing versions"))
    sha = next((v["sha256"] for v in found["versions"] if v["version_id"] == version), None)
    target = transfer.Target(ctx.obj["url"], volume, vfid, path.lstrip("/"))
    _get(ctx, target, local, _version_url(ctx, volume, vfid, path, version), sha)


@versions.command("restore")
@click.argument("volume")
@click.argument("vfid")
@click.argument("path")
@click.argument("version")
@click.pass_context
def versions_restore(ctx: click.Context, volume: str, vfid: str, path: str, version: str) -> None:
    """Make VERSION the current PATH (the current one is kept as a version)."""
    url = _version_url(ctx, volume, vfid, path, version)
    meta = _run(ctx, lambda s: transfer.call_json(s, "POST", url, "restoring the version"))
    click.echo(f"{path}: restored, {meta['size']} bytes, sha256 {meta['sha256']}")


@main.group()
def snapshots() -> None:
    """Snapshots of a vfolder (read-only)."""


@snapshots.command("ls")
@click.argument("volume")
@click.argument("vfid")
@click.pass_context
def snapshots_ls(ctx: click.Context, volume: str, vfid: str) -> None:
    """List the snapshots of VOLUME/VFID, oldest first."""
    url = f"{transfer.vfolder_url(ctx.obj['url'], volume, vfid)}/snapshots"
    found = _run(ctx, lambda s: transfer.call_json(s, "GET", url, "listing snapshots"))
    if not found["snapshots"]:
        click.echo(f"no snapshots ({volume} {vfid})")
    for snap in found["snapshots"]:
        size = "-" if snap["size"] is None else str(snap["size"])
        click.echo(f"{snap['snapshot_id']}  {snap['created'][:19]}  {size:>14}")


@snapshots.command("get")
@click.argument("volume")
@click.argument("vfid")
@click.argument("snapshot")
@click.argument("path")
@click.argument("local", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def snapshots_get(
    ctx: click.Context, volume: str, vfid: str, snapshot: str, path: str, local: Path
) -> None:
    """Download PATH as it is in SNAPSHOT to LOCAL."""
    base = transfer.vfolder_url(ctx.obj["url"], volume, vfid)
    source = f"{base}/snapshots/{snapshot}/files/{path.lstrip('/')}"
    target = transfer.Target(ctx.obj["url"], volume, vfid, path.lstrip("/"))
    _get(ctx, target, local, source, None)


main.add_command(sync_command(_run))

if __name__ == "__main__":
    main()
