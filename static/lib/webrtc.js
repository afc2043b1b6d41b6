// WHIP (publish) and WHEP (play) for the pages: one offer with its candidates, one answer.
//
// The server does not take trickled candidates, so the offer is sent once ICE gathering is
// complete (or after GATHER_MS, with what is gathered by then). A session that fails or stays
// disconnected is replaced by a fresh one: a publisher keeps its stream live through the
// server's grace period meanwhile; a viewer just sees the picture come back.

import { errorOf, ApiError } from "./api.js";

const GATHER_MS = 1500;
const DISCONNECTED_MS = 3000;

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, GATHER_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

// POST the offer; returns the session URL. A 307 (another node has the stream) is followed.
async function exchange(pc, url, token) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
  } catch {
    throw new ApiError(0, "network", "cannot reach the server");
  }
  if (response.status !== 201) throw await errorOf(response);
  const location = new URL(response.headers.get("Location"), response.url).href;
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  return location;
}

class Session {
  constructor({ url, token = null, onState }) {
    this.url = url;
    this.token = token;
    this.onState = onState || (() => {});
    this.pc = null;
    this.location = null;
    this.state = "idle";
    this.stopped = true;
    this.retry = null;
    this.tries = 0;
    this.watchdog = null;
    this.maxTries = Infinity;
  }

  setState(state, detail = null) {
    this.state = state;
    this.onState(state, detail);
  }

  // Overridden: add the transceivers this side needs to a new peer connection.
  prepare() {}

  async start() {
    this.stopped = false;
    this.tries = 0;
    await this.open("connecting");
  }

  async open(state) {
    clearTimeout(this.retry);
    this.close();
    this.setState(state);
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    this.prepare(pc);
    pc.addEventListener("connectionstatechange", () => this.watch(pc));
    try {
      this.location = await exchange(pc, this.url, this.token);
    } catch (error) {
      if (pc !== this.pc) return;
      this.failed(error);
      return;
    }
  }

  watch(pc) {
    if (pc !== this.pc || this.stopped) return;
    clearTimeout(this.watchdog);
    const state = pc.connectionState;
    if (state === "connected") {
      this.tries = 0;
      this.setState("live");
    } else if (state === "failed") {
      this.again();
    } else if (state === "disconnected") {
      // often back by itself within a second or two; replace it if not
      this.setState("reconnecting");
      this.watchdog = setTimeout(() => pc === this.pc && pc.connectionState !== "connected" && this.again(), DISCONNECTED_MS);
    }
  }

  // Whether an error means trying again cannot help (bad token, stream over…).
  final(error) {
    return error instanceof ApiError && [400, 401, 403, 404, 415, 422].includes(error.status);
  }

  failed(error) {
    if (this.stopped) return;
    if (this.final(error)) {
      this.close();
      this.setState("failed", error);
      return;
    }
    this.again(error);
  }

  again(error = null) {
    if (this.stopped) return;
    this.tries += 1;
    if (this.tries > this.maxTries) {
      this.close();
      this.setState("failed", error);
      return;
    }
    const wait = Math.min(500 * 2 ** Math.min(this.tries, 4), 8000) * (0.5 + Math.random() * 0.5);
    this.setState("reconnecting", error);
    this.close();
    this.retry = setTimeout(() => this.open("reconnecting"), wait);
  }

  close() {
    clearTimeout(this.watchdog);
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
  }

  // Stop and tell the server (DELETE the session); for a publisher that ends the stream.
  async stop({ tell = true } = {}) {
    this.stopped = true;
    clearTimeout(this.retry);
    this.close();
    const location = this.location;
    this.location = null;
    if (tell && location) {
      const headers = this.token ? { Authorization: `Bearer ${this.token}` } : {};
      try {
        await fetch(location, { method: "DELETE", headers });
      } catch {
        // the server is gone: the session is too
      }
    }
  }

  // The nominated candidate pair, for the page's status and for tests.
  async pair() {
    if (!this.pc) return null;
    const stats = await this.pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) stats.forEach((s) => s.type === "candidate-pair" && s.nominated && s.state === "succeeded" && (pair = s));
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return { local: local && (local.address || local.ip), remote: remote && (remote.address || remote.ip) };
  }
}

// H.264 first: the relay then also serves the show as LL-HLS (it cuts HLS from the frames it
// relays and never re-encodes), and every phone decodes it. Other codecs stay as fallbacks.
function preferH264(transceiver) {
  if (!transceiver.setCodecPreferences || !RTCRtpSender.getCapabilities) return;
  const codecs = RTCRtpSender.getCapabilities("video").codecs;
  const fmtp = (c) => c.sdpFmtpLine || "";
  const h264 = codecs.filter((c) => c.mimeType.toLowerCase() === "video/h264" && fmtp(c).includes("packetization-mode=1"));
  h264.sort((a, b) => Number(fmtp(b).includes("42e01f")) - Number(fmtp(a).includes("42e01f")));
  if (!h264.length) return;
  try {
    transceiver.setCodecPreferences([...h264, ...codecs.filter((c) => !h264.includes(c))]);
  } catch {
    // a browser that refuses the list keeps its own order
  }
}

export class Publisher extends Session {
  constructor(options) {
    super(options);
    this.media = null;
    this.maxTries = 8; // about half a minute: long enough for the server to notice a dropped session
  }

  setMedia(media) {
    this.media = media;
    if (!this.pc) return;
    for (const transceiver of this.pc.getTransceivers()) {
      const track = media.getTracks().find((t) => t.kind === transceiver.receiver.track.kind);
      if (track) transceiver.sender.replaceTrack(track).catch(() => {});
    }
  }

  prepare(pc) {
    for (const kind of ["audio", "video"]) {
      const track = this.media && this.media.getTracks().find((t) => t.kind === kind);
      const transceiver = pc.addTransceiver(track || kind, { direction: "sendonly", streams: this.media ? [this.media] : [] });
      if (kind === "video") preferH264(transceiver);
    }
  }

  // 409 already_publishing right after a drop: the server has not noticed yet; keep trying.
  final(error) {
    return super.final(error) || (error instanceof ApiError && error.code === "stream_ended");
  }
}

export class Player extends Session {
  constructor({ video, ...options }) {
    super(options);
    this.video = video;
  }

  prepare(pc) {
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const media = new MediaStream();
    pc.addEventListener("track", (event) => {
      media.addTrack(event.track);
      if (this.video.srcObject !== media) this.video.srcObject = media;
      this.video.play().catch(() => {});
    });
  }

  // 409 stream_not_live / ended: the page decides from the room's `stream` events;
  // 503 webrtc_full: the page plays the show's HLS instead.
  final(error) {
    return super.final(error) || (error instanceof ApiError && (error.status === 409 || error.code === "webrtc_full"));
  }
}
