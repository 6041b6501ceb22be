"""User-supplied relative paths, parsed once into a validated type.

``RelPath.parse`` rejects what is malformed on its face (absolute paths, ``..``, NUL bytes, lone
surrogates, over-long paths).  Where the path then leads on disk is decided on held directory
descriptors by :mod:`storage_proxy.volumes.beneath`, never by resolving the string here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidPath

MAX_RELPATH_LENGTH = 4096
MAX_NAME_LENGTH = 255  # bytes of one component (NAME_MAX on every POSIX filesystem)


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
                if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_LENGTH:
                    raise InvalidPath(f"a name is longer than {MAX_NAME_LENGTH} bytes: {part!r}")
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
