#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""pypeer.py - an independent multifd sender, written from docs/protocol.md
alone (no code shared with the C library), to prove that document.

It connects N channels to a receiver (`multifd recv`), sends FILE as one
region over several rounds, ends the session and waits for FIN:

  round 0: every page of FILE (zero pages as offsets only)
  round 1: some pages get new content, one data page becomes zero, one
           zero page gets data (random, so zlib sends it RAW)
  round 2: a page of round 1 changes again, another goes back to zero,
           one page is re-sent unchanged
  round 3: empty (SYNC only)
  round 4: one page, then END right after it (no SYNC before END)

--blobs DIR also sends blobs (6.5) and writes each, as the receiver must
keep it, to DIR/NAME: one of several pieces in round 0, an empty one in
round 2, one of one byte in round 4.

--final OUT writes what the receiver must end up with. --secret-file PATH
sets feature AUTH and proves the secret in PATH on every channel
(HMAC-SHA256, docs/protocol.md 4.6). Standard library only; zstd frames are built by hand (raw and RLE blocks, XXH64 checksum)
unless the `zstandard` module is installed.

Exit status: 0 after FIN on every channel, 77 when the receiver refuses
the method as not built in, 1 on any other error.
"""
import argparse
import hashlib
import hmac
import os
import socket
import struct
import sys
import zlib

VERSION = 1
MAGIC_INIT = 0x4D464449  # "MFDI"
MAGIC_ANSWER = 0x4D464441  # "MFDA"
MAGIC_PKT = 0x4D464450  # "MFDP"
MAGIC_CHAL = b"MFDC"
MAGIC_PROOF = b"MFDR"
FEAT_AUTH = 0x1
NONCE = 32
PAGES, SYNC, END, FIN, ZERO_RANGE, BLOB = 1, 2, 3, 4, 9, 10
FLAG_RAW = 0x0001
FLAG_RUNS = 0x0004
METHODS = {"none": 0, "zlib": 1, "zstd": 2}
ENOTSUP = 95
EBADMSG = 74

# Big-endian layouts of docs/protocol.md, reserved fields written as zero.
# init: magic version rsvd sid channel channels method rsvd3 page_size ppp
#       features region_count rsvd
INIT = struct.Struct(">IHHQHHB3xIIQII")
# answer: magic version msg_len status rsvd
ANSWER = struct.Struct(">IHHiI")
# header: magic type method flags packet_num round region normal zero
#         payload_len rsvd12
HDR = struct.Struct(">IBBHQIIIII12x")
# the same with RUNS: ... payload_len normal_runs zero_runs rsvd8 (checksum)
HDR_RUNS = struct.Struct(">IBBHQIIIIIHH8x")
# blob descriptor: total offset name_len rsvd6, then the name
BLOB_DESC = struct.Struct(">QQH6x")
assert INIT.size == 48 and ANSWER.size == 16 and HDR.size == 48
assert HDR_RUNS.size == 48


def runs(offsets, page_size):
    """The run entries (page index << 16 | pages - 1) of offsets, in order:
    adjacent pages share an entry, up to 65536 of them."""
    out = []
    for o in offsets:
        page = o // page_size
        if out:
            first, n = out[-1]
            if first + n == page and n < 65536:
                out[-1] = (first, n + 1)
                continue
        out.append((page, 1))
    return [first << 16 | (n - 1) for first, n in out]
assert BLOB_DESC.size == 24


class PeerError(Exception):
    def __init__(self, msg, status=1):
        super().__init__(msg)
        self.status = status


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise PeerError("receiver closed the connection (%d of %d "
                            "bytes read)" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def connect(uri, timeout):
    if uri.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        addr = uri[5:]
    elif uri.startswith("tcp:"):
        host, _, port = uri[4:].rpartition(":")
        host = host.strip("[]")  # tcp:[::1]:PORT
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        addr = (host, int(port))
    else:
        raise PeerError("unknown URI '%s' (tcp:HOST:PORT or unix:PATH)" % uri)
    s.settimeout(timeout)
    s.connect(addr)
    return s


def read_answer(sock, head=None):
    """The receiver's answer to an init: (status, message). `head`: its
    first 16 bytes when they were read already."""
    # the last field is the receiver's timeout (ms), which this sender,
    # sending no keep-alives, does not need
    magic, version, msg_len, status, _timeout = ANSWER.unpack(
        head or recv_exact(sock, ANSWER.size))
    if magic != MAGIC_ANSWER or version != VERSION:
        raise PeerError("bad answer: magic 0x%08x version %u"
                        % (magic, version))
    if status > 0 or (status == 0 and msg_len):
        raise PeerError("bad answer: status %d with a %u-byte message"
                        % (status, msg_len))
    msg = recv_exact(sock, msg_len).decode(errors="replace") if status else ""
    return status, msg


# ---- zstd without a module: one frame of raw and RLE blocks ----

M64 = (1 << 64) - 1
P1, P2, P3 = 11400714785074694791, 14029467366897019727, 1609587929392839161
P4, P5 = 9650029242287828579, 2870177450012600261


def rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def xxh64_round(acc, lane):
    return (rotl((acc + lane * P2) & M64, 31) * P1) & M64


def xxh64(data, seed=0):
    """XXH64, for the zstd content checksum (its low 32 bits)."""
    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M64, (seed + P2) & M64, seed,
             (seed - P1) & M64]
        lanes = struct.unpack_from("<%dQ" % (n // 32 * 4), data)
        for j in range(0, len(lanes), 4):
            v = [xxh64_round(v[k], lanes[j + k]) for k in range(4)]
        i = n // 32 * 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) +
             rotl(v[3], 18)) & M64
        for k in range(4):
            h = ((h ^ xxh64_round(0, v[k])) * P1 + P4) & M64
    else:
        h = (seed + P5) & M64
    h = (h + n) & M64
    while i + 8 <= n:
        (lane,) = struct.unpack_from("<Q", data, i)
        h = (rotl(h ^ xxh64_round(0, lane), 27) * P1 + P4) & M64
        i += 8
    if i + 4 <= n:
        (w,) = struct.unpack_from("<I", data, i)
        h = (rotl(h ^ (w * P1 & M64), 23) * P2 + P3) & M64
        i += 4
    while i < n:
        h = (rotl(h ^ (data[i] * P5 & M64), 11) * P1) & M64
        i += 1
    h = ((h ^ (h >> 33)) * P2) & M64
    h = ((h ^ (h >> 29)) * P3) & M64
    return h ^ (h >> 32)


def zstd_frame(data, page_size):
    """One zstd frame (RFC 8878): single segment with a 4-byte content
    size, one block per page (RLE when the page repeats one byte, raw
    otherwise), and the content checksum."""
    out = bytearray(struct.pack("<IB", 0xFD2FB528, 0xA4))  # FCS 4, single, checksum
    out += struct.pack("<I", len(data))
    for pos in range(0, len(data), page_size):
        blk = data[pos:pos + page_size]
        last = 1 if pos + page_size >= len(data) else 0
        if blk.count(blk[0]) == len(blk):
            out += struct.pack("<I", last | 1 << 1 | len(blk) << 3)[:3]
            out.append(blk[0])
        else:
            out += struct.pack("<I", last | len(blk) << 3)[:3] + blk
    out += struct.pack("<I", xxh64(data) & 0xFFFFFFFF)
    return bytes(out)


def zstd_compressor(page_size):
    try:
        import zstandard
        c = zstandard.ZstdCompressor(level=1, write_checksum=True)
        return c.compress
    except ImportError:
        return lambda data: zstd_frame(data, page_size)


# ---- the sender ----

class Sender:
    def __init__(self, args, image):
        self.a = args
        self.ps = args.page_size
        self.image = image  # what the receiver must end with
        self.method = METHODS[args.method]
        self.runs = args.runs
        self.socks = []
        self.secret = None
        if args.secret_file:
            with open(args.secret_file, "rb") as f:
                self.secret = f.read()
        self.packet_num = 0
        self.blob_num = 0
        self.blobs = {}  # name -> bytes, what the receiver must keep
        self.next_channel = 0
        self.round = 0
        self.stats = dict(packets=0, raw=0, compressed=0, normal=0, zero=0,
                          rounds=0, blobs=0)
        if args.method == "zlib":
            self.compress = lambda d: zlib.compress(d, args.level or 1)
        elif args.method == "zstd":
            self.compress = zstd_compressor(self.ps)

    def init_bytes(self, channel, sid, regions):
        b = INIT.pack(MAGIC_INIT, VERSION, 0, sid, channel, self.a.channels,
                      self.method, self.ps, self.a.pages_per_packet,
                      FEAT_AUTH if self.secret else 0,
                      len(regions) if channel == 0 else 0, 0)
        if channel == 0:  # the region table travels on channel 0 only
            for name, length in regions:
                b += struct.pack(">H", len(name)) + name
                b += struct.pack(">Q", length)
        return b

    def proof(self, role, init, ns, nr):
        return hmac.new(self.secret, role + init + ns + nr,
                        hashlib.sha256).digest()

    def authenticate(self, ch, s, init):
        """Our nonce, the receiver's challenge (or a refusal in its
        place), then our proof."""
        ns = os.urandom(NONCE)
        s.sendall(ns)
        head = recv_exact(s, ANSWER.size)
        if head[:4] == struct.pack(">I", MAGIC_ANSWER):
            status, msg = read_answer(s, head)
            raise PeerError("channel %d: receiver refused (%d): %s"
                            % (ch, status, msg))
        if head[:4] != MAGIC_CHAL:
            raise PeerError("channel %d: expected a challenge, got %r"
                            % (ch, head[:4]))
        chal = head + recv_exact(s, 8 + 2 * NONCE - ANSWER.size)
        nr, theirs = chal[8:8 + NONCE], chal[8 + NONCE:]
        if not hmac.compare_digest(theirs, self.proof(b"R", init, ns, nr)):
            raise PeerError("channel %d: the receiver does not know the "
                            "secret" % ch)
        s.sendall(MAGIC_PROOF + bytes(4) + self.proof(b"S", init, ns, nr))

    def handshake(self, name):
        sid = struct.unpack(">Q", os.urandom(8))[0]
        regions = [(name, len(self.image))]
        # every init goes out before any answer is read: the receiver
        # answers only once all channels are in (the challenge is not an
        # answer: it comes at once)
        for ch in range(self.a.channels):
            s = connect(self.a.uri, self.a.timeout)
            self.socks.append(s)
            b = self.init_bytes(ch, sid, regions)
            if self.secret:
                s.sendall(b[:INIT.size])
                self.authenticate(ch, s, b[:INIT.size])
                b = b[INIT.size:]
            s.sendall(b)
        for ch, s in enumerate(self.socks):
            status, msg = read_answer(s)
            if status:
                raise PeerError("channel %d: receiver refused (%d): %s"
                                % (ch, status, msg),
                                77 if status == -ENOTSUP else 1)

    def send_packet(self, offsets):
        """One page packet of `offsets` on the next channel (round robin)."""
        pages = [(o, self.image[o:o + self.ps]) for o in offsets]
        normal = [(o, p) for o, p in pages if p.count(0) != self.ps]
        zero = [o for o, p in pages if p.count(0) == self.ps]
        plain = b"".join(p for _, p in normal)
        flags, payload = 0, plain
        if self.method and plain:
            c = self.compress(plain)
            if len(c) < len(plain):
                payload = c
                self.stats["compressed"] += 1
            else:  # did not shrink: the pages go as they are
                flags = FLAG_RAW
                self.stats["raw"] += 1
        if self.runs:
            nr = runs([o for o, _ in normal], self.ps)
            zr = runs(zero, self.ps)
            hdr = HDR_RUNS.pack(MAGIC_PKT, PAGES, self.method,
                                flags | FLAG_RUNS, self.packet_num,
                                self.round, 0, len(normal), len(zero),
                                len(payload), len(nr), len(zr))
            offs = struct.pack(">%dQ" % (len(nr) + len(zr)), *(nr + zr))
        else:
            hdr = HDR.pack(MAGIC_PKT, PAGES, self.method, flags,
                           self.packet_num, self.round, 0, len(normal),
                           len(zero), len(payload))
            offs = struct.pack(">%dQ" % len(pages),
                               *([o for o, _ in normal] + zero))
        s = self.socks[self.next_channel]
        self.next_channel = (self.next_channel + 1) % len(self.socks)
        s.sendall(hdr + offs + payload)
        self.packet_num += 1
        self.stats["packets"] += 1
        self.stats["normal"] += len(normal)
        self.stats["zero"] += len(zero)

    def send_zero_range(self, first, count):
        """Pages first .. first + count read zero: one ZERO_RANGE (6.4)."""
        self.image[first * self.ps:(first + count) * self.ps] = \
            bytes(count * self.ps)
        hdr = HDR.pack(MAGIC_PKT, ZERO_RANGE, 0, 0, self.packet_num,
                       self.round, 0, 0, 0, 16)
        s = self.socks[self.next_channel]
        self.next_channel = (self.next_channel + 1) % len(self.socks)
        s.sendall(hdr + struct.pack(">QQ", first * self.ps, count * self.ps))
        self.packet_num += 1
        self.stats["packets"] += 1
        self.stats["zero"] += count

    def send_blob(self, name, data):
        """Blob `name` (6.5): pieces of pages_per_packet pages, each padded
        to whole pages and compressed as a page packet's payload."""
        piece = self.a.pages_per_packet * self.ps
        for off in range(0, max(len(data), 1), piece):
            part = data[off:off + piece]
            n = -(-len(part) // self.ps)
            plain = part + bytes(n * self.ps - len(part))
            flags, payload = 0, plain
            if self.method and plain:
                c = self.compress(plain)
                if len(c) < len(plain):
                    payload = c
                else:
                    flags = FLAG_RAW
            hdr = HDR.pack(MAGIC_PKT, BLOB, self.method, flags,
                           self.packet_num, self.round, self.blob_num, n, 0,
                           len(payload))
            desc = BLOB_DESC.pack(len(data), off, len(name)) + name
            s = self.socks[self.next_channel]
            self.next_channel = (self.next_channel + 1) % len(self.socks)
            s.sendall(hdr + desc + payload)
            self.packet_num += 1
        self.blob_num += 1
        self.blobs[name] = data
        self.stats["blobs"] += 1

    def send_pages(self, page_indexes):
        offs = [i * self.ps for i in sorted(page_indexes)]
        ppp = self.a.pages_per_packet
        for k in range(0, len(offs), ppp):
            self.send_packet(offs[k:k + ppp])

    def control_all(self, ptype):
        hdr = HDR.pack(MAGIC_PKT, ptype, 0, 0, 0, self.round, 0, 0, 0, 0)
        for s in self.socks:
            s.sendall(hdr)

    def sync(self):
        self.control_all(SYNC)
        self.round += 1
        self.stats["rounds"] += 1

    def finish(self):
        self.control_all(END)
        for ch, s in enumerate(self.socks):
            magic, ptype, method, flags, _num, _rnd, region, normal, zero, \
                plen = HDR.unpack(recv_exact(s, HDR.size))
            if (magic != MAGIC_PKT or ptype != FIN or method or flags or
                    region or normal or zero or plen > 1024):
                raise PeerError("channel %d: bad answer to END: magic 0x%08x"
                                " type %u" % (ch, magic, ptype))
            if plen:  # why the receiver failed the session
                raise PeerError("channel %d: the receiver failed: %s" % (
                    ch, recv_exact(s, plen).decode(errors="replace")))
        for s in self.socks:
            s.close()

    def set_page(self, i, content):
        self.image[i * self.ps:(i + 1) * self.ps] = content

    def text_page(self, rnd, i):
        line = b"pypeer round %d page %d\n" % (rnd, i)
        return (line * (self.ps // len(line) + 1))[:self.ps]

    def run(self, name):
        npages = len(self.image) // self.ps
        self.handshake(name)
        self.send_pages(range(npages))
        if self.a.blobs:  # of 2.5 pieces, text, then random
            piece = self.a.pages_per_packet * self.ps
            self.send_blob(b"state of device 0", (b"device state " * piece)
                           [:piece + piece // 4] + os.urandom(piece // 4))
        self.sync()
        # round 1: changed pages, a data page zeroed, a zero page filled
        changed = {1: self.text_page(1, 1), 3: bytes(self.ps),
                   npages - 1: os.urandom(self.ps), npages // 2: b"\x41" * self.ps}
        zero_pages = [i for i in range(npages)
                      if self.image[i * self.ps:(i + 1) * self.ps].count(0)
                      == self.ps]
        if zero_pages:
            changed[zero_pages[0]] = os.urandom(self.ps)
        for i, c in changed.items():
            self.set_page(i, c)
        self.send_pages(changed)
        self.sync()
        # round 2: page 1 again (the newest content must win), a page back
        # to zero, one re-sent unchanged
        self.set_page(1, self.text_page(2, 1))
        self.set_page(npages - 1, bytes(self.ps))
        self.send_pages([1, npages - 1, 2])
        if self.a.blobs:
            self.send_blob(b"empty", b"")
        self.sync()
        self.sync()  # round 3: empty
        # round 4: END straight after its pages, and a range of pages
        # with data (the first group) back to zero
        self.set_page(5, self.text_page(4, 5))
        self.send_pages([5])
        self.send_zero_range(0, 4)
        if self.a.blobs:
            self.send_blob(b"one", b"\x01")
        self.finish()


def stray(args):
    """A connection with a bad init (version 2): the receiver must refuse
    it with -EBADMSG and a message, and go on with the session."""
    s = connect(args.uri, args.timeout)
    s.sendall(INIT.pack(MAGIC_INIT, 2, 0, 1, 0, 1, 0, 4096, 1, 0, 1, 0))
    status, msg = read_answer(s)
    s.close()
    if status != -EBADMSG or "version" not in msg:
        raise PeerError("stray: wanted -EBADMSG naming the version, got "
                        "%d '%s'" % (status, msg))
    print("pypeer: stray refused as expected: %s" % msg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("uri")
    ap.add_argument("file")
    ap.add_argument("-c", "--channels", type=int, default=2)
    ap.add_argument("-m", "--method", choices=METHODS, default="none")
    ap.add_argument("-l", "--level", type=int, default=0)
    ap.add_argument("--page-size", type=int, default=4096)
    ap.add_argument("--pages-per-packet", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--final", help="write the expected final image here")
    ap.add_argument("--secret-file",
                    help="authenticate with the secret in this file")
    ap.add_argument("--blobs", help="send blobs too, and write them here")
    ap.add_argument("--runs", action="store_true",
                    help="name pages by runs of adjacent pages (RUNS)")
    ap.add_argument("--stray", action="store_true",
                    help="first send a bad init on a connection of its own")
    a = ap.parse_args()
    with open(a.file, "rb") as f:
        image = bytearray(f.read())
    if len(image) % a.page_size or len(image) < 8 * a.page_size:
        print("pypeer: %s must be at least 8 pages and a multiple of the "
              "page size" % a.file, file=sys.stderr)
        return 2
    try:
        if a.stray:
            stray(a)
        snd = Sender(a, image)
        snd.run(os.path.basename(a.file).encode())
    except (PeerError, OSError) as e:
        print("pypeer: %s" % e, file=sys.stderr)
        return getattr(e, "status", 1)
    if a.final:
        with open(a.final, "wb") as f:
            f.write(snd.image)
    for name, data in snd.blobs.items():
        with open(os.path.join(a.blobs, name.decode()), "wb") as f:
            f.write(data)
    st = snd.stats
    print("pypeer: %s, %d channels%s: %d packets (%d compressed, %d raw), "
          "%d normal + %d zero pages, %d rounds, %d blobs, FIN on every "
          "channel"
          % (a.method, a.channels,
             ", authenticated" if a.secret_file else "", st["packets"], st["compressed"],
             st["raw"], st["normal"], st["zero"], st["rounds"], st["blobs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
