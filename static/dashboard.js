// The live sales dashboard of one show, for its brands (their products' share) and its host (all
// of it): tiles, a per-minute chart, the product table and the CSV, kept current by the sales feed.
import { $, api, clock, el, errorOf, money, pathId, report, saved, thumb } from "/static/lib/api.js";
import { minuteChart, minuteSlots } from "/static/lib/chart.js";
import { ReconnectingSocket } from "/static/lib/socket.js";

const TOKEN_KEY = "livecart.dashboard";
const STREAM_REFRESH_MS = 10000; // the show's state (going live is not in the feed)
const LOW_STOCK = 5;

const id = pathId();
const streamPath = `/api/streams/${encodeURIComponent(id)}`;
const salesPath = `${streamPath}/sales`;
const page = { token: null, you: null, stream: null, figures: null, feed: null, sort: { key: "gmv", down: true }, minute: 0, refresher: null };
window.e2e = Object.assign(window.e2e || { errors: [] }, { page });

const count = new Intl.NumberFormat();
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
const hhmm = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const plural = (n, one, many = `${one}s`) => `${count.format(n)} ${n === 1 ? one : many}`;

// Axis labels: the sale's currency without cents ($1.5K, $20).
const shortMoney = new Map();
function moneyShort(amount, currency) {
  let format = shortMoney.get(currency);
  if (!format) {
    try {
      format = new Intl.NumberFormat(undefined, { style: "currency", currency, notation: "compact", maximumFractionDigits: 1 });
    } catch {
      format = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
    }
    shortMoney.set(currency, format);
  }
  const digits = new Intl.NumberFormat(undefined, { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  return format.format(amount / 10 ** digits);
}

// -- the sales feed: static/lib/socket.js's WebSocket that comes back by itself ----------------
//
// The server sends a snapshot first (again after every reconnect), then deltas. A refusal
// before the upgrade reaches a browser only as a failed socket, so a socket that closed before
// its snapshot is followed by one plain request that says why (and whose figures keep the page
// current meanwhile).
class SalesFeed extends ReconnectingSocket {
  constructor(token, { onData, onState, onRefused }) {
    super(onState);
    Object.assign(this, { token, onData, onRefused });
    this.heard = false;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${salesPath}/ws?${new URLSearchParams({ token: this.token })}`;
  }

  connect() {
    this.heard = false;
    super.connect();
  }

  received(event) {
    if (!event || !event.data || (event.type !== "snapshot" && event.type !== "delta")) return;
    if (event.type === "snapshot") {
      this.heard = true;
      this.greeted();
    }
    try {
      this.onData(event.type, event.data);
    } catch (error) {
      report(`sales ${event.type}`, error);
    }
  }

  refused(reason) {
    this.stop();
    this.onRefused({ status: 401, message: reason });
  }

  lost() {
    if (this.heard) this.retry();
    else this.probe();
  }

  async probe() {
    try {
      const figures = await api("GET", salesPath, { token: this.token });
      if (!this.stopped) this.onData("snapshot", figures);
    } catch (error) {
      if (this.stopped) return;
      if ([401, 403, 404].includes(error.status)) {
        this.stop();
        this.onRefused(error);
        return;
      }
    }
    if (!this.stopped) this.retry();
  }

  stop() {
    super.stop();
    this.state = "stopped";
  }
}

// -- the token gate ------------------------------------------------------------------------------
function refusal(error, you = null) {
  if (error.status === 401) return "That token was not accepted.";
  if (error.status === 403) {
    const why = String(error.message || "").replace(/\.$/, "");
    return `This token${you ? ` (${you.name})` : ""} cannot see this show's sales${why ? `: ${why}` : ""}.`;
  }
  if (error.status === 404) return "This show does not exist: check the link.";
  return `Could not load the sales: ${error.message}`;
}

function showGate(message = "") {
  stop();
  $("#loading").hidden = true;
  $("#dashboard").hidden = true;
  $("#gate").hidden = false;
  $("#gate-error").hidden = !message;
  $("#gate-error").textContent = message;
  $("#token-input").focus();
}

$("#gate").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("#token-input").value.trim();
  if (!token) return;
  const button = $("#gate button[type=submit]");
  button.disabled = true;
  button.textContent = "Checking…";
  try {
    await open(token);
  } finally {
    button.disabled = false;
    button.textContent = "Open the dashboard";
  }
});

