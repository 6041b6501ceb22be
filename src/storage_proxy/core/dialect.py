"""Which Backend.AI release the manager API answers like: ``[api.manager] compat``.

A Backend.AI manager reads more than status codes: a 26.09 one parses ``error_code`` out of an
error body to tell a missing quota scope from a missing vfolder, expects ``{"bgtask_id"}`` from a
clone, and follows ``{"results"}`` of a mkdir; a 23.09 one treats a 204 from a clone as "done".
One daemon serves one manager, so the dialect is read once from the configuration and every
door shapes its answers by it.  The rules stay the same in both; only the wire differs.

:class:`Wire` is the one list of what differs between the two releases' answers (observed on
storage-proxy 23.9.10 and 26.9.6, ``bench/compat.py``); the error shapes are in
``api.dialect``.  Where both releases answer alike (a refused file operation's 400 ``{"msg",
"errno", "paths"}``, the whole ``st_mode`` in a listing, directories counted in a vfolder's
usage, ``application/octet-stream`` downloads) the doors answer so in either dialect.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Wire:
    """What one Backend.AI release answers where the two releases differ."""

    #: ``type`` of ``GET /`` and ``/status`` (23.9.10 spells it "maanger-facing").
    status_type: str
    #: A refused manager auth token: 403 text/plain ``403: Forbidden`` (23.9.10) instead of a
    #: problem.
    forbidden_as_text: bool
    #: mkdir takes a list of paths and answers ``{"results": {"success", "failed"}}`` (26.9.6);
    #: otherwise one path, 204 or the failure.
    mkdir_results: bool
    #: A delete of a path that is already gone succeeds (26.9.6); otherwise 400 ENOENT.
    delete_missing_ok: bool
    #: Folder clone and delete answer ``{"bgtask_id"}`` at once (26.9.6); otherwise 204 when done.
    task_ids: bool
    #: ``/health`` answers with connectivity checks, always 200 (26.9.6); otherwise as
    #: ``/status`` on the manager listener and 503 naming what is down on the internal one.
    health_checks: bool
    #: A missing path in ``/download-archive`` is a text/plain 404 (26.9.6).
    archive_404_text: bool
    #: The Content-Type of an answer with no body (the deprecated ``/volume/quota``'s 400):
    #: 23.9.10's aiohttp names it ``application/octet-stream``, 26.9.6's none.
    empty_body_type: str | None


class Dialect(enum.StrEnum):
    #: Backend.AI 26.09 (storage-proxy 26.9.6): the default.
    BAI_26_09 = "26.09"
    #: Backend.AI 23.09 (storage-proxy 23.9.10).
    BAI_23_09 = "23.09"

    @property
    def is_legacy(self) -> bool:
        return self is Dialect.BAI_23_09

    @property
    def wire(self) -> Wire:
        return WIRE[self]


WIRE = {
    Dialect.BAI_26_09: Wire(
        status_type="manager-facing",
        forbidden_as_text=False,
        mkdir_results=True,
        delete_missing_ok=True,
        task_ids=True,
        health_checks=True,
        archive_404_text=True,
        empty_body_type=None,
    ),
    Dialect.BAI_23_09: Wire(
        status_type="maanger-facing",
        forbidden_as_text=True,
        mkdir_results=False,
        delete_missing_ok=False,
        task_ids=False,
        health_checks=False,
        archive_404_text=False,
        empty_body_type="application/octet-stream",
    ),
}

DEFAULT_DIALECT = Dialect.BAI_26_09
