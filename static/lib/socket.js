// A WebSocket that comes back by itself: the room's and the sales feed's.
//
// Waits between tries grow from 0.5 s to 8 s, with jitter, so a server restart is not met by
// every page at once; they start again from 0.5 s once the server has greeted the socket (its
// `hello` or first snapshot: the subclass calls `greeted()`). A 1008 close is a refusal (a ban,
// a token no longer good): the page is told and nothing is retried. A subclass says where to
// connect (`url()`) and what a message means (`received(parsed)`); it may also change what a
// refusal (`refused(reason)`) or a lost socket (`lost()`) does.

const FIRST_WAIT_MS = 500;
const LONGEST_WAIT_MS = 8000;

export class ReconnectingSocket {
  constructor(onState) {
    this.onState = onState || (() => {});
    this.ws = null;
    this.state = "idle";
    this.stopped = false;
    this.wait = FIRST_WAIT_MS;
    this.timer = null;
    this.reconnects = 0;
  }

  setState(state, detail = null) {
    this.state = state;
    this.onState(state, detail);
  }

  connectingState() {
    return this.reconnects ? "reconnecting" : "connecting";
  }

  connect() {
    this.stopped = false;
    clearTimeout(this.timer);
    const ws = new WebSocket(this.url());
    this.ws = ws;
    this.setState(this.connectingState());
    ws.onmessage = (message) => {
      if (ws !== this.ws) return;
      let parsed;
      try {
        parsed = JSON.parse(message.data);
      } catch {
        return;
      }
      this.received(parsed);
    };
    ws.onclose = (closed) => {
      if (ws !== this.ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (closed.code === 1008) {
        this.refused(closed.reason);
        return;
      }
      this.setState("reconnecting");
      this.lost();
    };
  }

  greeted() {
    this.wait = FIRST_WAIT_MS;
    this.setState("open");
  }

  refused(reason) {
    this.setState("refused", reason);
  }

  lost() {
    this.retry();
  }

  retry() {
    const jittered = this.wait * (0.5 + Math.random() * 0.5);
    this.wait = Math.min(this.wait * 2, LONGEST_WAIT_MS);
    this.reconnects += 1;
    this.timer = setTimeout(() => this.connect(), jittered);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
  }
}
