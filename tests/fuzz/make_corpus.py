#!/usr/bin/python3
"""Writes the seed corpus for the libFuzzer targets in tests/fuzz/.

    tests/fuzz/make_corpus.py [OUTDIR]     (default: tests/fuzz/corpus)

Each seed is a small valid input in the format the target's header comment
describes; the fuzzer mutates from there. Deterministic: rerunning gives
the same files."""
import os
import struct
import sys

CRC_POLY = 0x82F63B78


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (CRC_POLY if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283

# ---- NBD handshake: u32 client flags, then (u32 opt, u32 len, data)* ----
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_INFO, OPT_GO = 1, 2, 3, 6, 7
OPT_STRUCTURED, OPT_LIST_META, OPT_SET_META, OPT_STARTTLS = 8, 9, 10, 5
INFO_EXPORT, INFO_NAME, INFO_DESC, INFO_BLOCK = 0, 1, 2, 3
FIXED, NO_ZEROES = 1, 2


def opt(o, data=b""):
    return struct.pack(">II", o, len(data)) + data


def go(name, infos=()):
    n = name.encode()
    return struct.pack(">I", len(n)) + n + struct.pack(">H", len(infos)) + \
        b"".join(struct.pack(">H", i) for i in infos)


def flags(f, n_vols=2):
    # the fuzzer takes the first byte modulo 4 as the number of volumes
    return struct.pack(">I", (n_vols << 24) | f)


handshake = {
    "go_vol0": flags(FIXED | NO_ZEROES) + opt(OPT_GO, go("vol0", [INFO_BLOCK])),
    "list_then_go": flags(FIXED) + opt(OPT_LIST) + opt(OPT_INFO, go("a", [INFO_NAME, INFO_DESC]))
    + opt(OPT_GO, go("a")),
    "structured_meta": flags(FIXED) + opt(OPT_SET_META) + opt(OPT_STRUCTURED)
    + opt(OPT_SET_META, b"\0\0\0\0") + opt(OPT_LIST_META) + opt(OPT_GO, go("vol0")),
    "export_name": flags(FIXED) + opt(OPT_EXPORT_NAME, b"vol0"),
    "export_name_nz": flags(FIXED | NO_ZEROES) + opt(OPT_EXPORT_NAME, b"a"),
    "default_name": flags(FIXED, n_vols=1) + opt(OPT_GO, go("")),
    "errors": flags(FIXED) + opt(OPT_STARTTLS) + opt(99, b"xyz") + opt(OPT_GO, go("nope"))
    + opt(OPT_STRUCTURED, b"x") + opt(OPT_ABORT),
    "not_fixed": flags(0),
}

# ---- NBD requests: u64 export size, then 28-byte requests ----
REQ_MAGIC = 0x25609513
READ, WRITE, DISC, FLUSH, TRIM, CACHE, WZ = 0, 1, 2, 3, 4, 5, 6
FUA, NO_HOLE, DF = 1, 2, 4


def req(typ, off, length, fl=0, handle=1):
    return struct.pack(">IHHQQI", REQ_MAGIC, fl, typ, handle, off, length)


GiB = 1 << 30
request = {
    "rw": struct.pack(">Q", GiB) + req(READ, 0, 4096) + req(WRITE, 4096, 4096, FUA, 2)
    + req(FLUSH, 0, 0, 0, 3) + req(DISC, 0, 0, 0, 4),
    "edges": struct.pack(">Q", GiB) + req(READ, GiB - 512, 512) + req(WRITE, GiB, 1)
    + req(TRIM, 0, GiB & 0xFFFFFFFF, FUA) + req(WZ, 8192, 4096, NO_HOLE | FUA)
    + req(READ, 0, (32 << 20) + 1) + req(READ, 0, 0),
    "overflow": struct.pack(">Q", (1 << 64) - 1) + req(READ, (1 << 64) - 100, 4096)
    + req(WRITE, (1 << 64) - 4097, 4096),
    "bad": struct.pack(">Q", 0) + req(CACHE, 0, 512) + req(FLUSH, 0, 0, FUA)
    + b"\xde\xad\xbe\xef" + req(READ, 0, 512)[4:] + req(READ, 0, 512, DF)[:20],
}

# ---- store superblock: mode byte, slot A (512), slot B (512) ----
MAGIC = 0x4154454D44425255


def superblock(seq, name=b"vol0", size=GiB, block_size=512, grain=65536):
    bits = (size + grain - 1) // grain
    bm_len = ((bits + 7) // 8 + 4095) // 4096 * 4096
    b = bytearray(512)
    struct.pack_into("<QIIQ", b, 0, MAGIC, 1, 508, seq)
    b[24:40] = bytes(range(0xA0, 0xB0))
    b[40:40 + len(name)] = name
    struct.pack_into("<QIIQ", b, 104, size, block_size, 1, 1700000000 * 10**9)
    struct.pack_into("<4Q", b, 128, 1, 2, 3, 4)
    struct.pack_into("<IIQQQQ", b, 160, 0, grain, 8192, 65536, 8192 + 65536, bm_len)
    struct.pack_into("<I", b, 508, crc32c(bytes(b[:508])))
    return bytes(b)


store = {
    "both_valid": b"\x00" + superblock(3) + superblock(2),
    "b_newer": b"\x00" + superblock(3) + superblock(4),
    "fresh": b"\x00" + superblock(1) + bytes(512),
    "torn_b": b"\x00" + superblock(5) + superblock(6)[:300] + bytes(212),
    "fix_crc": b"\x03" + superblock(7, name=b"Bad") + superblock(8, size=4097),
    "short": b"\x00" + superblock(1)[:100],
}


def write(outdir, target, seeds):
    d = os.path.join(outdir, target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus")
    write(outdir, "fuzz_nbd_handshake", handshake)
    write(outdir, "fuzz_nbd_request", request)
    write(outdir, "fuzz_store_meta", store)


if __name__ == "__main__":
    main()
