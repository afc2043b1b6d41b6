// The viewer's page: the show over WHEP, the room's events over one WebSocket, Buy in a sheet.
import { $, api, clock, compact, el, icon, money, pathId, report, saved, thumb } from "/static/lib/api.js";
import { BuySheet, checkedViewer, keptViewer } from "/static/lib/sheet.js";
import { Room } from "/static/lib/room.js";
import { Player } from "/static/lib/webrtc.js";
import { HlsPlayer } from "/static/lib/hls.js";

// WebRTC first; the stream's LL-HLS when WebRTC's seats are taken or it does not connect
const WEBRTC_PATIENCE_MS = 10000;

const CHAT_LINES = 40;
const TICKER_MS = 4000;
const LIKE_FLUSH_MS = 300;
const SOLD_OUT_LINGER_S = 15;

const id = pathId();
const page = {
  stream: null,
  me: keptViewer(),
  anon: anonId(),
  room: null,
  player: null,
  likesPending: 0,
  likesMine: 0,
  hearts: 0,
  ticker: null,
  buy: null, // the Buy sheet
};
window.e2e = Object.assign(window.e2e || { errors: [] }, { page });

function anonId() {
  let anon = saved.get("livecart.anon");
  if (!anon || !/^[A-Za-z0-9_-]{16,64}$/.test(anon)) {
    anon = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
    saved.set("livecart.anon", anon);
  }
  return anon;
}

// -- what the page shows of the stream ------------------------------------------------------
function product(productId) {
  const s = page.stream;
  return (s.pinned && s.pinned.id === productId ? s.pinned : null) || s.products.find((p) => p.id === productId) || null;
}

// The sale a viewer sees on the card: a running one; a sold-out one until its end and for a
// little while after the last unit went (the card says "Sold out" rather than vanishing).
function currentSale() {
  const sale = page.stream.sale;
  if (!sale) return null;
  const now = Date.now() / 1000;
  if (sale.remaining === 0 && sale.state !== "live") return now < sale.ends_at + SOLD_OUT_LINGER_S ? sale : null;
  return sale.state !== "ended" && now < sale.ends_at ? sale : null;
}

function featured() {
  const s = page.stream;
  if (s.pinned) return s.pinned;
  const sale = currentSale();
  return sale ? product(sale.product_id) : null;
}

function shownSale(item) {
  const sale = currentSale();
  return sale && item && sale.product_id === item.id ? sale : null;
}

// The sale an order placed now would be priced by: running (or out of units only until a hold
// returns), never one that is over.
function buyableSale(item) {
  const sale = page.stream.sale;
  const running = sale && sale.state !== "ended" && Date.now() / 1000 < sale.ends_at;
  return running && item && sale.product_id === item.id ? sale : null;
}

function renderHeader() {
  const s = page.stream;
  const host = s.host_name || "Host";
  $("#host").textContent = host;
  $("#avatar").textContent = host.slice(0, 1).toUpperCase();
  $("#title").textContent = s.title;
  document.title = `${s.title} — livecart`;
  const badge = $("#badge");
  badge.hidden = false;
  badge.className = `badge ${s.state}`;
  badge.textContent = { live: "Live", scheduled: "Soon", ended: "Ended" }[s.state] || s.state;
  renderViewers();
}

function renderViewers() {
  const box = $("#viewers");
  box.hidden = page.stream.state !== "live";
  box.replaceChildren(icon("eye"), compact.format(page.stream.viewers || 0));
  box.setAttribute("aria-label", `${page.stream.viewers || 0} watching`);
}

function renderProduct() {
  const card = $("#product");
  const item = featured();
  if (!item) {
    card.hidden = true;
    card.dataset.sale = "";
    card.replaceChildren();
    return;
  }
  const sale = shownSale(item);
  const left = sale ? sale.remaining : item.stock;
  const soldOut = left <= 0;
  const ended = page.stream.state === "ended";
  const focused = document.activeElement && document.activeElement.id === "buy"; // keep it across the re-render
  const meta = el("div", { className: "meta" });
  if (sale) {
    meta.append(el("span", { className: "hot" }, icon("bolt"), "Flash sale"));
    if (!soldOut) meta.append(el("span", { className: "countdown num", id: "countdown" }));
  }
  if (sale || left <= 20) meta.append(el("span", { className: "left num", id: "left" }, soldOut ? "Sold out" : `${left} left`));
  card.replaceChildren(
    thumb(item),
    el(
      "div",
      { className: "info" },
      el("span", { className: "t" }, item.title),
      el(
        "span",
        { className: "price" },
        money(sale ? sale.price : item.price, item.currency),
        sale ? el("span", { className: "was", "aria-label": `was ${money(item.price, item.currency)}` }, money(item.price, item.currency)) : null,
      ),
      meta,
    ),
    el("button", { className: "primary buy", id: "buy", type: "button", disabled: soldOut || ended, onclick: () => page.buy.open(item) }, soldOut ? "Sold out" : "Buy"),
  );
  card.hidden = false;
  if (focused) $("#buy").focus();
  card.dataset.product = item.id;
  card.dataset.sale = sale ? sale.id : "";
  // an open Buy sheet shows the price the order will be made at, whatever just changed
  page.buy.refresh();
  tickCountdown();
}