$("#sign-out").addEventListener("click", () => {
  saved.remove(TOKEN_KEY);
  $("#token-input").value = "";
  showGate();
});

async function open(token) {
  let stream, you, figures;
  try {
    stream = await api("GET", streamPath);
  } catch (error) {
    showGate(error.status === 404 ? "This show does not exist: check the link." : `Could not load the show: ${error.message}`);
    return;
  }
  try {
    you = await api("GET", "/api/me", { token });
    figures = await api("GET", salesPath, { token });
  } catch (error) {
    if (error.status === 401) saved.remove(TOKEN_KEY);
    showGate(refusal(error, you));
    return;
  }
  saved.set(TOKEN_KEY, token);
  Object.assign(page, { token, you, stream });
  take("snapshot", figures);
  $("#loading").hidden = true;
  $("#gate").hidden = true;
  $("#token-input").value = "";
  $("#dashboard").hidden = false;
  render();
  page.feed = new SalesFeed(token, {
    onData: take,
    onState: renderFeed,
    onRefused: (error) => {
      if (error.status === 401) saved.remove(TOKEN_KEY);
      showGate(refusal(error, page.you));
    },
  });
  window.e2e.feed = page.feed;
  page.feed.connect();
  page.refresher = setInterval(() => document.visibilityState === "visible" && refreshStream(), STREAM_REFRESH_MS);
}

function stop() {
  if (page.feed) page.feed.stop();
  page.feed = null;
  clearInterval(page.refresher);
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && page.feed) refreshStream();
});

async function refreshStream() {
  try {
    const stream = await api("GET", streamPath);
    if (page.stream && page.stream.state === "ended") stream.state = "ended";
    page.stream = stream;
    render();
  } catch (error) {
    // offline or restarting: the feed says so already, and the next refresh may succeed
    if (error.status >= 400 && error.status < 500) report("stream", error);
  }
}

// -- the figures: a snapshot replaces them, a delta carries only what changed ------------------
const BUMPED = ["gmv", "orders", "units", "conversion"];

function take(type, data) {
  const before = page.figures;
  const was = before && Object.fromEntries(BUMPED.map((key) => [key, before[key]]));
  if (type === "snapshot" || !before) {
    page.figures = { ...data, products: [...(data.products || [])], timeline: [...(data.timeline || [])] };
  } else {
    for (const [key, value] of Object.entries(data)) {
      if (key === "products") for (const row of value) upsert(before.products, row, (p) => p.product_id === row.product_id);
      else if (key === "timeline") for (const row of value) upsert(before.timeline, row, (m) => m.t === row.t, (m) => m.t > row.t);
      else before[key] = value;
    }
  }
  const f = page.figures;
  if (f.ended_at && page.stream && page.stream.state !== "ended") Object.assign(page.stream, { state: "ended", ended_at: f.ended_at });
  if (was && !$("#dashboard").hidden) for (const key of BUMPED) if (f[key] > was[key]) bump(`#tile-${key}`);
  render();
}

function upsert(rows, row, same, after = null) {
  const at = rows.findIndex(same);
  if (at >= 0) rows[at] = row;
  else if (after && rows.some(after)) rows.splice(rows.findIndex(after), 0, row);
  else rows.push(row);
}

function bump(selector) {
  const tile = $(selector);
  tile.classList.remove("up");
  void tile.offsetWidth; // restart the animation
  tile.classList.add("up");
}

// -- what the page shows ----------------------------------------------------------------------
function render() {
  if (!page.stream || !page.figures || $("#dashboard").hidden) return;
  renderHead();
  renderTiles();
  renderReplay();
  renderChart();
  renderTable();
}

function renderHead() {
  const s = page.stream;
  $("#title").textContent = s.title;
  document.title = `Dashboard: ${s.title} — livecart`;
  const badge = $("#badge");
  badge.className = `badge ${s.state}`;
  badge.textContent = { live: "Live", scheduled: "Starts soon", ended: "Ended" }[s.state] || s.state;
  const whose = page.you.role === "brand" ? `${page.you.name}'s products` : "the whole show";
  $("#scope").textContent = s.host_name ? `Hosted by ${s.host_name} · ${whose}` : whose[0].toUpperCase() + whose.slice(1);
  $("#products-title").textContent = page.you.role === "brand" ? "Your products" : "Products";
  if (page.feed) renderFeed(page.feed.state);
  renderTimer();
}

