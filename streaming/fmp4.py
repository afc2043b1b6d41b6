"""CMAF fragmented MP4 (ISO/IEC 14496-12, -15; ISO/IEC 23000-19) for LL-HLS: an init segment
and fragments (one `moof` + `mdat` per part) carrying H.264 and Opus samples as received.

Only what a live CMAF track needs is written: `ftyp`, a `moov` with one `trak` per track (an
`avc1`/`avcC` or `Opus`/`dOps` sample entry, empty sample tables) and `mvex`/`trex`; then per
part a `moof` (`mfhd`, per track `traf` with `tfhd` default-base-is-moof, a 64-bit `tfdt` and a
`trun` with each sample's duration, size and flags) and one `mdat`. H.264 samples are the
publisher's NAL units as they came, each prefixed with its 4-byte length instead of an Annex B
start code (the picture data is not touched).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

VIDEO_TIMESCALE = 90_000
AUDIO_TIMESCALE = 48_000
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_KEY_FLAGS = 0x02000000  # sample_depends_on = 2: a sync sample
_DELTA_FLAGS = 0x01010000  # depends on others, not a sync sample


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", version << 24 | flags), *payload)


# -- H.264 -------------------------------------------------------------------------------------
def nal_units(annex_b: bytes) -> list[bytes]:
    """The NAL units of an Annex B access unit (start codes of 3 or 4 bytes)."""
    units, pos = [], annex_b.find(b"\x00\x00\x01")
    while pos != -1:
        start = pos + 3
        pos = annex_b.find(b"\x00\x00\x01", start)
        end = len(annex_b) if pos == -1 else pos
        unit = annex_b[start:end]
        if pos != -1 and unit.endswith(b"\x00"):
            unit = unit[:-1]  # the leading zero of a 4-byte start code
        if unit:
            units.append(unit)
    return units


class _Bits:
    """Exp-Golomb reader over an RBSP (emulation prevention bytes already removed)."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def bit(self) -> int:
        byte = self._data[self._pos >> 3] if self._pos >> 3 < len(self._data) else 0
        self._pos += 1
        return byte >> (7 - ((self._pos - 1) & 7)) & 1

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0 and zeros < 32:
            zeros += 1
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


def sps_size(sps: bytes) -> tuple[int, int]:
    """Width and height in pixels from a sequence parameter set NAL unit (H.264 7.3.2.1.1)."""
    bits = _Bits(sps[1:].replace(b"\x00\x00\x03", b"\x00\x00"))
    profile = bits.bits(8)
    bits.bits(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma_format = 1
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma_format = bits.ue()
        if chroma_format == 3:
            bits.bit()
        bits.ue()  # bit depth luma
        bits.ue()  # bit depth chroma
        bits.bit()
        if bits.bit():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format != 3 else 12):
                if bits.bit():
                    last, following = 8, 8
                    for _ in range(16 if index < 6 else 64):
                        if following:
                            following = (last + bits.se() + 256) % 256
                        last = following or last
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.bit()
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.bit()
    width_mbs, height_units = bits.ue() + 1, bits.ue() + 1
    frame_mbs_only = bits.bit()
    if not frame_mbs_only:
        bits.bit()
    bits.bit()  # direct_8x8_inference_flag
    crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue()) if bits.bit() else (0, 0, 0, 0)
    unit_x = 1 if chroma_format in (0, 3) else 2
    unit_y = (1 if chroma_format in (0, 2, 3) else 2) * (2 - frame_mbs_only)
    width = width_mbs * 16 - unit_x * (crop[0] + crop[1])
    height = height_units * 16 * (2 - frame_mbs_only) - unit_y * (crop[2] + crop[3])
    return width, height


def avc_sample(units: list[bytes]) -> bytes:
    """An access unit as an MP4 sample: each NAL unit behind its 4-byte length (AUDs dropped)."""
    return b"".join(struct.pack(">I", len(unit)) + unit for unit in units if unit[0] & 0x1F != 9)


# -- tracks and the init segment ----------------------------------------------------------------
@dataclass(frozen=True)
class Track:
    track_id: int
    kind: str  # "video" (H.264) or "audio" (Opus)
    timescale: int
    width: int = 0
    height: int = 0
    sps: bytes = b""
    pps: bytes = b""
    channels: int = 2


