"""LL-HLS of a VP8 stream, with `hls_transcode_vp8` on: a real aiortc publisher sends VP8 + Opus,
the node decodes the video once and encodes it to H.264 off the event loop, and what a player
reads back (libavformat through PyAV) is H.264 at the published size whose pictures move as the
publisher's did. With the setting off (the default) the playlist answers 409 hls_needs_h264:
tests/test_hls.py shows that side. The transcoder's bounded queue is driven with real libvpx
frames: behind, it drops until a VP8 keyframe and its decoder never sees a broken chain."""

from __future__ import annotations

import itertools
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.video.frame import PictureType

from config.settings import ConfigError, Settings, load_settings
from streaming import fmp4, hls, transcode
from streaming.app import SHOW
from tests import webrtc_peers as rtc
from tests.conftest import Api, MakeClient
from tests.test_hls import get, playlist_with, relay_app, tags
from tests.test_streaming import _show, publish

FRAME_TICKS = rtc.VIDEO_CLOCK // rtc.FPS


@pytest.fixture
async def transcoding_api(aiohttp_client: MakeClient, tmp_path: Path) -> Api:
    return await relay_app(aiohttp_client, tmp_path, hls_transcode_vp8=True)


def _threads(stream_id: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == f"hls-transcode-{stream_id}"]


def _moves(positions: list[int]) -> list[int]:
    """How far the bar went between pictures, in the publisher's steps (its path wraps)."""
    track = rtc.WIDTH - rtc.BAR
    return [round(((b - a) % track) / 4) for a, b in itertools.pairwise(positions)]


async def test_a_vp8_stream_plays_as_ll_hls_in_h264_when_the_node_transcodes(
    transcoding_api: Api, tmp_path: Path
) -> None:
    api = transcoding_api
    host, stream = await _show(api)
    base = f"/api/streams/{stream['id']}/hls"
    pub, _ = await publish(api, host, stream, video_codec="video/VP8")
    node = api.client.app[SHOW].relay.hls
    try:
        feed = api.client.app[SHOW].relay.relays[stream["id"]].feeds["video"]
        assert feed.codec.name == "VP8"  # WebRTC viewers still get the publisher's own frames
        assert node.serves(stream["id"]) and node.transcoded(stream["id"])
        assert _threads(stream["id"])
        text = await playlist_with(api, base, 2, timeout=40.0)
        found = tags(text)
        assert found["#EXT-X-MAP"] == ['URI="init.mp4"']
        durations = [float(v.rstrip(",")) for v in found["#EXTINF"]]
        target = int(found["#EXT-X-TARGETDURATION"][0])
        assert all(0 < d <= target for d in durations), (durations, target)
        if not node.transcoders[stream["id"]].dropped:  # (a loaded machine may skip frames)
            # the encoder makes its IDRs where the segmenter asks: every segment fits its target
            assert target == hls.SEGMENT_TARGET_S and max(durations) <= target, durations

        init, _ = await get(api, f"{base}/init.mp4")
        first = text.split("seg", 1)[1].split(".m4s", 1)[0]
        segment, _ = await get(api, f"{base}/seg{first}.m4s")
        clip = tmp_path / "transcoded.mp4"
        clip.write_bytes(init + segment)
        with av.open(str(clip)) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            assert (video.codec_context.name, video.width, video.height) == ("h264", rtc.WIDTH, rtc.HEIGHT)
            assert video.codec_context.profile == "Constrained Baseline"
            assert audio.codec_context.name == "opus"
            packets = [p for p in container.demux(video) if p.size]
            assert packets[0].is_keyframe
            decoder = video.codec_context  # the init segment's avcC
            pictures = [f for p in packets for f in decoder.decode(p)] + decoder.decode(None)
        assert len(packets) >= durations[0] * rtc.FPS * 0.5, (len(packets), durations[0])
        assert len(pictures) == len(packets)  # every access unit decodes
        # the pictures are the publisher's, in order: the bar moves on by one step a picture
        # (frames the transcoder skipped on a loaded machine make a longer step)
        moves = _moves([rtc.bar_position(f.reformat(format="yuv420p")) for f in pictures])
        assert all(m >= 1 for m in moves) and moves.count(1) >= 0.8 * len(moves), moves
    finally:
        await pub.close()
    # the show ends: its transcoder's thread ends with it
    await api.call("POST", f"/api/streams/{stream['id']}/end", host["token"], expect=200)
    await rtc.wait_for(lambda: not _threads(stream["id"]), 10, "the transcoder's thread to end")
    assert not node.transcoded(stream["id"])


async def test_the_node_shutting_down_stops_its_transcoders(transcoding_api: Api) -> None:
    api = transcoding_api
    host, stream = await _show(api)
    pub, _ = await publish(api, host, stream, video_codec="video/VP8")
    try:
        node = api.client.app[SHOW].relay.hls
        transcoder = node.transcoders[stream["id"]]
        await rtc.wait_for(lambda: transcoder.frames > 0, 20, "the first transcoded frame")
        await api.client.close()  # the app's cleanup: the relay, then what HLS has left
        assert node.transcoders == {}
        await rtc.wait_for(lambda: not _threads(stream["id"]), 5, "the transcoder's thread to end")
    finally:
        await pub.close()


