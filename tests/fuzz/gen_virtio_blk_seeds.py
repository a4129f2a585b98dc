#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of tests/fuzz/fuzz_virtio_blk.c (its top comment
documents the input format; keep the two in step).

    tests/fuzz/gen_virtio_blk_seeds.py [OUTDIR]   (default: tests/fuzz/corpus/virtio_blk)

Every seed is a complete driver session: the "raw" ones do the bring-up and
the requests with nothing but configuration cycles, register accesses and
guest-memory writes (as a guest's driver does), the others use the harness's
composite UP and REQ operations.
"""
import os
import struct
import sys

# Opcodes.
CFG, MMIO, MEM, MEMSET, KICK, DESC, IDESC, AVAIL, UP, REQ, IRQ, PCICFG = range(12)

# Header byte 0.
NQ = lambda n: n - 1
MSI = 0x04
IOEVENT = 0x08
IOEVENT_FAIL = 0x10
DISK_RW, DISK_RO, DISK_DIRECT = 0x00, 0x20, 0x40
FIRMWARE = 0x80

# virtio.
ACK, DRIVER, DRIVER_OK, FEATURES_OK = 1, 2, 4, 8
F_INDIRECT, F_EVENT_IDX, F_VERSION_1 = 28, 29, 32
T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WRITE_ZEROES = 0, 1, 4, 8, 11, 13
D_NEXT, D_WRITE, D_INDIRECT = 1, 2, 4

# Registers in BAR 4 and the conventional layout (see the fuzz target).
CC = dict(dfselect=0, df=4, gfselect=8, gf=12, msix=16, numq=18, status=20, qselect=22, qsize=24,
          qmsix=26, qenable=28, qnotifyoff=30, qdesc=32, qdriver=40, qdevice=48)
ISR, DEVCFG, NOTIFY = 0x1000, 0x2000, 0x3000
DESC_GPA = lambda q: 0x10000 + q * 0x4000
AVAIL_GPA = lambda q: DESC_GPA(q) + 0x1000
USED_GPA = lambda q: DESC_GPA(q) + 0x2000
BUF = lambda i: 0x40000 + i * 0x1000

# Configuration space of the function, as virtio_pci_create() lays it out.
CAP_MSIX, CAP_COMMON, CAP_NOTIFY, CAP_ISR, CAP_DEVICE, CAP_PCI = 0x40, 0x4C, 0x5C, 0x70, 0x80, 0x90
WIDTH = {1: 0, 2: 1, 4: 2, 8: 3}


class Seed:
    def __init__(self, h0, h1=0):
        self.b = bytearray([h0, h1])

    def op(self, code, *fields):
        self.b.append(code)
        for f in fields:
            self.b += f
        return self

    # Configuration space of our function.
    def cfg_read(self, reg, width=4, target=0):
        return self.op(CFG, bytes([WIDTH[width] | target << 3, reg]))

    def cfg_write(self, reg, value, width=4, target=0):
        return self.op(CFG, bytes([WIDTH[width] | 4 | target << 3, reg]), value.to_bytes(width, "little"))

    # BAR 4 (target 0) and BAR 1 (target 1) registers, at wherever the BAR is now.
    def reg_read(self, off, width, bar4=True):
        return self.op(MMIO, bytes([WIDTH[width] | (0 if bar4 else 1) << 3]), struct.pack("<H", off))

    def reg_write(self, off, value, width, bar4=True):
        return self.op(MMIO, bytes([WIDTH[width] | 4 | (0 if bar4 else 1) << 3]), struct.pack("<H", off),
                       value.to_bytes(width, "little"))

    def window_read(self, target, off, width):
        n = 2 if target == 4 else 4
        return self.op(MMIO, bytes([WIDTH[width] | target << 3]), off.to_bytes(n, "little"))

    def pcicfg_read(self, off, width):
        return self.op(PCICFG, bytes([WIDTH[width]]), struct.pack("<H", off))

    def pcicfg_write(self, off, value, width):
        return self.op(PCICFG, bytes([WIDTH[width] | 4]), struct.pack("<H", off), value.to_bytes(width, "little"))

    def mem(self, gpa, data):
        for i in range(0, len(data), 255):
            part = data[i:i + 255]
            self.op(MEM, (gpa + i).to_bytes(3, "little"), bytes([len(part)]), part)
        return self

    def memset(self, gpa, n, v):
        return self.op(MEMSET, gpa.to_bytes(3, "little"), struct.pack("<H", n), bytes([v]))

    def kick(self, q, wide=False, via_pcicfg=False):
        """q may carry bit 5: do not wait for the device to go idle."""
        return self.op(KICK, bytes([q | (0x40 if wide else 0) | (0x80 if via_pcicfg else 0)]))

    def up(self, flags, qlog):
        return self.op(UP, bytes([flags, qlog]))

    def req(self, q, type_, sector, nseg, len_b, mode=0):
        return self.op(REQ, bytes([q, type_, sector, nseg, len_b, mode]))

    def irq(self):
        return self.op(IRQ)


def desc(addr, length, flags, nxt):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def pci_probe(s):
    """What a guest's PCI scan and pci_enable_device() do: IDs, capabilities, BAR sizing."""
    s.cfg_read(0x00).cfg_read(0x08).cfg_read(0x2C).cfg_read(0x3C)
    s.cfg_read(0x00, target=1).cfg_read(0x00, target=2)  # host bridge, an empty function
    s.cfg_read(0x34, 1)
    for cap in (CAP_MSIX, CAP_COMMON, CAP_NOTIFY, CAP_ISR, CAP_DEVICE, CAP_PCI):
        s.cfg_read(cap).cfg_read(cap + 4).cfg_read(cap + 8).cfg_read(cap + 12)
    s.cfg_read(CAP_NOTIFY + 16)
    # Sizing with decoding off, as Linux does: all ones, read back, restore.
    s.cfg_write(0x04, 0, 2)
    for bar in range(6):
        reg = 0x10 + 4 * bar
        s.cfg_read(reg).cfg_write(reg, 0xFFFFFFFF).cfg_read(reg)
    # Where the host placed them: BAR 1 at the start of the 32-bit window, BAR 4 of the 64-bit one.
    s.cfg_write(0x14, 0xC0000000).cfg_write(0x20, 0).cfg_write(0x24, 1)
    s.cfg_write(0x04, 0x6, 2)  # memory decoding and bus mastering
    return s


def raw_bringup(s, features_hi=1, features_lo=0, qsize=16, msix=False, via_pcicfg=False):
    """virtio 1.2, 3.1.1, one register access at a time."""
    w = s.pcicfg_write if via_pcicfg else (lambda o, v, n: s.reg_write(o, v, n))
    r = s.pcicfg_read if via_pcicfg else (lambda o, n: s.reg_read(o, n))
    w(CC["status"], 0, 1)
    w(CC["status"], ACK, 1)
    w(CC["status"], ACK | DRIVER, 1)
    w(CC["dfselect"], 0, 4)
    r(CC["df"], 4)
    w(CC["dfselect"], 1, 4)
    r(CC["df"], 4)
    w(CC["gfselect"], 0, 4)
    w(CC["gf"], features_lo, 4)
    w(CC["gfselect"], 1, 4)
    w(CC["gf"], features_hi, 4)
    w(CC["status"], ACK | DRIVER | FEATURES_OK, 1)
    r(CC["status"], 1)
    r(CC["numq"], 2)
    if msix:
        w(CC["msix"], 0, 2)
        r(CC["msix"], 2)
    w(CC["qselect"], 0, 2)
    r(CC["qsize"], 2)
    w(CC["qsize"], qsize, 2)
    if msix:
        w(CC["qmsix"], 1, 2)
    w(CC["qdesc"], DESC_GPA(0), 4)
    w(CC["qdesc"] + 4, 0, 4)
    w(CC["qdriver"], AVAIL_GPA(0), 4)
    w(CC["qdriver"] + 4, 0, 4)
    w(CC["qdevice"], USED_GPA(0), 4)
    w(CC["qdevice"] + 4, 0, 4)
    r(CC["qnotifyoff"], 2)
    w(CC["qenable"], 1, 2)
    # Device configuration: capacity, seg_max, blk_size.
    r(DEVCFG, 4)
    r(DEVCFG + 4, 4)
    r(DEVCFG + 12, 4)
    r(DEVCFG + 20, 4)
    w(CC["status"], ACK | DRIVER | FEATURES_OK | DRIVER_OK, 1)
    return s


def raw_request(s, slot, avail_idx, type_, sector, data_len=0, data_in=False, qsize=16, fill=0x5A):
    """A three-descriptor request in descriptors slot.. of queue 0; buffers BUF(0..2)."""
    hdr, data, status = BUF(0), BUF(1), BUF(0) + 0x800
    s.mem(hdr, struct.pack("<IIQ", type_, 0, sector))
    s.mem(status, b"\xee")
    if data_len and not data_in:
        s.memset(data, data_len, fill)
    d = desc(hdr, 16, D_NEXT, (slot + 1) % qsize)
    if data_len:
        d += desc(data, data_len, D_NEXT | (D_WRITE if data_in else 0), (slot + 2) % qsize)
    d += desc(status, 1, D_WRITE, 0)
    for i in range(len(d) // 16):
        s.mem(DESC_GPA(0) + 16 * ((slot + i) % qsize), d[16 * i:16 * i + 16])
    s.mem(AVAIL_GPA(0) + 4 + 2 * (avail_idx % qsize), struct.pack("<H", slot))
    s.mem(AVAIL_GPA(0) + 2, struct.pack("<H", avail_idx + 1))
    return len(d) // 16


def raw_session(s, **kw):
    via = kw.get("via_pcicfg", False)
    slot = 0
    reqs = [(T_OUT, 2, 1024, False), (T_IN, 2, 1024, True), (T_FLUSH, 0, 0, False), (T_GET_ID, 0, 20, True),
            (T_IN, 127, 512, True), (T_OUT, 128, 512, False)]  # the last one is past the end: IOERR
    for i, (t, sec, n, din) in enumerate(reqs):
        slot += raw_request(s, slot % 16, i, t, sec, n, din)
        s.kick(0, via_pcicfg=via)
        if via:
            s.pcicfg_read(ISR, 1)
        else:
            s.irq()
            s.reg_read(ISR, 1)
    return s


def seeds():
    out = {}

    # Raw bring-up, INTx, ioeventfd kicks; then a reset.
    s = Seed(NQ(1) | IOEVENT)
    pci_probe(s)
    raw_bringup(s)
    raw_session(s)
    s.reg_write(CC["status"], 0, 1)
    out["raw_intx_rw"] = s

    # Raw bring-up with MSI-X: table in BAR 1, enable in the capability, vectors 0 and 1.
    s = Seed(NQ(1) | MSI | IOEVENT)
    pci_probe(s)
    for v in range(2):
        s.reg_write(16 * v, 0xFEE00000, 4, bar4=False).reg_write(16 * v + 4, 0, 4, bar4=False)
        s.reg_write(16 * v + 8, 0x4021 + v, 4, bar4=False).reg_write(16 * v + 12, 0, 4, bar4=False)
    s.cfg_read(CAP_MSIX + 2, 2).cfg_write(CAP_MSIX + 2, 0x8000, 2)
    raw_bringup(s, features_hi=1, features_lo=1 << F_EVENT_IDX, msix=True)
    raw_session(s)
    # Function mask: the next interrupt stays pending in the PBA until unmasked.
    s.cfg_write(CAP_MSIX + 2, 0xC000, 2)
    raw_request(s, 14, 6, T_FLUSH, 0)
    s.kick(0)
    s.reg_read(0x1000, 8, bar4=False)
    s.cfg_write(CAP_MSIX + 2, 0x8000, 2)
    s.reg_read(0x1000, 8, bar4=False).irq()
    # Mask vector 1, rewrite its address, unmask (the route is re-aimed).
    s.reg_write(16 + 12, 1, 4, bar4=False).reg_write(16, 0xFEE01000, 4, bar4=False)
    s.reg_write(16 + 12, 0, 4, bar4=False)
    out["raw_msix"] = s

    # Everything through the VIRTIO_PCI_CAP_PCI_CFG window, no ioeventfds.
    s = Seed(NQ(1) | FIRMWARE)
    s.cfg_read(CAP_PCI).cfg_read(CAP_PCI + 4).cfg_read(CAP_PCI + 8)
    raw_bringup(s, via_pcicfg=True)
    raw_session(s, via_pcicfg=True)
    s.cfg_read(CAP_PCI + 16)
    out["pcicfg_window"] = s

    # Composite operations: event_idx + indirect, all request types.
    s = Seed(NQ(1) | IOEVENT | FIRMWARE)
    s.up(0x07, 4)
    s.req(0, T_OUT, 3, 1, 0x01)
    s.req(0, T_IN, 3, 1, 0x01, mode=0x01)
    s.req(0, T_OUT, 8, 3, 0x02, mode=0x01)
    s.req(0, T_IN, 8, 3, 0x02)
    s.req(0, T_FLUSH, 0, 0, 0)
    s.req(0, T_GET_ID, 0, 1, 0x18, mode=0x04)
    s.req(0, T_DISCARD, 4, 2, 0x02)
    s.req(0, T_WRITE_ZEROES, 4, 2, 0x02, mode=0x40)
    s.req(0, 99, 0, 0, 0)
    s.irq()
    out["up_all_types"] = s

    # Four queues, MSI-X, every queue used.
    s = Seed(NQ(4) | MSI | IOEVENT | FIRMWARE)
    s.up(0x17, 8)
    for q in range(4):
        s.req(q, T_OUT, 16 * q, 2, 0x01, mode=0x01)
        s.req(q, T_IN, 16 * q, 2, 0x01)
    s.irq()
    out["up_mq_msix"] = s

    # Read-only disk, and one with cache=none (bounce buffers for odd sizes).
    s = Seed(NQ(1) | IOEVENT | FIRMWARE | DISK_RO)
    s.up(0x04, 4).req(0, T_IN, 0, 1, 0x01).req(0, T_OUT, 0, 1, 0x01).req(0, T_DISCARD, 0, 1, 1).irq()
    out["up_readonly"] = s
    s = Seed(NQ(2) | MSI | IOEVENT | FIRMWARE | DISK_DIRECT)
    s.up(0x13, 5).req(1, T_OUT, 1, 3, 0x01).req(1, T_IN, 1, 3, 0x01).req(0, T_FLUSH, 0, 0, 0)
    s.req(0, T_WRITE_ZEROES, 1, 1, 0x03, mode=0x40)
    # Guest buffers at odd addresses and of odd lengths: the cache=none backend copies through a bounce buffer.
    s.req(1, T_OUT, 20, 2, 0x02, mode=0x90).req(1, T_IN, 20, 2, 0x02, mode=0x90).irq()
    out["up_cache_none"] = s

    # BARs moved by the guest: BAR 4 (64-bit) below 4 GiB, BAR 1 elsewhere; I/O window probed.
    s = Seed(NQ(1) | IOEVENT)
    s.cfg_write(0x04, 0, 2).cfg_write(0x20, 0xC0100000).cfg_write(0x24, 0).cfg_write(0x14, 0xC0200000)
    s.cfg_write(0x04, 0x6, 2)
    s.up(0x10, 4).req(0, T_OUT, 5, 1, 0x01).req(0, T_IN, 5, 1, 0x01).irq()
    s.window_read(2, 0x100000, 4).window_read(3, 0, 4).window_read(4, 0x100, 2)
    s.cfg_write(0x24, 2)  # and above 4 GiB again
    s.req(0, T_FLUSH, 0, 0, 0).kick(0, wide=True)
    out["bar_move"] = s

    # Requests queued before DRIVER_OK are served when it is set; a failing ioeventfd.
    s = Seed(NQ(1) | IOEVENT | IOEVENT_FAIL | FIRMWARE)
    s.up(0x20, 3).req(0, T_OUT, 9, 1, 0x01, mode=0x02).req(0, T_IN, 9, 1, 0x01, mode=0x02)
    s.reg_write(CC["status"], ACK | DRIVER | FEATURES_OK | DRIVER_OK, 1)
    s.irq()
    out["before_driver_ok"] = s

    # A hostile ring (a descriptor loop) puts the device into NEEDS_RESET; a reset brings it back.
    s = Seed(NQ(1) | IOEVENT | FIRMWARE)
    s.up(0x00, 2)
    s.op(DESC, bytes([0, 0, 0]), struct.pack("<H", 16), bytes([D_NEXT, 1]))
    s.op(DESC, bytes([0, 1, 1]), struct.pack("<H", 16), bytes([D_NEXT, 0]))
    s.op(AVAIL, bytes([0, 0])).kick(0)
    s.reg_read(CC["status"], 1).irq()
    s.up(0x00, 2).req(0, T_FLUSH, 0, 0, 0)
    out["needs_reset"] = s

    # A deep queue: 40 requests behind one kick, more than the device takes at once (its workers
    # get them, and the queue thread waits for a free slot).
    s = Seed(NQ(1) | MSI | IOEVENT | FIRMWARE)
    s.up(0x13, 8)
    for i in range(40):
        s.req(0, (T_OUT, T_IN, T_FLUSH, T_WRITE_ZEROES)[i % 4], i % 120, 1, 0x02, mode=0x02 | (i & 1))
    s.kick(0).irq()
    out["deep_queue"] = s

    # A reset, then teardown, while requests are in flight (the kick does not wait).
    s = Seed(NQ(2) | IOEVENT | FIRMWARE)
    s.up(0x03, 8)
    for i in range(12):
        s.req(i & 1, T_OUT if i & 2 else T_IN, i, 2, 0x03, mode=0x02)
    s.kick(0 | 0x20).kick(1 | 0x20)
    s.reg_write(CC["status"], 0, 1)
    s.up(0x03, 8)
    for i in range(12):
        s.req(i & 1, T_OUT if i & 2 else T_IN, i, 2, 0x03, mode=0x02)
    s.kick(0 | 0x20).kick(1 | 0x20)
    out["reset_in_flight"] = s

    # Teardown while the queue is starved (60 requests, more than the device has slots for): a
    # completion then kicks the queue thread again. That kick used to be written after the queue's
    # lock was dropped, when teardown could already have freed the transport (heap-use-after-free
    # in virtio_pci_kick_fd(); it shows with a delay after that unlock).
    s = Seed(NQ(1) | IOEVENT | FIRMWARE)
    s.up(0x03, 8)
    for i in range(60):
        s.req(0, T_FLUSH, 0, 0, 0, mode=0x02)
    s.kick(0 | 0x20)
    out["teardown_starved"] = s
    return out


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "virtio_blk")
    os.makedirs(outdir, exist_ok=True)
    for name, s in sorted(seeds().items()):
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(bytes(s.b))
        print(f"{name}: {len(s.b)} bytes")


if __name__ == "__main__":
    main()
