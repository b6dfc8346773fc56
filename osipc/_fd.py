"""A raw file descriptor that is forgotten before it is closed.

Clearing the number first means a descriptor recycled by another thread after our
``close`` is never read, written or closed by us by mistake.
"""

from __future__ import annotations

import os


class FdHolder:
    """Owns one fd; ``fd`` is -1 once closed."""

    __slots__ = ("fd",)

    def __init__(self, fd: int = -1) -> None:
        self.fd = fd

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)