function tickCountdown() {
  if (!page.stream) return;
  const sale = currentSale();
  if ((sale ? sale.id : "") !== ($("#product").dataset.sale || "")) {
    renderProduct(); // a sale began or is over: the card changes
    return;
  }
  const box = $("#countdown");
  if (box && sale) box.textContent = `ends in ${clock(sale.ends_at - Date.now() / 1000)}`;
}

function renderState() {
  const message = $("#state-msg");
  const s = page.stream;
  const playing = page.player && page.player.state === "live";
  let text = "";
  if (page.room && page.room.state === "refused") text = "You can no longer join this show's chat.";
  else if (s.state === "scheduled") text = "Starts soon — stay here, it begins by itself.";
  else if (s.state === "ended") text = "The show has ended. Thanks for watching!";
  else if (page.noHls && !playing) text = "Still connecting… This show plays in real time only (its video is VP8, with no HLS stream to fall back on); a network that blocks real-time video cannot show it.";
  else if (page.player && page.player.state === "reconnecting") text = "Reconnecting…";
  else if (page.room && page.room.state === "reconnecting") text = "Reconnecting…";
  else if (!playing) text = "Connecting to the show…";
  message.hidden = !text;
  message.textContent = text;
  message.dataset.state = text ? (s.state === "live" ? (page.player?.state || "connecting") : s.state) : "playing";
  offerReplay();
  $("#unmute").hidden = !(playing && $("#video").muted);
}

// An ended show that was recorded: a link to its replay (asked once).
async function offerReplay() {
  if (page.stream.state !== "ended" || page.replayAsked) return;
  page.replayAsked = true;
  const url = `/api/streams/${encodeURIComponent(id)}/hls/replay.m3u8`;
  const response = await fetch(url).catch(() => null);
  if (!response || !response.ok) return;
  const link = $("#replay-link");
  link.href = `/replay/${encodeURIComponent(id)}`;
  link.hidden = false;
}

function renderAll() {
  renderHeader();
  renderProduct();
  renderState();
}

// -- video ----------------------------------------------------------------------------------
function renderTransport() {
  const box = $("#transport");
  const kind = page.player ? page.player.kind : null;
  box.hidden = !kind;
  box.dataset.transport = kind || "";
  box.textContent = kind === "hls" ? "HLS" : "WebRTC";
  box.title = kind === "hls" ? "Playing over HLS: a few seconds behind the host" : "Playing in real time (WebRTC)";
}

// The page's one player: WebRTC or HLS, whichever plays; a failure other than "seats taken"
// is reported and the room's next `stream` event starts a player again.
function play(kind, Kind, options) {
  const player = new Kind({
    ...options,
    video: $("#video"),
    onState: (state, detail) => {
      if (player !== page.player) return;
      if (state === "failed" && kind === "webrtc" && detail && detail.code === "webrtc_full") {
        startHls(); // the front row is full: the same show over HLS
        return;
      }
      if (state === "failed") {
        report("video", detail);
        page.player = null;
      }
      renderState();
    },
  });
  player.kind = kind;
  page.player = window.e2e.player = player;
  player.start();
  renderTransport();
  return player;
}

function startWebrtc() {
  const player = play("webrtc", Player, { url: `/api/streams/${encodeURIComponent(id)}/whep`, token: page.me && page.me.token });
  clearTimeout(page.patience);
  page.patience = setTimeout(async () => {
    // WebRTC has not connected (a network that blocks UDP, say): HLS, if the show has it
    if (page.player !== player || player.state === "live") return;
    const response = await fetch(hlsUrl(), { method: "GET" }).catch(() => null);
    if (response && response.ok && page.player === player) startHls();
    else if (response && response.status === 409) {
      page.noHls = true; // a VP8 show the server does not transcode: WebRTC is all there is
      renderState();
    }
  }, WEBRTC_PATIENCE_MS);
}

