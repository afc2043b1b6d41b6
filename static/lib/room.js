// A stream's room: one WebSocket that comes back by itself and asks for what it missed.
//
// Every event with a seq moves `seq` on; after a drop the socket reconnects with `since=seq`,
// so the server sends the missed events after its `hello` (or `resync` when its history no
// longer reaches that far, and the page reloads the stream over HTTP). Coming back is
// static/lib/socket.js's (growing waits with jitter; a 1008 close is a refusal).

import { ReconnectingSocket } from "/static/lib/socket.js";

export class Room extends ReconnectingSocket {
  constructor(streamId, { token = null, anon = null, onEvent, onState }) {
    super(onState);
    this.streamId = streamId;
    this.token = token;
    this.anon = anon;
    this.onEvent = onEvent;
    this.seq = null;
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

  connectingState() {
    return this.seq === null ? "connecting" : "reconnecting";
  }

  received(parsed) {
    for (const event of Array.isArray(parsed) ? parsed : [parsed]) this.take(event);
  }

  take(event) {
    if (event.type === "hello") {
      if (this.seq === null || event.data.seq < this.seq) this.seq = event.data.seq;
      this.greeted();
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
}