def _sample_entry(track: Track) -> bytes:
    if track.kind == "video":
        sps, pps = track.sps, track.pps
        avcc = box(
            b"avcC",
            bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]),
            struct.pack(">H", len(sps)),
            sps,
            b"\x01",
            struct.pack(">H", len(pps)),
            pps,
        )
        return box(
            b"avc1",
            bytes(6),
            struct.pack(">H", 1),  # data_reference_index
            bytes(16),
            struct.pack(">HHII", track.width, track.height, 0x00480000, 0x00480000),
            bytes(4),
            struct.pack(">H", 1),  # frame_count
            bytes(32),  # compressorname
            struct.pack(">Hh", 0x18, -1),
            avcc,
        )
    dops = box(b"dOps", struct.pack(">BBHIhB", 0, track.channels, 312, AUDIO_TIMESCALE, 0, 0))
    return box(
        b"Opus",
        bytes(6),
        struct.pack(">H", 1),
        bytes(8),
        struct.pack(">HHHHI", track.channels, 16, 0, 0, AUDIO_TIMESCALE << 16),
        dops,
    )


def _trak(track: Track) -> bytes:
    video = track.kind == "video"
    tkhd = full_box(
        b"tkhd",
        0,
        3,  # enabled, in the movie
        struct.pack(">IIIII", 0, 0, track.track_id, 0, 0),
        bytes(8),
        struct.pack(">hhhh", 0, 0, 0 if video else 0x0100, 0),
        _MATRIX,
        struct.pack(">II", track.width << 16, track.height << 16),
    )
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, track.timescale, 0, 0x55C4, 0))  # und
    hdlr = full_box(b"hdlr", 0, 0, bytes(4), b"vide" if video else b"soun", bytes(12), b"livecart\x00")
    media_header = full_box(b"vmhd", 0, 1, bytes(8)) if video else full_box(b"smhd", 0, 0, bytes(4))
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), _sample_entry(track)),
        full_box(b"stts", 0, 0, bytes(4)),
        full_box(b"stsc", 0, 0, bytes(4)),
        full_box(b"stsz", 0, 0, bytes(8)),
        full_box(b"stco", 0, 0, bytes(4)),
    )
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, box(b"minf", media_header, dinf, stbl)))


def init_segment(tracks: list[Track]) -> bytes:
    ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6cmfcmp41")
    mvhd = full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIIIIH", 0, 0, 1000, 0, 0x00010000, 0x0100),
        bytes(10),
        _MATRIX,
        bytes(24),
        struct.pack(">I", max(t.track_id for t in tracks) + 1),
    )
    trex = [full_box(b"trex", 0, 0, struct.pack(">IIIII", t.track_id, 1, 0, 0, 0)) for t in tracks]
    return ftyp + box(b"moov", mvhd, *(_trak(t) for t in tracks), box(b"mvex", *trex))


# -- fragments --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Sample:
    data: bytes
    duration: int  # in the track's timescale
    keyframe: bool = True


@dataclass(frozen=True, slots=True)
class Run:
    """One track's samples in a fragment, starting at `decode_time`."""

    track: Track
    decode_time: int
    samples: list[Sample]


def fragment(sequence: int, runs: list[Run]) -> bytes:
    """`moof` + `mdat` for the runs (tracks without samples left out)."""
    runs = [run for run in runs if run.samples]
    trafs_size = sum(8 + 16 + 20 + 20 + 12 * len(run.samples) for run in runs)
    moof_size = 8 + 16 + trafs_size
    offset = moof_size + 8  # the first sample byte, counted from the moof's start
    trafs = []
    for run in runs:
        entries = b"".join(
            struct.pack(">III", s.duration, len(s.data), _KEY_FLAGS if s.keyframe else _DELTA_FLAGS)
            for s in run.samples
        )
        trun = full_box(b"trun", 0, 0x000701, struct.pack(">Ii", len(run.samples), offset), entries)
        tfhd = full_box(b"tfhd", 0, 0x020000, struct.pack(">I", run.track.track_id))
        tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", run.decode_time))
        trafs.append(box(b"traf", tfhd, tfdt, trun))
        offset += sum(len(s.data) for s in run.samples)
    moof = box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), *trafs)
    assert len(moof) == moof_size
    return moof + box(b"mdat", *(s.data for run in runs for s in run.samples))
