#!/usr/bin/env python3
"""Writes a gzip'd newc cpio initrd holding one static /init (and /dev/console, /proc, /sys),
for the lab's Secure Boot scenario: no root needed for the device node, no cpio tool.

    mkinitrd.py INIT_BINARY OUT.gz
"""
import gzip
import itertools
import sys

INODES = itertools.count(101)


def entry(name, mode, data=b"", rdev=(0, 0)):
    """One newc record: the header's 13 hex fields (inode, mode, uid, gid, links, mtime, size,
    device major/minor, rdev major/minor, name size, check), the name, the data, each padded to 4."""
    name_b = name.encode() + b"\0"
    fields = [next(INODES), mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0]
    header = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = header + name_b
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: mkinitrd.py INIT_BINARY OUT.gz")
    init = open(sys.argv[1], "rb").read()
    archive = b"".join([
        entry("dev", 0o040755),
        entry("dev/console", 0o020600, rdev=(5, 1)),
        entry("proc", 0o040555),
        entry("sys", 0o040555),
        entry("init", 0o100755, init),
        entry("TRAILER!!!", 0),
    ])
    with gzip.open(sys.argv[2], "wb", compresslevel=9) as f:
        f.write(archive)


if __name__ == "__main__":
    main()