function hlsUrl() {
  return `/api/streams/${encodeURIComponent(id)}/hls/live.m3u8`;
}

function startHls() {
  clearTimeout(page.patience);
  if (page.player) page.player.stop({ tell: true });
  play("hls", HlsPlayer, { url: hlsUrl() });
}

function syncPlayer() {
  const live = page.stream.state === "live";
  if (live && !page.player) {
    startWebrtc();
  } else if (!live && page.player) {
    clearTimeout(page.patience);
    page.player.stop({ tell: page.stream.state === "ended" });
    page.player = null;
    $("#video").srcObject = null;
  }
  renderTransport();
  renderState();
}

$("#unmute").addEventListener("click", () => {
  const video = $("#video");
  video.muted = false;
  video.play().catch(() => {});
  renderState();
});
$("#video").addEventListener("playing", renderState);

// -- chat -----------------------------------------------------------------------------------
function addLine(line, { system = false } = {}) {
  const list = $("#chat");
  if (line.id && list.querySelector(`[data-id="${CSS.escape(line.id)}"]`)) return;
  const who = system ? null : el("span", { className: `who ${line.user.role === "host" ? "host" : ""}` }, line.user.name);
  const li = el("li", { className: system ? "system" : "", dataset: line.id ? { id: line.id, user: line.user.id } : {} }, el("span", { className: "chat-line" }, who, line.text));
  list.append(li);
  while (list.children.length > CHAT_LINES) list.firstElementChild.remove();
}

function say(text) {
  addLine({ text }, { system: true });
}

$("#chat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("#chat-input");
  const text = input.value.trim();
  if (!text) return;
  if (!page.me) {
    openName("chat", () => send(text));
    return;
  }
  send(text);
});

// Sends `text`; the input is cleared only if it still holds that text (a line sent after the
// name step must not wipe what the person has typed since).
function send(text) {
  const input = $("#chat-input");
  if (!page.room.send({ type: "chat", text })) say("Not connected — your message was not sent. Reconnecting…");
  else if (input.value.trim() === text) input.value = "";
}

// -- hearts ---------------------------------------------------------------------------------
function floatHearts(count) {
  const box = $("#hearts-box");
  for (let i = 0; i < Math.min(count, 6); i += 1) {
    const heart = el("span", { className: `floating-heart hue-${i % 3}`, "aria-hidden": "true" }, icon("heart"));
    heart.style.setProperty("--dx", `${Math.round(Math.random() * 50 - 25)}px`);
    heart.style.animationDelay = `${i * 120}ms`;
    heart.addEventListener("animationend", () => heart.remove());
    box.append(heart);
  }
}

function renderHearts() {
  $("#hearts").textContent = page.hearts ? compact.format(page.hearts) : "";
}

$("#heart").addEventListener("click", () => {
  if (!page.me) {
    openName("like", () => {});
    return;
  }
  page.likesPending += 1;
  floatHearts(1);
});

setInterval(() => {
  if (!page.likesPending || !page.room) return;
  const count = Math.min(page.likesPending, 50);
  if (page.room.send({ type: "like", count })) {
    page.likesPending -= count;
    page.likesMine += count;
  }
}, LIKE_FLUSH_MS);

