"""This node's LL-HLS streams: one segmenter per live H.264 stream the relay feeds (and per VP8
stream, through a transcoder, when `hls_transcode_vp8` is on), their recordings, and the replays
of ended streams (streaming/hls.py, streaming/transcode.py, streaming/recording.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.errors import Conflict, NotFound
from core.logs import log
from streaming import transcode
from streaming.hls import LiveHls, Tap
from streaming.recording import Recorder, RecordingStore
from streaming.timeline import History, Timeline

logger = logging.getLogger("livecart.hls")


class HlsStreams:
    """This node's live HLS streams, fed by the relay (streaming/sessions.py)."""

    def __init__(
        self,
        recordings: RecordingStore | None = None,
        history: History | None = None,
        *,
        transcode_vp8: bool = False,
    ) -> None:
        self.live: dict[str, LiveHls] = {}
        self.recordings = recordings  # None: nothing is recorded
        self._history = history  # the rooms' history, for the recordings' timelines
        self.transcode_vp8 = transcode_vp8 and transcode.available()
        if transcode_vp8 and not self.transcode_vp8:
            log(
                logger,
                logging.ERROR,
                "hls_transcode_vp8 is on but PyAV lacks vp8 or libx264: VP8 gets no HLS",
            )
        self.transcoders: dict[str, transcode.Transcoder] = {}

    def follow(
        self, stream_id: str, kind: str, codec: str, taps: list[Tap], keyframe: Callable[[], None]
    ) -> None:
        """A new feed of the stream: its frames go to the stream's segmenter through `taps`."""
        live = self.live.get(stream_id)
        if live is None:
            live = self.live[stream_id] = LiveHls(stream_id, _nobody)
            if self.recordings is not None:
                timeline = Timeline(self._history, stream_id) if self._history is not None else None
                live.recorder = Recorder(self.recordings, stream_id, timeline)
        if kind == "video":
            previous = self.transcoders.pop(stream_id, None)
            if previous is not None:  # a new publisher in another codec: its frames only
                previous.stop()
            if codec.upper() == "VP8" and self.transcode_vp8:
                self._transcode(live, taps, keyframe)
                return
            live.unsupported = None if codec.upper() == "H264" else codec
            if live.unsupported is None:
                live.request_keyframe = keyframe
                live.has_video = True
                taps.append(live.video)
        else:
            live.has_audio = True
            taps.append(live.audio)

    def _transcode(self, live: LiveHls, taps: list[Tap], keyframe: Callable[[], None]) -> None:
        transcoder = self.transcoders[live.stream_id] = transcode.Transcoder(
            live.stream_id, live.video, keyframe
        )
        transcoder.start()
        live.unsupported = None
        live.request_keyframe = transcoder.request_keyframe  # the encoder's IDR, not the publisher's
        live.has_video = True
        taps.append(transcoder.push)

    def serves(self, stream_id: str) -> bool:
        """Whether the stream's video is live here in H.264 (as published or transcoded), so HLS
        can take its viewers."""
        live = self.live.get(stream_id)
        return live is not None and live.unsupported is None and live.has_video

    def transcoded(self, stream_id: str) -> bool:
        """Whether the stream's HLS is this node's H.264 encode of its VP8 rather than the host's
        own frames (a generation of quality lost; the WebRTC viewers get the original)."""
        return stream_id in self.transcoders

    async def end(self, stream_id: str, *, complete: bool = True) -> None:
        """The stream is no longer relayed here: close its segmenter, write what it recorded,
        and complete the recording (timeline, VOD playlist) when the show is over (`complete`;
        not when this node shuts down or lets another node take the stream)."""
        transcoder = self.transcoders.pop(stream_id, None)
        if transcoder is not None:
            await transcoder.close()  # its last frames go to the segmenter first
        live = self.live.pop(stream_id, None)
        if live is not None:
            live.close()
            if live.recorder is not None:
                await live.recorder.finish(complete=complete)

    async def close(self) -> None:
        """Node shutdown: any transcoder left (its stream's relay is gone) is stopped."""
        for stream_id in list(self.transcoders):
            await self.transcoders.pop(stream_id).close()

    async def recorded(self, stream_id: str, name: str) -> bytes | None:
        """A file of the stream's recording (init, segment or VOD playlist), if there is one."""
        if self.recordings is None:
            return None
        return await self.recordings.read(stream_id, name)

    def get(self, stream_id: str) -> LiveHls:
        live = self.live.get(stream_id)
        if live is None:
            raise NotFound("the stream is not live on this node", code="hls_not_live")
        if live.unsupported is not None:
            raise Conflict(
                f"this stream's video is {live.unsupported}; HLS needs H.264", code="hls_needs_h264"
            )
        return live


def _nobody() -> None:
    return None
