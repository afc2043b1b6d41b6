// A stream's room: one WebSocket that comes back by itself and asks for what it missed.
//
// Every event with a seq moves `seq` on; after a drop the socket reconnects with `since=seq`,
// so the server sends the missed events after its `hello` (or `resync` when its history no
// longer reaches that far, and the page reloads the stream over HTTP). Waits between tries
// grow from 0.5 s to 8 s, with jitter, so a server restart is not met by every viewer at once.

const FIRST_WAIT_MS = 500;
const LONGEST_WAIT_MS = 8000;

export class Room {
  constructor(streamId, { token = null, anon = null, onEvent, onState }) {
    this.streamId = streamId;
    this.token = token;
    this.anon = anon;
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.seq = null;
    this.ws = null;
    this.state = "idle";
    this.stopped = false;
    this.wait = FIRST_WAIT_MS;
    this.timer = null;
    this.reconnects = 0;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = new URLSearchParams();
    if (this.token) query.set("token", this.token);
    if (this.anon) query.set("anon", this.anon);
    if (this.seq !== null) query.set("since", String(this.seq));
    const path = `/api/streams/${encodeURIComponent(this.streamId)}/ws`;
    return `${scheme}//${location.host}${path}?${query}`;
  }

  setState(state, detail = null) {
    this.state = state;
    this.onState(state, detail);
  }

  connect() {
    this.stopped = false;
    clearTimeout(this.timer);
    const ws = new WebSocket(this.url());
    this.ws = ws;
    this.setState(this.seq === null ? "connecting" : "reconnecting");
    ws.onmessage = (message) => {
      if (ws !== this.ws) return;
      let parsed;
      try {
        parsed = JSON.parse(message.data);
      } catch {
        return;
      }
      for (const event of Array.isArray(parsed) ? parsed : [parsed]) this.take(event);
    };
    ws.onclose = (closed) => {
      if (ws !== this.ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (closed.code === 1008) {
        this.setState("refused", closed.reason);  // banned, or closed for abuse: do not hammer
        return;
      }
      this.setState("reconnecting");
      const jittered = this.wait * (0.5 + Math.random() * 0.5);
      this.wait = Math.min(this.wait * 2, LONGEST_WAIT_MS);
      this.reconnects += 1;
      this.timer = setTimeout(() => this.connect(), jittered);
    };
  }

  take(event) {
    if (event.type === "hello") {
      this.wait = FIRST_WAIT_MS;
      if (this.seq === null || event.data.seq < this.seq) this.seq = event.data.seq;
      this.setState("open");
    } else if (typeof event.seq === "number" && event.seq > (this.seq ?? -1)) {
      this.seq = event.seq;
    }
    try {
      this.onEvent(event);
    } catch (error) {
      window.e2e?.errors.push(`room event ${event.type}: ${error.message}`);
      console.error(error);
    }
  }

  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  // Speak as someone else from now on (a viewer who just picked a name): reconnect with it.
  useToken(token) {
    this.token = token;
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      old.close(1000);
    }
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }
}
