"""A real tree thousands of directories deep, made and removed relative to directory fds.

No full path of it is ever spelled out: at 10,000 levels it is far longer than
PATH_MAX, and ``shutil.rmtree`` (recursive) could not remove it.
"""

from __future__ import annotations

import os

LEVEL = "d"
FLAGS = os.O_RDONLY | os.O_DIRECTORY


def make_deep_tree(root: str, depth: int, bottom_file: tuple[str, bytes] | None = None) -> None:
    """``root/d/d/.../d`` (``depth`` levels), with ``bottom_file`` (name, data) in the last."""
    fd = os.open(root, FLAGS)
    try:
        for _ in range(depth):
            os.mkdir(LEVEL, dir_fd=fd)
            child = os.open(LEVEL, FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        if bottom_file is not None:
            name, data = bottom_file
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
            try:
                os.write(out, data)
            finally:
                os.close(out)
    finally:
        os.close(fd)


def remove_deep_tree(root: str) -> None:
    """Remove everything below ``root`` made by :func:`make_deep_tree` (a chain of ``d``)."""
    fd = os.open(root, FLAGS)
    depth = 0
    while LEVEL in os.listdir(fd):
        child = os.open(LEVEL, FLAGS, dir_fd=fd)
        os.close(fd)
        fd = child
        depth += 1
    try:
        for _ in range(depth):
            for name in os.listdir(fd):
                os.unlink(name, dir_fd=fd)
            parent = os.open("..", FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(LEVEL, dir_fd=fd)
    finally:
        os.close(fd)