// -- the room's events ----------------------------------------------------------------------
const handlers = {
  hello({ stream, you }) {
    page.stream = stream;
    if (you) page.you = you;
    renderAll();
    syncPlayer();
  },
  chat: (line) => addLine(line),
  likes({ count, total }) {
    page.hearts = total;
    const others = count - page.likesMine;
    page.likesMine = Math.max(0, page.likesMine - count);
    if (others > 0) floatHearts(others);
    renderHearts();
  },
  pin({ product: item }) {
    page.stream.pinned = item;
    renderProduct();
  },
  unpin() {
    page.stream.pinned = null;
    renderProduct();
  },
  sale(sale) {
    page.stream.sale = sale;
    renderProduct();
  },
  sale_end(sale) {
    page.stream.sale = sale;
    renderProduct();
  },
  stock({ product_id: productId, remaining }) {
    const s = page.stream;
    if (s.sale && s.sale.product_id === productId && currentSale()) s.sale.remaining = remaining;
    else for (const item of [s.pinned, ...s.products]) if (item && item.id === productId) item.stock = remaining;
    renderProduct();
  },
  purchase({ name, product_id: productId, quantity }) {
    const item = product(productId);
    const what = item ? item.title : "something";
    showTicker(`${name} just bought ${quantity > 1 ? `${quantity} × ` : ""}${what}`);
  },
  viewers({ count }) {
    page.stream.viewers = count;
    renderViewers();
  },
  moderation({ action, message_id: messageId, user_id: userId }) {
    const list = $("#chat");
    if (action === "delete" && messageId) list.querySelector(`[data-id="${CSS.escape(messageId)}"]`)?.remove();
    if (action === "ban" && userId) list.querySelectorAll(`[data-user="${CSS.escape(userId)}"]`).forEach((li) => li.remove());
    if (page.me && userId === page.me.id) say(action === "mute" ? "The host has muted you for a while." : action === "ban" ? "The host has removed you from this chat." : "");
  },
  stream({ state }) {
    page.stream.state = state;
    if (state !== "live") page.stream.viewers = 0;
    renderAll();
    syncPlayer();
  },
  async resync() {
    try {
      page.stream = await api("GET", `/api/streams/${encodeURIComponent(id)}`);
      renderAll();
      syncPlayer();
    } catch (error) {
      report("resync", error);
    }
  },
  error({ code, message }) {
    if (code === "read_only") openName("chat", () => {});
    else say(message);
  },
};

function showTicker(text) {
  const ticker = $("#ticker");
  ticker.textContent = text;
  ticker.hidden = false;
  clearTimeout(page.ticker);
  page.ticker = setTimeout(() => {
    ticker.hidden = true;
  }, TICKER_MS);
}

// -- the sheet (static/lib/sheet.js): a name, then Buy → quantity → pay → the order's state ----
async function joined(me) {
  page.me = me;
  page.room.useToken(me && me.token);
  if (!me) return;
  await new Promise((resolve) => setTimeout(resolve, 0));
  // after a token change the socket reconnects: wait (bounded) until it is open again
  for (let i = 0; i < 50 && page.room.state !== "open"; i += 1) await new Promise((r) => setTimeout(r, 100));
}

function openName(reason, then) {
  page.buy.askName(reason, then);
}

// -- events with the picture ------------------------------------------------------------------
// HLS plays a second or more behind the host. What the host *shows* (a pin, a sale opening or
// ending, "… just bought") waits until the picture this page plays reaches the moment it
// happened: the event's `ts` against the playlist's program date-time, both the server's clock.
// Chat and everything else stay immediate; nothing is held longer than MAX_HOLD_MS.
const WITH_PICTURE = new Set(["pin", "unpin", "sale", "sale_end", "purchase"]);
const MAX_HOLD_MS = 15000;

function apply(event) {
  if (handlers[event.type]) handlers[event.type](event.data);
}

function onRoomEvent(event) {
  const player = page.player;
  if (WITH_PICTURE.has(event.type) && player && player.kind === "hls" && event.ts) {
    page.held.push({ event, received: Date.now() });
    releaseHeld();
    return;
  }
  apply(event);
}

function releaseHeld() {
  const player = page.player;
  const hls = player && player.kind === "hls";
  const at = hls ? player.playingAt() : null;
  while (page.held.length) {
    const { event, received } = page.held[0];
    const reached = at !== null && at >= event.ts * 1000;
    if (hls && !reached && Date.now() - received < MAX_HOLD_MS) break;
    page.held.shift();
    window.e2e.released.push({ type: event.type, ts: event.ts, at, received, applied: Date.now() });
    apply(event);
  }
}

page.held = [];
window.e2e.released = [];
setInterval(releaseHeld, 100);

// -- start ----------------------------------------------------------------------------------
async function start() {
  try {
    page.stream = await api("GET", `/api/streams/${encodeURIComponent(id)}`);
  } catch (error) {
    const message = $("#state-msg");
    message.textContent = error.status === 404 ? "This show does not exist (or the link is incomplete)." : `Could not load the show: ${error.message}`;
    message.dataset.state = "missing";
    if (error.status !== 404) setTimeout(start, 3000);
    return;
  }
  renderAll();
  page.me = page.buy.me = await checkedViewer();
  page.room = new Room(id, {
    token: page.me && page.me.token,
    anon: page.anon,
    onEvent: onRoomEvent,
    onState: () => page.stream && renderState(),
  });
  window.e2e.room = page.room;
  page.room.connect();
  syncPlayer();
  setInterval(tickCountdown, 1000);
}

page.buy = new BuySheet({ streamId: id, product, saleFor: buyableSale, joined, me: page.me });
start();
