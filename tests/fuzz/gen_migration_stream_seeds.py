#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of tests/fuzz/fuzz_migration_stream.c (its top
comment documents the input format: a mode byte, then the stream; keep the
two in step, and the stream in step with docs/MIGRATION.md).

    tests/fuzz/gen_migration_stream_seeds.py [OUTDIR]   (default: tests/fuzz/corpus/migration_stream)

The seeds are small valid streams (RAM records of a page or two, so that
libFuzzer's input length stays small) and a few with one field wrong, in the
mode where the fuzzer fixes the CRCs up so that the field is what fails.
"""
import os
import struct
import sys
import zlib

CONFIG, RAM, VM, VCPU, DEVICE, END = range(1, 7)
ZERO = 1
PAGE = 4096
FIX_CRC = 1


def header(version=1, flags=0):
    return b"KVMINIMS" + struct.pack("<II", version, flags)


def record(rtype, payload=b"", flags=0):
    h = struct.pack("<IIQ", rtype, flags, len(payload))
    return h + payload + struct.pack("<I", zlib.crc32(h + payload))


def ram(gpa, npages, data=None, flags=None):
    if flags is None:
        flags = ZERO if data is None else 0
    return record(RAM, struct.pack("<QII", gpa, npages, flags) + (data or b""))


def vcpu(index, state):
    return record(VCPU, struct.pack("<I", index) + state)


def device(name, instance, version, state):
    n = name.encode()
    return record(DEVICE, struct.pack("<H", len(n)) + n + struct.pack("<II", instance, version) + state)


def page(seed):
    return bytes((i * 7 + seed) & 0xFF for i in range(PAGE))


SEEDS = {
    "end-only": header() + record(END),
    "full": header()
    + record(CONFIG, b'{"mem":"64M","cpus":2}')
    + ram(0, 1, page(1))
    + ram(0x1000, 16)
    + ram(0x100000, 2, page(2) + page(3))
    + record(VM, bytes(range(64)))
    + vcpu(0, b"regs" * 8)
    + vcpu(1, b"")
    + device("serial", 0, 1, b"\x00\x01\x02\x03")
    + device("virtio-net", 1, 2, bytes(32))
    + record(END),
    "ram-zero-only": header() + ram(0, 256) + ram(0xFFFFFFFFFFFFF000, 1) + record(END),
    "device-long-name": header() + device("d" * 64, 0xFFFFFFFF, 0, b"") + record(END),
    "empty-records": header() + record(CONFIG) + record(VM) + vcpu(7, b"") + record(END),
}

# One field wrong; the fuzzer fixes the CRCs (mode bit 0).
BROKEN = {
    "fix-ram-npages": header() + ram(0, 2, page(4)) + record(END),
    "fix-ram-flags": header() + ram(0, 1, page(5), flags=2) + record(END),
    "fix-device-name": header() + device("bad\nname", 0, 0, b"x") + record(END),
    "fix-trailing": header() + record(END) + record(END),
    "fix-unknown-type": header() + record(7, b"x") + record(END),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus/migration_stream"
    os.makedirs(out, exist_ok=True)
    for name, stream in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes([0]) + stream)
    for name, stream in BROKEN.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes([FIX_CRC]) + stream)


if __name__ == "__main__":
    main()
