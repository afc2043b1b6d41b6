"""This node's LL-HLS streams: one segmenter per live H.264 stream the relay feeds, their
recordings, and the replays of ended streams (streaming/hls.py, streaming/recording.py)."""

from __future__ import annotations

from collections.abc import Callable

from core.errors import Conflict, NotFound
from streaming.hls import LiveHls, Tap
from streaming.recording import Recorder, RecordingStore
from streaming.timeline import History, Timeline


class HlsStreams:
    """This node's live HLS streams, fed by the relay (streaming/sessions.py)."""

    def __init__(self, recordings: RecordingStore | None = None, history: History | None = None) -> None:
        self.live: dict[str, LiveHls] = {}
        self.recordings = recordings  # None: nothing is recorded
        self._history = history  # the rooms' history, for the recordings' timelines

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
            live.unsupported = None if codec.upper() == "H264" else codec
            if live.unsupported is None:
                live.request_keyframe = keyframe
                live.has_video = True
                taps.append(live.video)
        else:
            live.has_audio = True
            taps.append(live.audio)

    def serves(self, stream_id: str) -> bool:
        """Whether the stream is live here in H.264, so HLS can take its viewers."""
        live = self.live.get(stream_id)
        return live is not None and live.unsupported is None and live.has_video

    async def end(self, stream_id: str, *, complete: bool = True) -> None:
        """The stream is no longer relayed here: close its segmenter, write what it recorded,
        and complete the recording (timeline, VOD playlist) when the show is over (`complete`;
        not when this node shuts down or lets another node take the stream)."""
        live = self.live.pop(stream_id, None)
        if live is not None:
            live.close()
            if live.recorder is not None:
                await live.recorder.finish(complete=complete)

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
