#!/usr/bin/env python3
"""Writes a smaller copy of the ICU data Swift's Foundation links in (icudt76_dat, 34 MB of
the 85 MB binary), for scripts/package.sh.

bootpolicy formats no dates, numbers or names for people in other languages; it needs ICU only
for what Foundation does underneath (time zones, the root and English locales, normalisation,
Unicode properties). This keeps every item that is not tied to one language, plus the root,
English and POSIX locales of every tree, and drops: the other languages' locale data, the
word and line breakers (Swift's String finds its own grapheme boundaries), collation
(bootpolicy sorts by code point, never `localizedCompare`), the names of languages,
regions and units, spelled-out numbers, Unicode character names, confusables and
StringPrep profiles, the transliterators and the legacy character-set converters (UTF-8/16/32, ASCII and Latin-1 are
Foundation's own). A lookup of a dropped locale falls back to root, as ICU does for any locale
it does not know.

The input is ICU's common-data package (a MappedData header, then a table of contents of
(name offset, data offset) pairs sorted by name, then the names, then the items, each 16-byte
aligned); the output has the same layout with fewer items.

    packaging/icu-trim.py IN.dat OUT.dat
"""
import re
import struct
import sys

LOCALE = re.compile(r"^[a-z]{2,3}(_[A-Za-z0-9]*)*$")
KEEP_LOCALES = {"root", "en", "en_US", "en_US_POSIX", "en_001"}


def keep(name):
    parts = name.split("/")[1:]  # drop the "icudt76l" package prefix
    leaf = parts[-1]
    base, _, ext = leaf.rpartition(".")
    # Not "curr": the number formatter under ISO8601DateFormatter loads the root currency
    # data, and without it CFDateFormatterSetFormat crashes (found by the package smoke test).
    if parts[0] in ("translit", "brkitr", "coll", "lang", "region", "unit", "rbnf"):
        return False
    if leaf in ("unames.icu", "langInfo.res", "confusables.cfu") or ext == "spp":
        return False
    if ext == "cnv":
        return False
    if ext == "dict":
        return False
    if ext == "res" and LOCALE.match(base) and base not in KEEP_LOCALES:
        return False
    return True


def main(src, dst):
    data = open(src, "rb").read()
    header_size, magic1, magic2 = struct.unpack_from("<HBB", data, 0)
    if (magic1, magic2) != (0xDA, 0x27) or data[12:16] != b"CmnD" or header_size % 16:
        sys.exit(f"{src}: not an ICU common-data package")
    toc = data[header_size:]
    count = struct.unpack_from("<I", toc, 0)[0]
    entries = [struct.unpack_from("<II", toc, 4 + 8 * i) for i in range(count)]
    items = []
    for i, (name_off, data_off) in enumerate(entries):
        name = toc[name_off:toc.index(b"\0", name_off)]
        end = entries[i + 1][1] if i + 1 < count else len(toc)
        items.append((name, toc[data_off:end]))
    kept = [(n, d) for n, d in items if keep(n.decode())]

    table = 4 + 8 * len(kept)
    names = b"".join(n + b"\0" for n, _ in kept)
    name_offsets, off = [], table
    for n, _ in kept:
        name_offsets.append(off)
        off += len(n) + 1
    body, data_offsets = bytearray(), []
    start = (table + len(names) + 15) // 16 * 16
    for _, d in kept:
        data_offsets.append(start + len(body))
        body += d
        body += b"\0" * (-len(body) % 16)
    out = bytearray(data[:header_size])
    out += struct.pack("<I", len(kept))
    for no, do in zip(name_offsets, data_offsets):
        out += struct.pack("<II", no, do)
    out += names
    out += b"\0" * (start - table - len(names))
    out += body
    open(dst, "wb").write(out)
    print(f"icu-trim: {len(kept)} of {count} items, {len(data) / 1e6:.1f} MB -> {len(out) / 1e6:.1f} MB")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