def _vp8(count: int, keyframes: set[int]) -> list[tuple[bytes, bool]]:
    """The publisher's moving bar as libvpx encodes it (realtime), keyframes only at `keyframes`."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = rtc.WIDTH, rtc.HEIGHT, "yuv420p"
    codec.time_base, codec.framerate = Fraction(1, rtc.VIDEO_CLOCK), Fraction(rtc.FPS)
    codec.bit_rate, codec.gop_size = 300_000, 10_000
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    frames = []
    for index in range(count):
        picture = rtc.bar_frame(index)
        picture.pict_type = PictureType.I if index in keyframes else PictureType.NONE
        frames += [(bytes(p), bool(p.is_keyframe)) for p in codec.encode(picture)]
    assert [i for i, (_, key) in enumerate(frames) if key] == sorted(keyframes)
    return frames


def _decoded(units: list[tuple[bytes, int, bool]]) -> list[av.VideoFrame]:
    decoder = av.CodecContext.create("h264", "r")
    pictures = []
    for data, _, _ in units:
        pictures += decoder.decode(av.Packet(data))
    return pictures + decoder.decode(None)


async def test_a_transcoder_behind_drops_until_a_vp8_keyframe_and_makes_idrs_where_asked() -> None:
    queued = transcode.MAX_QUEUED
    frames = _vp8(200, {0, 30})
    out: list[tuple[bytes, int, bool]] = []
    asked: list[float] = []
    transcoder = transcode.Transcoder(
        "str_unit",
        lambda data, rtp, key: out.append((data, rtp, key)),
        lambda: asked.append(time.monotonic()),
    )

    def push(index: int) -> None:
        data, keyframe = frames[index]
        transcoder.push(data, index * FRAME_TICKS, keyframe)

    async def feed(first: int, end: int) -> None:
        """Frames first..end-1, no faster than the worker takes them: nothing is dropped."""
        for chunk in range(first, end, queued):
            last = min(chunk + queued, end)
            expected = len(out) + last - chunk
            for index in range(chunk, last):
                push(index)
            await rtc.wait_for(lambda n=expected: len(out) == n, 20, "the worker to catch up")

    try:
        # the worker has not started: the queue fills to its bound, then the frames that
        # would refer to the dropped one go too, and the publisher is asked for a keyframe
        for index in range(queued + 5):
            push(index)
        assert transcoder.dropped == 5 and len(asked) == 1
        for index in range(queued + 5, 30):
            push(index)
        assert transcoder.dropped == 30 - queued and len(asked) == 1  # asked again after REASK_S
        push(30)  # the keyframe: the stale backlog goes, the decoder starts here
        assert transcoder.dropped == 30
        for index in range(31, 30 + queued):
            push(index)
        transcoder.start()
        await rtc.wait_for(lambda: len(out) == queued, 20, "the queued frames transcoded")
        assert [rtp for _, rtp, _ in out] == [i * FRAME_TICKS for i in range(30, 30 + queued)]
        assert out[0][2] and not any(key for _, _, key in out[1:])
        assert transcoder.errors == 0
        pictures = _decoded(out)
        assert [(p.width, p.height) for p in pictures] == [(rtc.WIDTH, rtc.HEIGHT)] * queued
        assert _moves([rtc.bar_position(p) for p in pictures]) == [1] * (queued - 1)

        # the segmenter asks for a keyframe as it cuts a segment, for the next one: the encoder
        # makes it an IDR (SPS, PPS, IDR) from a VP8 inter frame once the GOP is MIN_GOP_S old;
        # without requests, one comes every MAX_GOP_S; a request in an older GOP, at once. The
        # publisher is never asked.
        transcoder.request_keyframe()
        await feed(30 + queued, 187)
        transcoder.request_keyframe()
        await feed(187, len(frames))
        deferred = int((transcode.MIN_GOP_S + 0.01) * rtc.FPS) + 1  # frames into the GOP
        capped = int(transcode.MAX_GOP_S * rtc.FPS)
        idrs = [rtp // FRAME_TICKS for _, rtp, key in out if key]
        assert idrs == [30, 30 + deferred, 30 + deferred + capped, 187], idrs
        assert all([u[0] & 0x1F for u in fmp4.nal_units(d)][:2] == [7, 8] for d, _, k in out if k)
        assert len(out) == len(frames) - 30 and transcoder.dropped == 30 and transcoder.errors == 0
        assert len(asked) == 1
        assert len(_decoded(out)) == len(out)
    finally:
        await transcoder.close()
    assert not transcoder.running


async def test_a_frame_the_decoder_refuses_waits_for_the_next_keyframe() -> None:
    frames = _vp8(12, {0, 6})
    out: list[tuple[bytes, int, bool]] = []
    asked: list[int] = []
    transcoder = transcode.Transcoder("str_broken", lambda *unit: out.append(unit), lambda: asked.append(1))
    transcoder.start()
    try:
        # an inter frame passed off as a keyframe (a publisher that lost the real one): the
        # decoder has nothing to refer to, so it and what follows wait for a real keyframe
        transcoder.push(frames[3][0], 0, True)
        await rtc.wait_for(lambda: transcoder.errors == 1 and asked, 20, "the refusal")
        for index in range(4, 12):
            transcoder.push(frames[index][0], index * FRAME_TICKS, frames[index][1])
        await rtc.wait_for(lambda: len(out) == 6, 20, "the frames from the keyframe on")
        assert [rtp for _, rtp, _ in out] == [i * FRAME_TICKS for i in range(6, 12)]
        assert transcoder.dropped == 2 and transcoder.errors == 1
        assert len(_decoded(out)) == 6
    finally:
        await transcoder.close()
    assert not transcoder.running


def test_the_setting_is_off_unless_asked_for() -> None:
    assert Settings().hls_transcode_vp8 is False
    for raw, value in (("true", True), ("1", True), ("off", False), ("FALSE", False)):
        settings, _ = load_settings(None, environ={"LIVECART_HLS_TRANSCODE_VP8": raw})
        assert settings.hls_transcode_vp8 is value
    with pytest.raises(ConfigError) as refused:
        load_settings(None, environ={"LIVECART_HLS_TRANSCODE_VP8": "maybe"})
    assert refused.value.setting == "LIVECART_HLS_TRANSCODE_VP8"
