"""Low-Latency HLS from the relay: a real aiortc publisher sends H.264 + Opus over WebRTC, the
node cuts CMAF parts and segments from the frames as they came, and what a player reads back
(ffprobe from Debian's ffmpeg, over HTTP; PyAV for the frames' bytes) is H.264 at the published
size with Opus beside it, in segments of the advertised durations, made of the publisher's own
bytes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import av
import pytest

from config.settings import Settings
from server.app import create_app
from streaming import fmp4, hls, hls_node, hooks, recording, timeline
from streaming.app import RELAY_SETTINGS, SHOW
from tests import webrtc_peers as rtc
from tests.conftest import ADMIN_TOKEN, Api, MakeClient
from tests.test_streaming import FAST, _show, publish
from tests.test_ws import connect


async def relay_app(aiohttp_client: MakeClient, tmp_path: Path, **more: Any) -> Api:
    """A node relaying on loopback only, with the streaming tests' fast timings (and `more`
    settings)."""
    hooks.install(("127.0.0.1",))
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'hls.db'}",
        admin_token=ADMIN_TOKEN,
        public_url="http://livecart.test",
        ice_addresses=("127.0.0.1",),
        **more,
    )
    app = create_app(settings)
    app[RELAY_SETTINGS] = FAST
    return Api(await aiohttp_client(app))


@pytest.fixture
async def hls_api(aiohttp_client: MakeClient, tmp_path: Path) -> Api:
    return await relay_app(aiohttp_client, tmp_path)


async def get(api: Api, path: str, expect: int = 200) -> tuple[bytes, Any]:
    response = await api.client.get(path, allow_redirects=False)
    body = await response.read()
    assert response.status == expect, (path, response.status, body[:300])
    return body, response.headers


def tags(playlist: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in playlist.splitlines():
        if line.startswith("#EXT"):
            name, _, value = line.partition(":")
            found.setdefault(name, []).append(value)
    return found


async def playlist_with(api: Api, base: str, segments: int, timeout: float = 20.0) -> str:
    """The live playlist once it lists `segments` complete segments."""
    deadline = time.monotonic() + timeout
    while True:
        text = (await get(api, f"{base}/live.m3u8"))[0].decode()
        if len(re.findall(r"^seg\d+\.m4s$", text, re.M)) >= segments:
            return text
        assert time.monotonic() < deadline, text
        await asyncio.sleep(0.2)


async def test_a_live_h264_stream_plays_as_ll_hls_made_of_the_published_frames(
    hls_api: Api, tmp_path: Path
) -> None:
    host, stream = await _show(hls_api)
    base = f"/api/streams/{stream['id']}/hls"
    pub, _ = await publish(hls_api, host, stream, video_codec="video/H264")
    relayed: set[str] = set()  # every frame the relay got, as an MP4 sample would hold it
    try:
        feed = hls_api.client.app[SHOW].relay.relays[stream["id"]].feeds["video"]
        assert feed.codec.name == "H264"
        feed.taps.append(
            lambda data, rtp, key: relayed.add(
                hashlib.sha256(fmp4.avc_sample(fmp4.nal_units(data))).hexdigest()
            )
        )
        # the segment open when the tap went on holds frames it never saw: compare a later one
        live = hls_api.client.app[SHOW].relay.hls.live.get(stream["id"])
        opened = live._open.msn if live is not None and live._open is not None else -1
        deadline = time.monotonic() + 20
        while True:
            text = await playlist_with(hls_api, base, 2)
            listed_segments = [int(n) for n in re.findall(r"^seg(\d+)\.m4s$", text, re.M)]
            if any(n > opened for n in listed_segments):
                break
            assert time.monotonic() < deadline, text
            await asyncio.sleep(0.2)
        index = next(i for i, n in enumerate(listed_segments) if n > opened)
        found = tags(text)
        target = int(found["#EXT-X-TARGETDURATION"][0])
        assert found["#EXT-X-PART-INF"] == [f"PART-TARGET={hls.PART_TARGET_S:.3f}"]
        assert "CAN-BLOCK-RELOAD=YES" in found["#EXT-X-SERVER-CONTROL"][0]
        assert found["#EXT-X-MAP"] == ['URI="init.mp4"']
        assert found["#EXT-X-PROGRAM-DATE-TIME"] and found["#EXT-X-PRELOAD-HINT"]
        durations = [float(v.rstrip(",")) for v in found["#EXTINF"]]
        assert all(0 < d <= target for d in durations), (durations, target)
        parts = [float(v.split(",")[0].split("=")[1]) for v in found["#EXT-X-PART"]]
        assert all(0 < d <= hls.PART_TARGET_S for d in parts), parts

        init, headers = await get(hls_api, f"{base}/init.mp4")
        assert headers["Content-Type"] == "video/mp4" and "immutable" in headers["Cache-Control"]
        first = listed_segments[index]
        segment, _ = await get(hls_api, f"{base}/seg{first}.m4s")
        listed = re.findall(rf'URI="part{first}\.(\d+)\.m4s"', text)
        if listed:  # a segment is its parts, in order
            pieces = [(await get(hls_api, f"{base}/part{first}.{i}.m4s"))[0] for i in listed]
            assert b"".join(pieces) == segment

        clip = tmp_path / "segment.mp4"
        clip.write_bytes(init + segment)
        probed = await ffprobe(str(clip), "-show_streams", "-show_packets", "-select_streams", "v")
        assert [(s["codec_name"], s["width"], s["height"]) for s in probed["streams"]] == [
            ("h264", rtc.WIDTH, rtc.HEIGHT)
        ]
        probed_s = sum(float(p["duration_time"]) for p in probed["packets"] if "duration_time" in p)
        assert abs(probed_s - durations[index]) < 0.1, (probed_s, durations[index])
        with av.open(str(clip)) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            assert (video.codec_context.name, video.width, video.height) == ("h264", rtc.WIDTH, rtc.HEIGHT)
            assert audio.codec_context.name == "opus"
            packets = [p for p in container.demux(video) if p.size]
        seconds = sum(float(p.duration * p.time_base) for p in packets if p.duration)
        assert abs(seconds - durations[index]) < 0.1, (seconds, durations[index])
        assert packets[0].is_keyframe
        # no re-encode: every picture in the segment is one the publisher sent, byte for byte
        assert {hashlib.sha256(bytes(p)).hexdigest() for p in packets} <= relayed
        assert len(packets) >= durations[index] * rtc.FPS * 0.5

        # ffprobe reads the live playlist over HTTP as a player would, and finds both streams
        url = str(hls_api.client.make_url(f"{base}/live.m3u8"))
        assert url.startswith("http://127.0.0.1:")
        probed = await ffprobe(url, "-rw_timeout", "10000000", "-show_streams")
        streams = {(s["codec_name"], s.get("width", 0), s.get("height", 0)) for s in probed["streams"]}
        assert ("h264", rtc.WIDTH, rtc.HEIGHT) in streams and ("opus", 0, 0) in streams, streams
    finally:
        await pub.close()


async def ffprobe(target: str, *options: str, timeout: float = 30.0) -> Any:
    """What Debian's ffprobe (installed by .ci/run) reads in `target`, as JSON. Run beside the
    event loop: the test server answering its requests lives in this loop."""
    process = await asyncio.create_subprocess_exec(
        "ffprobe",
        "-v",
        "error",
        "-of",
        "json",
        *options,
        target,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode()
    return json.loads(out)


async def test_blocking_reload_answers_when_the_part_is_out(hls_api: Api) -> None:
    host, stream = await _show(hls_api)
    base = f"/api/streams/{stream['id']}/hls"
    pub, _ = await publish(hls_api, host, stream, video_codec="video/H264")
    try:
        text = await playlist_with(hls_api, base, 1)
        msn, part = map(int, re.findall(r'PRELOAD-HINT:TYPE=PART,URI="part(\d+)\.(\d+)\.m4s"', text)[0])
        asked = time.monotonic()
        body, _ = await get(hls_api, f"{base}/live.m3u8?_HLS_msn={msn}&_HLS_part={part}")
        answered = time.monotonic()
        assert f'URI="part{msn}.{part}.m4s"' in body.decode()
        live = hls_api.client.app[SHOW].relay.hls.live[stream["id"]]
        published = live.segments[msn].parts[part].published
        # held until the part was out, then answered within two part durations of it
        assert answered - max(published, asked) < 2 * hls.PART_TARGET_S
        # the part the new playlist hints at, asked for before it exists, comes when it is cut
        hint = re.findall(r'PRELOAD-HINT:TYPE=PART,URI="(part\d+\.\d+\.m4s)"', body.decode())[0]
        data, _ = await get(hls_api, f"{base}/{hint}")
        assert data[4:8] == b"moof"

        last = max(int(m) for m in re.findall(r"part(\d+)\.\d+\.m4s", body.decode()))
        await get(hls_api, f"{base}/live.m3u8?_HLS_msn={last + 3}", expect=400)
        await get(hls_api, f"{base}/live.m3u8?_HLS_part=1", expect=400)
        await get(hls_api, f"{base}/live.m3u8?_HLS_msn=x", expect=400)
        await get(hls_api, f"{base}/seg999999.m4s", expect=404)
        await get(hls_api, f"{base}/nonsense.txt", expect=404)
    finally:
        await pub.close()


async def test_the_show_is_recorded_and_replays_as_a_vod_playlist(hls_api: Api, tmp_path: Path) -> None:
    brand, host = await hls_api.account("brands", "Silk & Co"), await hls_api.account("hosts", "Mia")
    scarf = await hls_api.product(brand, title="Silk scarf", price=2900, stock=5)
    stream = await hls_api.stream(host, [scarf["id"]])
    base = f"/api/streams/{stream['id']}/hls"
    _, body = await hls_api.call("GET", f"{base}/replay.m3u8", expect=404)
    assert body["error"]["code"] == "no_recording"
    pub, _ = await publish(hls_api, host, stream, video_codec="video/H264")
    try:
        await playlist_with(hls_api, base, 1)
        # what happens in the show goes into the replay's timeline
        pin = {"product_id": scarf["id"]}
        await hls_api.call("POST", f"/api/streams/{stream['id']}/pin", host["token"], pin, expect=200)
        ann = await hls_api.account("viewers", "Ann")
        sock, _ = await connect(hls_api, stream["id"], ann["token"])
        await sock.send({"type": "chat", "text": "love the scarf"})
        await sock.send({"type": "chat", "text": "oops, wrong show"})
        lines: list[dict[str, Any]] = []
        while len(lines) < 2:
            event = await sock.next()
            if event["type"] == "chat":
                lines.append(event["data"])
        host_sock, _ = await connect(hls_api, stream["id"], host["token"])
        await host_sock.send({"type": "moderate", "action": "delete", "message_id": lines[1]["id"]})
        live = await playlist_with(hls_api, base, 2)
        await sock.ws.close()
        await host_sock.ws.close()
    finally:
        await pub.close()
    await hls_api.call("POST", f"/api/streams/{stream['id']}/end", host["token"], expect=200)
    # the recording is complete once the stream's relay has closed (the end closes it)
    deadline = time.monotonic() + 10
    while (response := await hls_api.client.get(f"{base}/replay.m3u8")).status != 200:
        assert time.monotonic() < deadline, await response.text()
        await asyncio.sleep(0.1)
    vod = (await response.read()).decode()
    found = tags(vod)
    assert found["#EXT-X-PLAYLIST-TYPE"] == ["VOD"] and "#EXT-X-ENDLIST" in found
    assert found["#EXT-X-MAP"] == ['URI="init.mp4"']
    recorded = re.findall(r"^seg(\d+)\.m4s$", vod, re.M)
    # every segment the live playlist listed is in the recording, and the tail after them too
    assert set(re.findall(r"^seg(\d+)\.m4s$", live, re.M)) < set(recorded)
    assert "#EXT-X-PART" not in vod and len(found["#EXT-X-PROGRAM-DATE-TIME"]) == len(recorded)
    init, _ = await get(hls_api, f"{base}/init.mp4")
    clip = tmp_path / "replay.mp4"
    clip.write_bytes(init + b"".join([(await get(hls_api, f"{base}/seg{n}.m4s"))[0] for n in recorded]))
    with av.open(str(clip)) as container:
        video = container.streams.video[0]
        frames = [p for p in container.demux(video) if p.size]
    seconds = sum(float(v.rstrip(",")) for v in found["#EXTINF"])
    assert abs(len(frames) / rtc.FPS - seconds) < 0.5, (len(frames), seconds)
    await get(hls_api, f"{base}/seg{int(recorded[-1]) + 1}.m4s", expect=404)
    await get(hls_api, f"{base}/index.json", expect=404)  # the recording's own files are not media

    _, timeline = await hls_api.call("GET", f"/api/streams/{stream['id']}/timeline", expect=200)
    kinds = [
        (e["type"], e["data"].get("text") or e["data"].get("product", {}).get("id"))
        for e in timeline["events"]
    ]
    assert ("pin", scarf["id"]) in kinds and ("chat", "love the scarf") in kinds
    assert ("chat", "oops, wrong show") not in kinds  # the host deleted it
    assert all(0 <= e["offset"] <= seconds + 1 for e in timeline["events"]), timeline
    assert timeline["started_at"] == pytest.approx(time.time(), abs=60)


def test_recordings_older_than_the_retention_are_removed(tmp_path: Path) -> None:
    store = recording.FileRecordings(tmp_path)
    playlist = recording.vod_playlist([recording.Recorded(0, 2.0, time.time(), 0, 0)]).encode()

    async def run() -> tuple[int, bytes | None, bytes | None]:
        for stream_id in ("str_old", "str_new"):
            await store.write(stream_id, "seg0.m4s", b"x")
            await store.write(stream_id, recording.PLAYLIST, playlist)
        await store.write("str_live", "seg0.m4s", b"x")  # still recording: no playlist yet
        aged = time.time() - 31 * 86400
        os.utime(tmp_path / "str_old" / recording.PLAYLIST, (aged, aged))
        removed = await recording.sweep(store, 30 * 86400)
        return removed, await store.read("str_old", "seg0.m4s"), await store.read("str_new", "seg0.m4s")

    removed, old, new = asyncio.run(run())
    assert (removed, old, new) == (1, None, b"x")
    assert (tmp_path / "str_live" / "seg0.m4s").exists()
    with pytest.raises(ValueError):
        asyncio.run(store.write("str_x", "../../etc/passwd", b""))


async def test_no_hls_for_a_vp8_stream_or_a_stream_that_is_not_live(hls_api: Api) -> None:
    host, stream = await _show(hls_api)
    base = f"/api/streams/{stream['id']}/hls"
    _, body = await hls_api.call("GET", f"{base}/live.m3u8", expect=404)
    assert body["error"]["code"] == "hls_not_live"
    pub, _ = await publish(hls_api, host, stream, video_codec="video/VP8")
    try:
        _, body = await hls_api.call("GET", f"{base}/live.m3u8", expect=409)
        assert body["error"]["code"] == "hls_needs_h264"
    finally:
        await pub.close()


def _h264(width: int, height: int, count: int) -> list[tuple[bytes, bool]]:
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.options = {"preset": "ultrafast", "tune": "zerolatency"}
    frames = []
    for index in range(count):
        picture = av.VideoFrame(width, height, "yuv420p")
        picture.planes[0].update(bytes([index * 4 % 256]) * (picture.planes[0].line_size * height))
        picture.pts = index
        frames += [(bytes(p), bool(p.is_keyframe)) for p in codec.encode(picture)]
    return frames


def test_a_new_resolution_starts_a_segment_with_its_own_init_segment(tmp_path: Path) -> None:
    """A browser's encoder scales its picture under load: the keyframe with new parameter sets
    starts a segment, announced with its own EXT-X-MAP, that plays at the new size."""
    live = hls.LiveHls("str_resize", lambda: None)
    frames = _h264(320, 240, 40) + _h264(640, 360, 40)
    for index, (data, keyframe) in enumerate(frames):
        live.video(data, index * 3000, keyframe)
    live.close()
    text = live.playlist().decode()
    assert tags(text)["#EXT-X-MAP"] == ['URI="init.mp4"', 'URI="init1.mp4"']
    last = list(live.segments.values())[-1]
    assert last.complete and last.map_id == 1
    clip = tmp_path / "resized.mp4"
    clip.write_bytes(live.inits[1] + last.data)
    with av.open(str(clip)) as container:
        video = container.streams.video[0]
        assert (video.width, video.height) == (640, 360)
        assert sum(1 for p in container.demux(video) if p.size) == 40


def test_a_node_that_lets_a_show_go_keeps_its_segments_but_does_not_close_the_replay(tmp_path: Path) -> None:
    """A node shutting down (or losing the stream to another) writes what it recorded; only the
    node that ends the show writes the timeline and the VOD playlist."""
    frames = _h264(160, 120, 90)

    async def record(complete: bool) -> list[str]:
        store = recording.FileRecordings(tmp_path / str(complete))
        streams = hls_node.HlsStreams(store)
        taps: list[hls.Tap] = []
        streams.follow("str_show", "video", "H264", taps, lambda: None)
        for index, (data, keyframe) in enumerate(frames):
            taps[0](data, index * 3000, keyframe)
        await streams.end("str_show", complete=complete)
        return sorted(path.name for path in (tmp_path / str(complete) / "str_show").iterdir())

    kept = asyncio.run(record(False))
    assert "init.mp4" in kept and "seg0.m4s" in kept and recording.PLAYLIST not in kept
    assert recording.PLAYLIST in asyncio.run(record(True))


def test_a_show_recorded_in_two_runs_replays_as_one(tmp_path: Path) -> None:
    """The node restarts mid-show (or another node sharing the store takes the show): the second
    run's segments follow the first's in one recording, one replay, after a discontinuity."""
    store = recording.FileRecordings(tmp_path)
    folder = tmp_path / "str_show"

    async def run(width: int, complete: bool) -> None:
        streams = hls_node.HlsStreams(store)  # a node (re)started
        taps: list[hls.Tap] = []
        streams.follow("str_show", "video", "H264", taps, lambda: None)
        for index, (data, keyframe) in enumerate(_h264(width, width * 3 // 4, 90)):
            taps[0](data, index * 3000, keyframe)
        await streams.end("str_show", complete=complete)

    asyncio.run(run(160, complete=False))  # the node went down mid-show
    first = sorted(p.name for p in folder.glob("seg*.m4s"))
    assert first and recording.PLAYLIST not in {p.name for p in folder.iterdir()}
    asyncio.run(run(320, complete=True))  # back, until the show ends
    playlist = (folder / recording.PLAYLIST).read_text()
    names = re.findall(r"^seg(\d+)\.m4s$", playlist, re.M)
    assert [int(n) for n in names] == list(range(len(names))) and len(names) > len(first)
    assert playlist.count("#EXT-X-DISCONTINUITY") == 1
    assert re.findall(r'#EXT-X-MAP:URI="(.*)"', playlist) == ["init.mp4", "init1.mp4"]
    with av.open(str(folder / recording.PLAYLIST)) as container:  # libavformat plays it through
        sizes = {(frame.width, frame.height) for frame in container.decode(video=0)}
    assert sizes == {(160, 120), (320, 240)}


def test_an_events_offset_is_where_its_moment_sits_in_the_replay() -> None:
    runs = [recording.Recorded(0, 2.0, 100.0, 0, 0), recording.Recorded(1, 2.0, 102.0, 0, 0)]
    runs.append(recording.Recorded(2, 2.0, 130.0, 1, 1))  # a second run, after a 26 s gap
    assert [timeline.offset(runs, t) for t in (99.0, 101.5, 103.0, 110.0, 131.0, 200.0)] == [
        0.0,
        1.5,
        3.0,
        4.0,
        5.0,
        6.0,
    ]


def test_the_size_is_read_from_the_sequence_parameter_set() -> None:
    for width, height in ((160, 120), (640, 360), (1280, 720), (1920, 1080)):
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
        codec.options = {"preset": "ultrafast", "tune": "zerolatency"}
        frame = av.VideoFrame(width, height, "yuv420p")
        data = b"".join(bytes(p) for p in codec.encode(frame))
        sps = next(u for u in fmp4.nal_units(data) if u[0] & 0x1F == 7)
        assert fmp4.sps_size(sps) == (width, height)
