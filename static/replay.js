// A show's replay: the recording over HLS, and what happened in the show (the pinned product,
// flash sales, chat, "… just bought") shown as the picture reaches it, from its timeline. Seeking
// jumps the page to that moment: everything is worked out again from the events before it. The
// product on screen can be bought at its price today (the show's flash sales are over).
import { $, api, el, icon, money, pathId, report, thumb } from "/static/lib/api.js";
import { HlsPlayer } from "/static/lib/hls.js";
import { BuySheet, checkedViewer } from "/static/lib/sheet.js";

const CHAT_LINES = 40;
const TICKER_S = 4;

const id = pathId();
const page = { stream: null, timeline: null, player: null, shown: "", buy: null, counted: false };
window.e2e = Object.assign(window.e2e || { errors: [] }, { page });

// What the show looked like at `t` seconds into the recording.
function momentAt(t) {
  const moment = { pinned: null, sale: null, chat: [], bought: null };
  for (const event of page.timeline.events) {
    if (event.offset > t) break;
    const data = event.data;
    if (event.type === "pin") moment.pinned = data.product;
    else if (event.type === "unpin") moment.pinned = null;
    else if (event.type === "sale") moment.sale = data;
    else if (event.type === "sale_end" && moment.sale && moment.sale.id === data.id) moment.sale = null;
    else if (event.type === "chat") moment.chat.push(data);
    else if (event.type === "purchase" && t - event.offset < TICKER_S) moment.bought = data;
  }
  moment.chat = moment.chat.slice(-CHAT_LINES);
  return moment;
}

function product(productId) {
  return page.stream.products.find((p) => p.id === productId) || null;
}

function render() {
  const t = $("#video").currentTime || 0;
  const moment = momentAt(t);
  const item = moment.pinned || (moment.sale && product(moment.sale.product_id));
  const key = JSON.stringify([item && item.id, moment.sale && moment.sale.id, moment.chat.length, moment.bought]);
  if (key === page.shown) return;
  page.shown = key;
  page.moment = moment;
  renderProduct(item, moment.sale);
  $("#chat").replaceChildren(
    ...moment.chat.map((line) => el("li", { dataset: { id: line.id } }, el("span", { className: "chat-line" }, el("span", { className: `who ${line.user.role === "host" ? "host" : ""}` }, line.user.name), line.text))),
  );
  const ticker = $("#ticker");
  ticker.hidden = !moment.bought;
  if (moment.bought) {
    const what = product(moment.bought.product_id);
    ticker.textContent = `${moment.bought.name} just bought ${what ? what.title : "this"}`;
  }
}

// The product as it was shown, at its price today (a replay's flash sale is over), with Buy.
function renderProduct(item, sale) {
  const card = $("#product");
  card.hidden = !item;
  card.dataset.product = item ? item.id : "";
  if (!item) {
    card.replaceChildren();
    return;
  }
  const current = product(item.id) || item;
  const soldOut = current.stock <= 0;
  const meta = el("div", { className: "meta" });
  if (sale && sale.product_id === item.id) meta.append(el("span", { className: "hot" }, icon("bolt"), `Flash sale in the show: ${money(sale.price, current.currency)}`));
  if (current.stock <= 20) meta.append(el("span", { className: "left num" }, soldOut ? "Sold out" : `${current.stock} left`));
  const focused = document.activeElement && document.activeElement.id === "buy";
  card.replaceChildren(
    thumb(current),
    el("div", { className: "info" }, el("span", { className: "t" }, current.title), el("span", { className: "price" }, money(current.price, current.currency)), meta),
    el("button", { className: "primary buy", id: "buy", type: "button", disabled: soldOut, onclick: () => page.buy.open(current) }, soldOut ? "Sold out" : "Buy"),
  );
  if (focused) $("#buy").focus();
}

// One view per play of the replay, counted for the brands' figures (not per seek or reload of
// the playlist): said once, when the picture first moves.
function countView() {
  if (page.counted) return;
  page.counted = true;
  api("POST", `/api/streams/${encodeURIComponent(id)}/replay/views`).catch((error) => report("replay view", error));
}

async function start() {
  const message = $("#state-msg");
  try {
    page.stream = await api("GET", `/api/streams/${encodeURIComponent(id)}`);
    page.timeline = await api("GET", `/api/streams/${encodeURIComponent(id)}/timeline`);
  } catch (error) {
    message.textContent = error.status === 404 ? "This show has no replay (yet: it is ready when the show ends)." : `Could not load the replay: ${error.message}`;
    message.dataset.state = "missing";
    return;
  }
  const s = page.stream;
  $("#host").textContent = s.host_name || "Host";
  $("#avatar").textContent = (s.host_name || "H").slice(0, 1).toUpperCase();
  $("#title").textContent = s.title;
  document.title = `${s.title} (replay) — livecart`;
  page.buy = new BuySheet({ streamId: id, product, me: await checkedViewer() });
  const video = $("#video");
  page.player = new HlsPlayer({
    url: `/api/streams/${encodeURIComponent(id)}/hls/replay.m3u8`,
    video,
    onState: (state) => {
      message.hidden = state === "live";
      message.textContent = state === "failed" ? "This browser cannot play the replay." : "Loading the replay…";
    },
  });
  window.e2e.player = page.player;
  page.player.start();
  for (const kind of ["timeupdate", "seeked", "loadedmetadata"]) video.addEventListener(kind, render);
  video.addEventListener("playing", countView);
  render();
}

start();
