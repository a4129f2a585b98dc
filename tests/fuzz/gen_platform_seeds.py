#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of tests/fuzz/fuzz_platform.c (its top comment
documents the input format; keep the two in step).

    tests/fuzz/gen_platform_seeds.py [OUTDIR]   (default: tests/fuzz/corpus/platform)

Each seed is what a booting guest does to one part of the platform: PCI
enumeration and BAR programming (pvpanic, written through its BAR), the
UART's set-up and output, RTC reads, the i8042's probing, ACPI sleep and
reset, the exit-status port, and a save/load in the middle of it all.
"""
import os
import struct
import sys

PIO, MMIO, CFG, RX, TICK, EVENT, SAVE = range(7)
W1, W2, W4, W3 = range(4)
WRITE = 4
WIN64 = 8
MEM32 = 0xC0000000


def pio(port, width=W1, value=None):
    sel = width | (WRITE if value is not None else 0)
    b = bytes([PIO]) + struct.pack("<HB", port, sel)
    return b + (struct.pack("<I", value & 0xFFFFFFFF) if value is not None else b"")


def mmio(off, width=W4, value=None, win64=False):
    sel = width | (WRITE if value is not None else 0) | (WIN64 if win64 else 0)
    b = bytes([MMIO]) + struct.pack("<IB", off, sel)
    return b + (struct.pack("<Q", value) if value is not None else b"")


def cfg(devfn, reg, width=W4, value=None):
    sel = width | (WRITE if value is not None else 0)
    b = bytes([CFG, devfn, reg, sel])
    return b + (struct.pack("<I", value & 0xFFFFFFFF) if value is not None else b"")


def enumerate_pci():
    s = b""
    for devfn in (0, 8, 9, 16, 0xF8):
        s += cfg(devfn, 0) + cfg(devfn, 8) + cfg(devfn, 0x0E, W1) + cfg(devfn, 0x2C)
    # pvpanic (00:01.0): size BAR 0, place it, enable memory, read and write its register.
    s += cfg(8, 0x10, W4, 0xFFFFFFFF) + cfg(8, 0x10) + cfg(8, 0x10, W4, MEM32)
    s += cfg(8, 0x04, W2, 0x2) + cfg(8, 0x34, W1) + cfg(8, 0x3C, W1, 0x0B)
    s += mmio(0, W1) + mmio(0, W1, 2) + mmio(0, W1, 1)
    return s


def serial():
    s = pio(0x3FB, W1, 0x80) + pio(0x3F8, W1, 1) + pio(0x3F9, W1, 0) + pio(0x3FB, W1, 3)
    s += pio(0x3FC, W1, 0x0B) + pio(0x3F9, W1, 0x0F) + pio(0x3FA, W1, 0xC7)
    for c in b"hello":
        s += pio(0x3F8, W1, c) + pio(0x3FD)
    s += bytes([RX, 5]) + b"world" + pio(0x3FA) + pio(0x3F8) + pio(0x3FD) + pio(0x3FE)
    s += pio(0x3FC, W1, 0x10) + pio(0x3F8, W1, 0x55) + pio(0x3F8) + pio(0x3FF, W1, 0x42) + pio(0x3FF)
    return s


def rtc():
    s = b""
    for reg in (0x0A, 0x0B, 0x0C, 0x0D, 0, 2, 4, 6, 7, 8, 9, 0x32):
        s += pio(0x70, W1, reg) + pio(0x71)
    s += pio(0x70, W1, 0x0B) + pio(0x71, W1, 0x86) + pio(0x70, W1, 0) + pio(0x71, W1, 0x59)
    s += pio(0x70, W1, 0x0B) + pio(0x71, W1, 0x16) + bytes([TICK, TICK]) + pio(0x70, W1, 0x0C) + pio(0x71)
    s += pio(0x70, W2, 0x0A) + pio(0x70, W4)
    return s


def i8042():
    s = pio(0x64) + pio(0x64, W1, 0x20) + pio(0x60) + pio(0x64, W1, 0x60) + pio(0x60, W1, 0x47)
    s += pio(0x64, W1, 0xAA) + pio(0x60) + pio(0x64, W1, 0xAB) + pio(0x60) + pio(0x60, W1, 0xFF)
    s += pio(0x60) + pio(0x60) + pio(0x64, W1, 0xD4) + pio(0x60, W1, 0xF4) + pio(0x64, W1, 0xFE)
    return s


def acpi():
    s = pio(0x600, W2) + pio(0x602, W2, 0x0100) + bytes([EVENT, 0]) + pio(0x600, W2)
    s += pio(0x600, W2, 0x0100) + pio(0x604, W2) + pio(0x604, W2, 0x2000 | (5 << 10))
    s += pio(0x608, W1, 0x06) + pio(0x501, W1, 3) + pio(0x501, W2, 7) + pio(0x501)
    return s


def save():
    return enumerate_pci() + serial()[:40] + rtc()[:30] + bytes([SAVE]) + mmio(0, W1) + pio(0x3FD) + bytes([EVENT, 1, SAVE])


SEEDS = {
    "pci_enumerate": enumerate_pci(),
    "serial": serial(),
    "rtc": rtc(),
    "i8042": i8042(),
    "acpi_exit": acpi(),
    "save_load": save(),
    "io_window": cfg(8, 0x10, W4, 0xFFFFFFFF) + cfg(0, 0x04, W2, 0x7) + pio(0x1000, W4) + pio(0xFFFF, W2, 1)
    + mmio(0xFFFFF8, 3, 1, True) + cfg(0xFF, 0xFF, W3, 1),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "platform")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
