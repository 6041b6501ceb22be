"""Which Backend.AI release the manager API answers like: ``[api.manager] compat``.

A Backend.AI manager reads more than status codes: a 26.09 one parses ``error_code`` out of an
error body to tell a missing quota scope from a missing vfolder, expects ``{"bgtask_id"}`` from a
clone, and follows ``{"results"}`` of a mkdir; a 23.09 one treats a 204 from a clone as "done".
One daemon serves one manager, so the dialect is read once from the configuration and every
door shapes its answers by it.  The rules stay the same in both; only the wire differs.
"""

from __future__ import annotations

import enum


class Dialect(enum.StrEnum):
    #: Backend.AI 26.09 (storage-proxy 26.9.6): the default.
    BAI_26_09 = "26.09"
    #: Backend.AI 23.09 (storage-proxy 23.9.10): this daemon's answers before 26.09 was default.
    BAI_23_09 = "23.09"

    @property
    def is_legacy(self) -> bool:
        return self is Dialect.BAI_23_09


DEFAULT_DIALECT = Dialect.BAI_26_09
