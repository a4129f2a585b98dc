#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of tests/fuzz/fuzz_migration_stream.c (its top
comment documents the input format: a mode byte, then the stream; keep the
two in step, and the stream in step with docs/MIGRATION.md).

    tests/fuzz/gen_migration_stream_seeds.py [OUTDIR]   (default: tests/fuzz/corpus/migration_stream)

The seeds are small valid streams (RAM records of a page or two, so that
libFuzzer's input length stays small) and a few with one field wrong, in the
mode where the fuzzer fixes the checks up so that the field is what fails.
"""
import os
import struct
import sys

CONFIG, RAM, VM, VCPU, DEVICE, END = range(1, 7)
ZERO = 1
PAGE = 4096
FIX_CHECKS = 1
RAM_HDR = 16

M64 = (1 << 64) - 1
P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                      0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def _round(acc, lane):
    return (_rotl((acc + lane * P2) & M64, 31) * P1) & M64


def xxh64(data, seed=0):
    """XXH64 (the xxHash specification), as libxxhash computes it."""
    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M64, (seed + P2) & M64, seed, (seed - P1) & M64]
        while i + 32 <= n:
            for j in range(4):
                v[j] = _round(v[j], struct.unpack_from("<Q", data, i + 8 * j)[0])
            i += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & M64
        for x in v:
            h = (((h ^ _round(0, x)) * P1) + P4) & M64
    else:
        h = (seed + P5) & M64
    h = (h + n) & M64
    while i + 8 <= n:
        h = ((_rotl(h ^ _round(0, struct.unpack_from("<Q", data, i)[0]), 27) * P1) + P4) & M64
        i += 8
    if i + 4 <= n:
        h = ((_rotl(h ^ ((struct.unpack_from("<I", data, i)[0] * P1) & M64), 23) * P2) + P3) & M64
        i += 4
    while i < n:
        h = (_rotl(h ^ ((data[i] * P5) & M64), 11) * P1) & M64
        i += 1
    h = ((h ^ (h >> 33)) * P2) & M64
    h = ((h ^ (h >> 29)) * P3) & M64
    return h ^ (h >> 32)


def header(version=2, flags=0):
    return b"KVMINIMS" + struct.pack("<II", version, flags)


def record(rtype, payload=b"", flags=0, covered=None):
    """check = XXH64(payload, seed XXH64(record header)); a RAM record's covers its head."""
    h = struct.pack("<IIQ", rtype, flags, len(payload))
    c = payload if covered is None else payload[:covered]
    return h + payload + struct.pack("<Q", xxh64(c, xxh64(h)))


def ram(gpa, npages, data=None, flags=None, spoil=0):
    """RAM header, each page's XXH64 (those in the bit mask spoil off by one), the pages."""
    if flags is None:
        flags = ZERO if data is None else 0
    head = struct.pack("<QII", gpa, npages, flags)
    if data and not flags & ZERO:
        for i in range(len(data) // PAGE):
            head += struct.pack("<Q", (xxh64(data[i * PAGE:(i + 1) * PAGE]) + (spoil >> i & 1)) & M64)
    return record(RAM, head + (data or b""), covered=len(head))


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
    "ram-torn": header() + ram(0x2000, 2, page(6) + page(7), spoil=2) + ram(0x3000, 1, page(7)) + record(END),
    "config-many": header()
    + record(CONFIG, config(disks=[(i << 20, i & 1) for i in range(16)], cpuid=CPUID * 4))
    + record(END),
}

# One field wrong; the fuzzer fixes the checks (mode bit 0).
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
            f.write(bytes([FIX_CHECKS]) + stream)


if __name__ == "__main__":
    main()
