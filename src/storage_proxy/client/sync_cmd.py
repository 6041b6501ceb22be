"""The ``sync`` command of ``storage-proxy-client`` (registered by :mod:`.cli`)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import click

from .sync import Plan, Remote, describe, error_lines, parse_remote, summary_of
from .sync_run import BATCH_MAX_FILE, Bar, Options, Outcome, execute, plan_download, plan_upload

Runner = Callable[[click.Context, Callable[[aiohttp.ClientSession], Awaitable[Any]]], Any]


def _sides(source: str, destination: str) -> tuple[Path, Remote, bool]:
    """The local directory, the remote place, and whether the remote one is the source."""
    src, dst = parse_remote(source), parse_remote(destination)
    if (src is None) == (dst is None):
        raise click.UsageError(
            "one of SOURCE and DESTINATION must be a local directory and the other a remote "
            "place written VOLUME:VFID[/PREFIX] (e.g. vol1:user:UUID/HEX/data)"
        )
    if src is not None:
        return Path(destination), src, True
    assert dst is not None
    local = Path(source)
    if not local.is_dir():
        raise click.BadParameter(f"{source} is not a directory", param_hint="SOURCE")
    return local, dst, False


def _report(plan: Plan, outcome: Outcome | None, moved: int, dry_run: bool) -> int:
    for rel, why in sorted(plan.skipped.items()):
        click.echo(f"skipped {rel}: {why}", err=True)
    if dry_run:
        for action in plan.actions:
            click.echo(describe(action))
        total = sum(a.size for a in plan.actions if a.kind != "delete")
        click.echo(
            f"dry run: {len(plan.actions)} to do ({total} bytes to transfer), "
            f"{plan.unchanged} unchanged"
        )
        errors = plan.failed
    else:
        assert outcome is not None
        errors = outcome.errors
        click.echo(summary_of(plan, outcome.done, moved, errors))
    if errors:
        click.echo(f"storage-proxy-client: {len(errors)} file(s) failed:", err=True)
        for line in error_lines(errors):
            click.echo(line, err=True)
        return 1
    return 0


def sync_command(run: Runner) -> click.Command:
    @click.command("sync")
    @click.argument("source")
    @click.argument("destination")
    @click.option(
        "--jobs", "-j", default=8, show_default=True, type=click.IntRange(1, 64),
        help="Requests in flight at once (files, batches of small files, comparisons).",
    )  # fmt: skip
    @click.option("--dry-run", "-n", is_flag=True, help="Only say what would be done.")
    @click.option(
        "--delete", is_flag=True, help="Delete destination files that the source does not have."
    )
    @click.option(
        "--batch-max-file", default=BATCH_MAX_FILE, show_default=True,
        help="Files up to this many bytes are uploaded together in tar batches.",
    )  # fmt: skip
    @click.pass_context
    def sync(
        ctx: click.Context,
        source: str,
        destination: str,
        jobs: int,
        dry_run: bool,
        delete: bool,
        batch_max_file: int,
    ) -> None:
        """Make DESTINATION hold SOURCE's files: a local directory to a remote place
        (VOLUME:VFID[/PREFIX]) or the other way round.

        Files are compared by size, then by sha256; only those that differ are transferred.
        Symbolic links below the local directory are never followed: they are skipped and
        reported (and a link where a downloaded file or directory should go is an error).
        Empty directories are not created. Exits 1 if any file failed, listing each."""
        local, remote, downloading = _sides(source, destination)
        opts = Options(ctx.obj["url"], jobs, delete, dry_run, ctx.obj["quiet"], batch_max_file)

        async def work(session: aiohttp.ClientSession) -> int:
            if downloading:
                local.mkdir(parents=True, exist_ok=True)
                plan = await plan_download(session, remote, local, opts)
            else:
                plan = await plan_upload(session, local, remote, opts)
            if dry_run:
                return _report(plan, None, 0, True)
            moving = [a for a in plan.actions if a.kind != "delete"]
            bar = Bar(sum(a.size for a in moving), len(plan.actions), opts.quiet)
            try:
                outcome = await execute(
                    session, plan, local, remote, opts, bar, downloading=downloading
                )
            finally:
                bar.close()
            return _report(plan, outcome, bar.moved, False)

        if run(ctx, work):
            sys.exit(1)

    return sync
