"""User-supplied relative paths, parsed once and resolved so they never leave their vfolder.

``RelPath.parse`` rejects what is malformed on its face (absolute paths, ``..``, NUL bytes);
``resolve_inside`` follows symlinks on disk and rejects anything that lands outside the root.
Resolution touches the filesystem, so callers run it off the event loop (the volume base does).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidPath

MAX_RELPATH_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class RelPath:
    """A normalised path relative to a vfolder root; ``parts == ()`` is the root itself."""

    parts: tuple[str, ...]

    def __post_init__(self) -> None:
        # Also guards RelPaths built directly (plugins, services), not only parsed ones.
        for part in self.parts:
            if part in ("", ".", "..") or "/" in part or "\x00" in part:
                raise InvalidPath(f"invalid path component: {part!r}")

    @classmethod
    def parse(cls, raw: object, *, allow_root: bool = True) -> RelPath:
        if isinstance(raw, RelPath):
            rel = raw
        else:
            if not isinstance(raw, str):
                raise InvalidPath(f"a relative path must be a string, not {type(raw).__name__}")
            if "\x00" in raw:
                raise InvalidPath("a relative path must not contain NUL bytes")
            try:
                encoded = raw.encode("utf-8", "surrogateescape")  # as os.fsencode would
            except UnicodeEncodeError:
                raise InvalidPath("a relative path must be valid UTF-8 text") from None
            if len(encoded) > MAX_RELPATH_LENGTH:
                raise InvalidPath("relative path is too long")
            if raw.startswith("/"):
                raise InvalidPath(f"absolute paths are not allowed: {raw!r}")
            parts = []
            for part in raw.split("/"):
                if part in ("", "."):
                    continue
                if part == "..":
                    raise InvalidPath(f"'..' is not allowed in a relative path: {raw!r}")
                parts.append(part)
            rel = cls(tuple(parts))
        if not allow_root and not rel.parts:
            raise InvalidPath("this operation needs a path below the vfolder root")
        return rel

    @property
    def name(self) -> str:
        return self.parts[-1] if self.parts else ""

    @property
    def parent(self) -> RelPath:
        return RelPath(self.parts[:-1])

    def with_name(self, name: str) -> RelPath:
        if not self.parts:
            raise InvalidPath("the vfolder root cannot be renamed")
        new = RelPath.parse(name, allow_root=False)
        if len(new.parts) != 1:
            raise InvalidPath(f"a new name must not contain '/': {name!r}")
        return RelPath(self.parts[:-1] + new.parts)

    def __str__(self) -> str:
        return "/".join(self.parts) if self.parts else "."


def _walk_without_links(root: str, rel: RelPath, follow_final: bool) -> str | None:
    """The common case in one ``lstat`` per component: no component is a symlink, so the joined
    path is already the resolved one (``RelPath`` has no ``..``).  None: a link was met and the
    caller resolves the slow, thorough way."""
    path = root
    last = len(rel.parts) - 1
    for i, part in enumerate(rel.parts):
        path = f"{path}/{part}"
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return "/".join((path, *rel.parts[i + 1 :]))  # nothing below can be a link yet
        except OSError:
            return None
        if stat.S_ISLNK(mode) and (i < last or follow_final):
            return None
    return path


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def resolve_inside(root: Path, rel: RelPath, *, follow_final: bool = True) -> Path:
    """Map ``rel`` to an absolute path under ``root`` with every symlink checked.

    With ``follow_final=False`` the last component is kept as it is (so a symlink itself can be
    renamed or deleted) while every directory above it is still resolved and checked.
    Blocking (``lstat``/``realpath``): call it from a worker thread.
    """
    if not rel.parts:
        return Path(os.path.realpath(root))
    fast = _walk_without_links(str(root), rel, follow_final)
    if fast is not None:
        return Path(fast)
    real_root = os.path.realpath(root)
    if follow_final:
        resolved = os.path.realpath(os.path.join(real_root, *rel.parts))
    else:
        parent = os.path.realpath(os.path.join(real_root, *rel.parts[:-1]))
        resolved = os.path.join(parent, rel.parts[-1])
        if not _is_within(parent, real_root):
            raise InvalidPath(f"path escapes its vfolder: {rel}")
    if not _is_within(resolved, real_root):
        raise InvalidPath(f"path escapes its vfolder: {rel}")
    return Path(resolved)
