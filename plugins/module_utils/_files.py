# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Write a small text file atomically with a fixed mode, reporting whether anything changed."""

from __future__ import annotations

import os
import stat
import tempfile


class FileError(Exception):
    """The destination cannot be read or written; the message names the path and the fix."""


def read_state(path):
    """(content or None, mode or None) of a regular file; None, None when it does not exist."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise FileError(f"dest {path}: cannot inspect it ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise FileError(f"dest {path} exists and is not a regular file (a directory or a link);"
                        f" choose another path")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read(), stat.S_IMODE(st.st_mode)
    except (OSError, UnicodeDecodeError) as exc:
        raise FileError(f"dest {path}: cannot read it ({exc})") from None


def write_atomic(path, content, mode):
    """Write to a temporary file in the same directory, fsync, then rename over `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileError(f"dest {path}: the directory {directory} does not exist; create it first")
    fd, tmp = None, None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".coder-values.", dir=directory)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fd = None
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise FileError(f"dest {path}: cannot write it ({exc.strerror})") from None
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def ensure_file(path, content, mode, check_mode):
    """Make `path` hold `content` with `mode`. Returns (changed, before_content, before_mode)."""
    before, before_mode = read_state(path)
    changed = before != content or before_mode != mode
    if changed and not check_mode:
        if before == content:
            try:
                os.chmod(path, mode)
            except OSError as exc:
                raise FileError(f"dest {path}: cannot set its mode ({exc.strerror})") from None
        else:
            write_atomic(path, content, mode)
    return changed, before, before_mode
