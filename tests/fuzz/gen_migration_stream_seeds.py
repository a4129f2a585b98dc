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


def config(cpus=2, mem=64 << 20, disks=((1 << 30, 0),), nics=((b"\x52\x54\x00\x12\x34\x56", 1),),
           cpuid=None, version=2, ncpuid=None):
    """A CONFIG payload (vmm/migration/machine_state.c machine_config_put)."""
    if cpuid is None:
        cpuid = CPUID
    p = struct.pack("<IIQI", version, cpus, mem, len(disks))
    for size, ro in disks:
        p += struct.pack("<QB", size, ro)
    p += struct.pack("<I", len(nics))
    for mac, queues in nics:
        p += mac + struct.pack("<I", queues)
    p += struct.pack("<I", len(cpuid) if ncpuid is None else ncpuid)
    for e in cpuid:
        p += struct.pack("<7I", *e)
    return p


# function, index, flags, eax, ebx, ecx, edx: a small Intel guest's CPUID (vCPU 0).
CPUID = [
    (0, 0, 0, 0xD, 0x756E6547, 0x6C65746E, 0x49656E69),
    (1, 0, 0, 0x906EA, 0x00020800, 0xF7FA3203, 0x178BFBFF),
    (7, 0, 1, 0, 0x029C67AF, 0x40000010, 0xBC000400),
    (0xD, 0, 1, 0x7, 0x340, 0x340, 0),
    (0xD, 1, 1, 0xF, 0, 0, 0),
    (0x80000001, 0, 0, 0, 0, 0x121, 0x2C100800),
]


def page(seed):
    return bytes((i * 7 + seed) & 0xFF for i in range(PAGE))


SEEDS = {
    "end-only": header() + record(END),
    "full": header()
    + record(CONFIG, config())
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
    "config-bare": header() + record(CONFIG, config(disks=(), nics=(), cpuid=[])) + record(END),
    "config-many": header()
    + record(CONFIG, config(disks=[(i << 20, i & 1) for i in range(16)], cpuid=CPUID * 4))
    + record(END),
}

# One field wrong; the fuzzer fixes the CRCs (mode bit 0).
BROKEN = {
    "fix-ram-npages": header() + ram(0, 2, page(4)) + record(END),
    "fix-ram-flags": header() + ram(0, 1, page(5), flags=2) + record(END),
    "fix-device-name": header() + device("bad\nname", 0, 0, b"x") + record(END),
    "fix-trailing": header() + record(END) + record(END),
    "fix-unknown-type": header() + record(7, b"x") + record(END),
    "fix-config-cpuid-count": header() + record(CONFIG, config(ncpuid=257)) + record(END),
    "fix-config-version": header() + record(CONFIG, config(version=1)) + record(END),
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
