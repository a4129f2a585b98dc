#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of tests/fuzz/fuzz_virtio_net.c (its top comment
documents the input format; keep the two in step).

    tests/fuzz/gen_virtio_net_seeds.py [OUTDIR]   (default: tests/fuzz/corpus/virtio_net)

Each seed is a short session of a driver and a network: buffers posted,
frames sent both ways, control commands, resets, a tap that fills up or
goes away, and a few hand-made broken rings.
"""
import os
import struct
import sys

# Opcodes.
MEM, DESC, AVAIL, FRAME, RX, TX, CTRL, RESET, RXBUFS, TXPKT, CTRLCMD, LINK = range(12)

# Header byte 0: the mode.
MRG, GUEST_CSUM, HOST_CSUM, HOST_TSO4, HOST_TSO6, HOST_ECN, HOST_UFO, NEED_GSO = (1 << i for i in range(8))
HOST_ALL = HOST_CSUM | HOST_TSO4 | HOST_TSO6 | HOST_ECN | HOST_UFO
# Header byte 2.
EVENT_IDX, INDIRECT, INACTIVE, NOT_PROMISC = 0x10, 0x20, 0x40, 0x80
# Header byte 3.
F_CTRL_RX, F_MAC_ADDR, F_ANNOUNCE, F_MQ, F_OFFLOADS, OPS_FAIL, SMALL_SNDBUF, MANY_PAIRS = (1 << i for i in range(8))
F_ALL = F_CTRL_RX | F_MAC_ADDR | F_ANNOUNCE | F_MQ | F_OFFLOADS

# virtio-net.
F_NEEDS_CSUM, F_DATA_VALID = 1, 2
GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_ECN = 0, 1, 3, 4, 0x80
D_NEXT, D_WRITE, D_INDIRECT = 1, 2, 4
OWN_MAC = bytes([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
HDR = 12
BUF = lambda i: 0x30000 + i * 0x800


class Seed:
    def __init__(self, mode=0, rxlog=8, txlog=8, ctrllog=4, flags2=0, flags3=F_ALL):
        self.b = bytearray([mode, rxlog | txlog << 4, ctrllog | flags2, flags3])

    def op(self, code, *fields):
        self.b.append(code)
        for f in fields:
            self.b += f
        return self

    def mem(self, off, data):
        assert len(data) < 256
        return self.op(MEM, struct.pack('<I', off)[:3], bytes([len(data)]), data)

    def desc(self, q, i, a, length, flags, nxt=0):
        return self.op(DESC, struct.pack('<BHBHBH', q, i, a, length, flags, nxt))

    def avail(self, q, head):
        return self.op(AVAIL, bytes([q]), struct.pack('<H', head))

    def frame(self, length, dst='own', data=b''):
        sel = {'own': 2, 'bcast': 4, 'multi': 8, 'raw': 0}[dst]
        if length >= 0x10000:
            sel |= 1
        return self.op(FRAME, struct.pack('<HBB', length & 0xffff, sel, len(data)), data)

    def rx(self, kick=True):
        return self.op(RX, bytes([1 if kick else 0]))

    def tx(self, drain=True):
        return self.op(TX, bytes([1 if drain else 0]))

    def ctrl(self):
        return self.op(CTRL)

    def reset(self, mode):
        return self.op(RESET, bytes([mode]))

    def rxbufs(self, n, length, nseg=1):
        sel = 0x80 | (nseg - 29) if nseg > 4 else nseg - 1
        return self.op(RXBUFS, bytes([n]), struct.pack('<H', length), bytes([sel]))

    def txpkt(self, length, nseg=1, flags=0, gso=0, hdr_len=0, gso_size=0, csum_start=0, csum_offset=0,
              dst=1):
        sel = (0x40 | (nseg - 125) if nseg > 8 else nseg - 1) | (0x80 if length >= 0x10000 else 0)
        return self.op(TXPKT, bytes([sel]), struct.pack('<HBBBHHHB', length & 0xffff, flags, gso, hdr_len, gso_size,
                                                              csum_start, csum_offset, dst))

    def ctrlcmd(self, cls, cmd, data=b'', nseg=1, ack=True):
        sel = (nseg - 1) | (0 if ack else 8)
        return self.op(CTRLCMD, struct.pack('<BBH', cls, cmd, len(data)), data, bytes([sel]))

    def link(self, toggle_active=False, drain=False, close=False):
        return self.op(LINK, bytes([toggle_active | drain << 1 | close << 2]))


def mac_table(macs):
    return struct.pack('<I', len(macs)) + b''.join(macs)


def seeds():
    s = {}

    s['tx_basic'] = Seed().txpkt(60, nseg=3).txpkt(1500).txpkt(14).tx()

    gso = dict(flags=F_NEEDS_CSUM, hdr_len=54, gso_size=1448, csum_start=34, csum_offset=16)
    s['tx_offloads'] = (Seed(mode=HOST_ALL)
                        .txpkt(3000, nseg=4, gso=GSO_TCPV4, **gso)
                        .txpkt(3000, nseg=2, gso=GSO_TCPV6 | GSO_ECN, **gso)
                        .txpkt(3000, gso=GSO_UDP, **gso)
                        .txpkt(100, flags=F_NEEDS_CSUM, csum_start=34, csum_offset=16)
                        .tx())
    s['tx_bad'] = (Seed(mode=HOST_CSUM)
                   .txpkt(60, flags=F_DATA_VALID)
                   .txpkt(60, flags=F_NEEDS_CSUM, csum_start=50, csum_offset=9)
                   .txpkt(3000, gso=GSO_TCPV4, **gso)
                   .txpkt(3000, gso=GSO_TCPV4, flags=F_NEEDS_CSUM, hdr_len=54, gso_size=0)
                   .txpkt(13)
                   .txpkt(65551, nseg=8)
                   .txpkt(65550, nseg=8)
                   .tx())
    s['tx_backpressure'] = Seed(flags3=F_ALL | SMALL_SNDBUF)
    for _ in range(24):
        s['tx_backpressure'].txpkt(1000, nseg=2)
    s['tx_backpressure'].tx(drain=False).tx(drain=False).link(drain=True).tx().tx()
    s['tx_batch'] = Seed()
    for i in range(70):
        s['tx_batch'].txpkt(60 + i)
    s['tx_batch'].tx().tx()
    s['tx_segments'] = Seed(txlog=10).txpkt(1000, nseg=128).txpkt(1000, nseg=129).txpkt(60).tx()
    s['tx_blocked_gone'] = Seed(flags3=F_ALL | SMALL_SNDBUF)
    for _ in range(8):
        s['tx_blocked_gone'].txpkt(2000)
    s['tx_blocked_gone'].tx(drain=False).link(close=True).tx().tx()
    s['tx_inactive'] = Seed(flags2=INACTIVE).txpkt(60).tx().link(toggle_active=True).txpkt(60).tx()

    s['rx_basic'] = (Seed(mode=0)
                     .rxbufs(4, 1526)
                     .frame(HDR + 60, data=bytes([F_DATA_VALID]))
                     .frame(HDR + 1514, dst='bcast')
                     .rx()
                     .frame(HDR + 1515)
                     .frame(HDR + 10)
                     .rx())
    s['rx_guest_csum'] = Seed(mode=GUEST_CSUM).rxbufs(2, 1526, nseg=3).frame(HDR + 100, data=bytes([2])).rx()
    s['rx_mergeable'] = (Seed(mode=MRG | NEED_GSO | GUEST_CSUM)
                         .rxbufs(64, 1526)
                         .frame(HDR + 4000)
                         .frame(HDR + 100)
                         .frame(HDR + 65550)
                         .rx()
                         .rxbufs(40, 1526)
                         .frame(HDR + 65551)
                         .frame(HDR + 300)
                         .rx())
    s['rx_mergeable_small_ring'] = (Seed(mode=MRG | NEED_GSO, rxlog=4)
                                    .rxbufs(16, 1526, nseg=2)
                                    .frame(HDR + 20000)
                                    .frame(HDR + 5000)
                                    .frame(HDR + 100)
                                    .rx()
                                    .rxbufs(8, 4096)
                                    .rx())
    s['rx_mergeable_pending_limit'] = (Seed(mode=MRG | NEED_GSO)
                                       .rxbufs(64, 512, nseg=4)
                                       .rxbufs(36, 512)
                                       .rx()
                                       .frame(HDR + 30000)
                                       .frame(HDR + 0x11000)
                                       .rx())
    s['rx_starved'] = (Seed(mode=MRG)
                       .frame(HDR + 60)
                       .rx()
                       .rx(kick=False)
                       .rxbufs(1, 1526)
                       .rx(kick=False)
                       .rx()
                       .frame(HDR + 60)
                       .rx())
    s['rx_segments'] = (Seed(mode=MRG | NEED_GSO, rxlog=10)
                        .rxbufs(2, 1000, nseg=32)
                        .rxbufs(1, 1000, nseg=33)
                        .rxbufs(22, 3000, nseg=32)
                        .frame(HDR + 65550)
                        .frame(HDR + 100)
                        .rx())
    # One chain of 32 segments posted 64 times: more segments ahead than one readv() takes.
    s['rx_iov_max'] = Seed(mode=MRG | NEED_GSO).rxbufs(1, 1000, nseg=32)
    for _ in range(63):
        s['rx_iov_max'].avail(0, 0)
    s['rx_iov_max'].frame(HDR + 40000).frame(HDR + 20000).rx()
    s['rx_batch'] = Seed().rxbufs(64, 1526).rxbufs(10, 1526)
    for i in range(70):
        s['rx_batch'].frame(HDR + 60 + i)
    s['rx_batch'].rx().rx()
    s['rx_filter'] = (Seed(flags2=NOT_PROMISC)
                      .rxbufs(8, 1526)
                      .frame(HDR + 60, dst='raw', data=bytes(HDR) + bytes([0x02, 0, 0, 0, 0, 9]))
                      .frame(HDR + 60, dst='multi')
                      .frame(HDR + 60, dst='own')
                      .rx()
                      .ctrlcmd(0, 1, b'\x01')
                      .ctrl()
                      .frame(HDR + 60, dst='multi')
                      .rx()
                      .ctrlcmd(1, 0, mac_table([bytes([0x02, 0, 0, 0, 0, 9])]) + mac_table([]), nseg=2)
                      .ctrl()
                      .frame(HDR + 60, dst='raw', data=bytes(HDR) + bytes([0x02, 0, 0, 0, 0, 9]))
                      .rx())

    s['ctrl_all'] = (Seed(flags3=F_ALL | MANY_PAIRS)
                     .ctrlcmd(0, 0, b'\x01')
                     .ctrlcmd(0, 1, b'\x00')
                     .ctrlcmd(1, 0, mac_table([bytes([2, 0, 0, 0, 0, 1]), bytes([2, 0, 0, 0, 0, 2])]) +
                              mac_table([bytes([1, 0, 0x5e, 0, 0, 1])]), nseg=3)
                     .ctrlcmd(1, 0, mac_table([bytes([2, 0, 0, 0, 0, i]) for i in range(65)]) + mac_table([]))
                     .ctrlcmd(1, 0, mac_table([bytes([2, 0, 0, 0, 0, i]) for i in range(65)])[:250])
                     .ctrlcmd(1, 1, bytes([2, 1, 2, 3, 4, 5]))
                     .ctrlcmd(1, 1, bytes([3, 1, 2, 3, 4, 5]))
                     .ctrlcmd(3, 0)
                     .ctrlcmd(4, 0, struct.pack('<H', 4))
                     .ctrlcmd(4, 0, struct.pack('<H', 17))
                     .ctrlcmd(5, 0, struct.pack('<Q', (1 << 1) | (1 << 7)))
                     .ctrlcmd(5, 0, struct.pack('<Q', 1 << 7))
                     .ctrlcmd(9, 9)
                     .ctrl())
    s['ctrl_no_features'] = (Seed(flags3=OPS_FAIL)
                             .ctrlcmd(0, 0, b'\x01')
                             .ctrlcmd(4, 0, struct.pack('<H', 1))
                             .ctrlcmd(5, 0, struct.pack('<Q', 0))
                             .ctrlcmd(0, 0, b'\x01', ack=False)
                             .ctrl())

    s['reset'] = (Seed(mode=MRG | NEED_GSO)
                  .rxbufs(50, 1526)
                  .frame(HDR + 3000)
                  .rx()
                  .txpkt(60)
                  .reset(0)
                  .rxbufs(2, 1526)
                  .frame(HDR + 60)
                  .rx()
                  .tx())
    s['gone'] = Seed().rxbufs(2, 1526).frame(HDR + 60).link(close=True).rx().txpkt(60).tx()
    s['event_idx'] = (Seed(mode=MRG, flags2=EVENT_IDX)
                      .rxbufs(3, 1526)
                      .frame(HDR + 2000)
                      .frame(HDR + 2000)
                      .rx()
                      .rxbufs(3, 1526)
                      .rx()
                      .txpkt(60)
                      .tx())
    # Hand-made rings: an indirect receive chain, a read-only receive buffer, a transmit loop.
    s['raw_rings'] = (Seed(flags2=INDIRECT)
                      .mem(BUF(100), struct.pack('<QIHH', BUF(101), 8, D_WRITE | D_NEXT, 1) +
                           struct.pack('<QIHH', BUF(102), 1600, D_WRITE, 0))
                      .desc(0, 0, 100, 32, D_INDIRECT)
                      .avail(0, 0)
                      .frame(HDR + 200)
                      .rx()
                      .desc(0, 1, 3, 1526, 0)
                      .avail(0, 1)
                      .frame(HDR + 200)
                      .rx()
                      .desc(1, 0, 5, 72, D_NEXT, 0)
                      .avail(1, 0)
                      .tx()
                      .reset(0)
                      .desc(1, 3, 5, 72, 0)
                      .avail(1, 3)
                      .avail(1, 999)
                      .tx())
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), 'corpus', 'virtio_net')
    os.makedirs(out, exist_ok=True)
    for name, seed in seeds().items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(seed.b)


if __name__ == '__main__':
    main()
