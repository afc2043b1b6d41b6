// LL-HLS playback for the watch page: the browser's own HLS where it has it (Safari), hls.js
// (vendored, static/vendor/) over Media Source elsewhere. Same shape as webrtc.js's Player:
// start(), stop(), `state` ("connecting" | "live" | "reconnecting" | "failed") through onState.

const HLS_JS = "/static/vendor/hls.js-1.7.4/hls.light.min.mjs";
const RETRY_MS = 2000;

export class HlsPlayer {
  constructor({ url, video, onState }) {
    this.url = url;
    this.video = video;
    this.onState = onState || (() => {});
    this.state = "idle";
    this.hls = null;
    this.stopped = true;
    this.retry = null;
    this.playing = () => this.setState("live");
    this.waiting = () => this.state === "live" && this.setState("reconnecting");
  }

  setState(state, detail = null) {
    if (this.stopped && state !== "idle") return;
    this.state = state;
    this.onState(state, detail);
  }

  async start() {
    this.stopped = false;
    this.setState("connecting");
    const video = this.video;
    video.srcObject = null;
    video.addEventListener("playing", this.playing);
    video.addEventListener("waiting", this.waiting);
    if (!window.MediaSource && video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = this.url; // Safari: native LL-HLS
      video.play().catch(() => {});
      return;
    }
    const { default: Hls } = await import(HLS_JS);
    if (this.stopped) return;
    if (!Hls.isSupported()) {
      this.setState("failed", new Error("this browser cannot play HLS"));
      return;
    }
    this.open(Hls);
  }

  open(Hls) {
    // no worker: the page's policy keeps scripts to this origin (no blob: workers)
    const hls = new Hls({ lowLatencyMode: true, enableWorker: false, backBufferLength: 30 });
    this.hls = hls;
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal || this.stopped || hls !== this.hls) return;
      // the stream's node restarted, or the playlist is not there yet: start over shortly
      this.setState("reconnecting", data);
      hls.destroy();
      this.hls = null;
      clearTimeout(this.retry);
      this.retry = setTimeout(() => !this.stopped && this.open(Hls), RETRY_MS);
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => this.video.play().catch(() => {}));
    hls.loadSource(this.url);
    hls.attachMedia(this.video);
  }

  // The wall-clock time (ms) of the picture playing now, from EXT-X-PROGRAM-DATE-TIME; null
  // until it is known.
  playingAt() {
    if (this.hls) return this.hls.playingDate ? this.hls.playingDate.getTime() : null;
    const start = this.video.getStartDate ? this.video.getStartDate().getTime() : NaN;
    return Number.isFinite(start) ? start + this.video.currentTime * 1000 : null;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    this.video.removeEventListener("playing", this.playing);
    this.video.removeEventListener("waiting", this.waiting);
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    this.video.removeAttribute("src");
    this.state = "idle";
  }
}
