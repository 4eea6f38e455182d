"""Owner-only folders and files, whatever the umask.

The data directory holds password hashes, every message, the pseudonym key and the sign-in secret:
nobody but the account the app runs as may read it. A umask only takes bits away (the usual 022
leaves files 0644 and folders 0755), and an install made before this rule has looser files, so
every helper here sets the mode itself rather than trusting what creation gave.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def create_dirs(path: Path) -> None:
    """Create `path` and any missing parents, each 0700. Folders that exist are left as they are:
    a database path may sit in a shared folder (/srv, /tmp) that is not ours to change."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process made it a moment ago
            continue
        os.chmod(folder, DIR_MODE)  # mkdir's mode went through the umask


def private_dir(path: Path) -> Path:
    """`path` as a folder only its owner may enter: created (missing parents too) or tightened."""
    create_dirs(path)
    tighten(path)
    return path


def private_file(path: Path) -> Path:
    """`path` as a file only its owner may read: created empty when missing, else tightened (never truncated).

    Create a file this way before a library (SQLite, FAISS) opens it: the library then writes into a
    file that was never readable by others, and SQLite gives its -wal and -shm files the same mode.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        tighten(path)
        return path
    try:
        os.fchmod(fd, FILE_MODE)  # the umask applied to os.open's mode too
    finally:
        os.close(fd)
    return path


def tighten(path: Path) -> None:
    """Make an existing folder 0700 or file 0600; a missing path or a symbolic link is left alone."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        return
    wanted = DIR_MODE if stat.S_ISDIR(info.st_mode) else FILE_MODE
    if stat.S_IMODE(info.st_mode) != wanted:
        os.chmod(path, wanted)


def tighten_tree(root: Path) -> None:
    """Tighten `root` and everything in it (an install from before the rule). Links are not followed."""
    if not root.is_dir() or root.is_symlink():
        return
    tighten(root)
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            tighten(Path(folder) / name)