function renderTimer() {
  const s = page.stream;
  const now = Date.now() / 1000;
  let text = "";
  if (s.state === "live" && s.started_at) text = clock(now - s.started_at);
  else if (s.state === "ended" && s.started_at && s.ended_at) text = `ran ${clock(s.ended_at - s.started_at)}`;
  $("#timer").textContent = text;
}

function renderFeed(state) {
  const box = $("#feed");
  box.dataset.state = state;
  const ended = page.stream && page.stream.state === "ended";
  box.classList.toggle("final", Boolean(ended));
  $("#feed-text").textContent = { open: ended ? "Final figures" : "Updating live", connecting: "Connecting…", reconnecting: "Reconnecting…" }[state] || "Offline";
}

function thisMinute() {
  const start = Math.floor(Date.now() / 60000) * 60;
  return page.figures.timeline.find((m) => m.t === start) || { orders: 0, gmv: 0 };
}

function setTile(key, value, sub, subClass = "") {
  $(`#${key}`).textContent = value;
  const line = $(`#${key}-sub`);
  line.textContent = sub;
  line.className = `sub ${subClass}`;
}

function renderTiles() {
  const f = page.figures;
  const s = page.stream;
  const running = s.state !== "ended";
  const minute = thisMinute();
  const cur = f.currency;
  const orders = f.orders || 0;
  const buyers = f.buyers || 0;
  const unique = f.viewers_unique || 0;

  if (running && minute.gmv > 0) setTile("gmv", money(f.gmv, cur), `+${money(minute.gmv, cur)} this minute`, "up");
  else setTile("gmv", money(f.gmv, cur), orders ? `${money(Math.round(f.gmv / orders), cur)} per order` : "No sales yet");

  if (running && minute.orders > 0) setTile("orders", count.format(orders), `+${count.format(minute.orders)} this minute`, "up");
  else setTile("orders", count.format(orders), orders ? `from ${plural(buyers, "buyer")}` : "No orders yet");

  setTile("units", count.format(f.units || 0), orders ? `${decimal.format(f.units / orders)} per order` : `${plural(f.products.length, "product")} on sale`);

  setTile("conversion", percent.format(f.conversion || 0), unique ? `${plural(buyers, "buyer")} · ${plural(unique, "viewer")}` : "No viewers yet");

  const peak = f.viewers_peak || 0;
  if (s.state === "live") {
    $("#viewers-label").textContent = "Watching now";
    setTile("viewers", count.format(f.viewers_now ?? s.viewers ?? 0), `peak ${count.format(peak)} · ${count.format(unique)} unique`);
  } else {
    $("#viewers-label").textContent = "Peak viewers";
    setTile("viewers", count.format(peak), unique ? `${count.format(unique)} unique` : "No viewers yet");
  }
}

// After the show: what its replay has done since, apart from the show's own (frozen) figures.
function renderReplay() {
  const r = page.figures.replay;
  const box = $("#replay");
  box.hidden = page.stream.state !== "ended" || !r;
  if (box.hidden) return;
  $("#replay-views").textContent = count.format(r.views);
  $("#replay-orders").textContent = count.format(r.orders);
  $("#replay-units").textContent = count.format(r.units);
  $("#replay-gmv").textContent = money(r.gmv, page.figures.currency);
  $("#replay-conversion").textContent = r.views ? percent.format(r.conversion) : "–";
}

function renderChart() {
  const box = $("#chart");
  const width = Math.floor(box.clientWidth);
  if (!width) return;
  const f = page.figures;
  const s = page.stream;
  const now = Date.now() / 1000;
  const ended = s.state === "ended";
  const narrow = width < 560;
  const slots = minuteSlots(f.timeline, {
    start: s.started_at,
    end: ended ? f.ended_at || s.ended_at || now : now,
    least: ended ? 5 : narrow ? 10 : 20, // a running show's chart fills up; an ended one fits its length
    most: narrow ? 20 : 60,
  });
  const per = slots[0].minutes;
  const title = per > 1 ? `Sales per ${per} minutes` : "Sales per minute";
  $("#chart-title").textContent = title;
  const shown = slots.filter((slot) => !slot.ahead);
  const cur = f.currency;
  const chart = minuteChart(slots, {
    width,
    height: Math.floor(box.clientHeight) || 240,
    now: ended ? null : shown[shown.length - 1].t,
    label: title,
    format: {
      money: (v) => money(v, cur),
      moneyShort: (v) => moneyShort(v, cur),
      count: (n) => count.format(n),
      time: (t) => hhmm.format(new Date(t * 1000)),
    },
  });
  box.replaceChildren(chart);
  box.dataset.width = String(width);
  $("#chart-empty").hidden = f.timeline.some((m) => m.orders > 0);
}

new ResizeObserver(() => {
  if (page.figures && String(Math.floor($("#chart").clientWidth)) !== $("#chart").dataset.width) renderChart();
}).observe($("#chart"));

function stockCell(remaining) {
  if (remaining <= 0) return el("span", { className: "pill out" }, "Sold out");
  const n = el("span", {}, count.format(remaining));
  return remaining <= LOW_STOCK ? el("span", { className: "stock low" }, n, el("span", { className: "pill low" }, "Low")) : n;
}

function sellCell(share) {
  const fill = el("i");
  fill.style.width = `${Math.round(share * 100)}%`;
  return el("span", { className: "sell" }, el("span", { className: "meter", "aria-hidden": "true" }, fill), el("span", { className: "num" }, percent.format(share)));
}

function renderTable() {
  const f = page.figures;
  const cur = f.currency;
  const cards = new Map((page.stream.products || []).map((p) => [p.id, p]));
  const rows = f.products.map((p) => ({ ...p, sell: p.units + p.remaining > 0 ? p.units / (p.units + p.remaining) : 0 }));
  const { key, down } = page.sort;
  rows.sort((a, b) => {
    const order = key === "title" ? a.title.localeCompare(b.title) : a[key] - b[key];
    return (down ? -order : order) || b.gmv - a.gmv || a.title.localeCompare(b.title);
  });
  $("#products tbody").replaceChildren(
    ...rows.map((p) =>
      el(
        "tr",
        { dataset: { product: p.product_id } },
        el("td", { className: "text" }, el("div", { className: "product" }, thumb(cards.get(p.product_id) || { title: p.title }), el("span", { className: "t" }, p.title))),
        el("td", { className: "num opt" }, count.format(p.orders)),
        el("td", { className: "num" }, count.format(p.units)),
        el("td", { className: "num strong" }, money(p.gmv, cur)),
        el("td", { className: "num" }, stockCell(p.remaining)),
        el("td", { className: "opt" }, sellCell(p.sell)),
      ),
    ),
  );
  if (!rows.length) $("#products tbody").append(el("tr", {}, el("td", { colSpan: 6, className: "empty" }, "No products in this show.")));
  const selling = rows.filter((p) => p.units > 0).length;
  $("#products-note").textContent = selling ? `${count.format(selling)} of ${plural(rows.length, "product")} selling` : "No sales yet";
  for (const th of document.querySelectorAll("#products th")) {
    if (th.dataset.key === key) th.setAttribute("aria-sort", down ? "descending" : "ascending");
    else th.removeAttribute("aria-sort");
  }
}

for (const th of document.querySelectorAll("#products th")) {
  $("button", th).addEventListener("click", () => {
    const key = th.dataset.key;
    page.sort = { key, down: page.sort.key === key ? !page.sort.down : key !== "title" };
    renderTable();
  });
}

// -- the CSV: fetched with the token in a header, saved from a Blob (a token never goes in a link)
$("#csv").addEventListener("click", async () => {
  const button = $("#csv");
  button.disabled = true;
  $("#dash-error").hidden = true;
  try {
    const response = await fetch(`${salesPath}.csv`, { headers: { Authorization: `Bearer ${page.token}` } });
    if (!response.ok) throw await errorOf(response);
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: `sales-${id}.csv`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (error) {
    $("#dash-error").hidden = false;
    $("#dash-error").textContent = `Could not download the CSV: ${error.status === 403 ? "this token cannot see this show's sales" : error.message}.`;
  } finally {
    button.disabled = false;
  }
});

// the clock in the header, and a new minute's slot in the chart while the show runs
setInterval(() => {
  if (!page.figures || $("#dashboard").hidden) return;
  renderTimer();
  const minute = Math.floor(Date.now() / 60000);
  if (minute !== page.minute) {
    page.minute = minute;
    renderTiles();
    renderChart();
  }
}, 1000);

page.token = saved.get(TOKEN_KEY);
if (page.token) open(page.token);
else showGate();
