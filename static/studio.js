// The host's studio: preview and devices, Go live / End over WHIP, lineup, flash sales, chat.
import { $, api, clock, compact, el, icon, majorUnits, minorUnits, money, pathId, report, saved, thumb } from "/static/lib/api.js";
import { Room } from "/static/lib/room.js";
import { Publisher } from "/static/lib/webrtc.js";

const TOKEN_KEY = "livecart.host";
const HELLO_TIMEOUT_MS = 8000;
const MUTE_S = 600;

const id = pathId();
const page = { stream: null, token: saved.get(TOKEN_KEY), you: null, room: null, media: null, publisher: null, hearts: 0, sold: 0 };
window.e2e = Object.assign(window.e2e || { errors: [] }, { page });
const streamPath = `/api/streams/${encodeURIComponent(id)}`;

// -- the token gate: the room's hello says who the token belongs to --------------------------
function showGate(message = "") {
  $("#studio").hidden = true;
  $("#gate").hidden = false;
  $("#gate-error").hidden = !message;
  $("#gate-error").textContent = message;
  $("#token-input").focus();
}

$("#gate").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("#token-input").value.trim();
  if (!token) return;
  await open(token);
});

$("#sign-out").addEventListener("click", () => {
  saved.remove(TOKEN_KEY);
  location.reload();
});

async function open(token) {
  try {
    page.stream = await api("GET", streamPath);
  } catch (error) {
    showGate(error.status === 404 ? "This stream does not exist: check the link." : `Could not load the stream: ${error.message}`);
    return;
  }
  let you;
  try {
    you = await api("GET", "/api/me", { token });
  } catch (error) {
    if (error.status === 401) saved.remove(TOKEN_KEY);
    showGate(error.status === 401 ? "That token was not accepted." : `Could not check the token: ${error.message}`);
    return;
  }
  if (you.id !== page.stream.host_id) {
    showGate(`This token belongs to ${you.name}, not to this stream's host.`);
    return;
  }
  try {
    await connect(token);
  } catch (error) {
    showGate(error.message);
    return;
  }
  page.token = token;
  page.you = you;
  saved.set(TOKEN_KEY, token);
  $("#gate").hidden = true;
  $("#studio").hidden = false;
  renderAll();
  await preview();
}

// Resolves with the room's first hello (the socket keeps reconnecting by itself meanwhile).
function connect(token) {
  return new Promise((resolve, reject) => {
    let first = true;
    const timer = setTimeout(() => {
      room.stop();
      reject(new Error("The server's live events did not answer; try again."));
    }, HELLO_TIMEOUT_MS);
    const room = new Room(id, {
      token,
      onEvent: (event) => {
        if (event.type === "hello" && first) {
          first = false;
          clearTimeout(timer);
          resolve(event.data);
        }
        handle(event);
      },
      onState: () => renderLive(),
    });
    page.room = room;
    window.e2e.room = room;
    room.connect();
  });
}

// -- camera and microphone -------------------------------------------------------------------
async function preview() {
  const camera = $("#camera").value;
  const microphone = $("#microphone").value;
  const constraints = {
    video: camera ? { deviceId: { exact: camera } } : { width: { ideal: 1280 }, height: { ideal: 720 } },
    audio: microphone ? { deviceId: { exact: microphone } } : true,
  };
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia(constraints);
  } catch (error) {
    showMessage(`No camera or microphone: ${error.message}. Allow them in the browser, or stream from OBS with the WHIP URL.`);
    report("camera", error);
    return;
  }
  if (page.media) page.media.getTracks().forEach((t) => t.stop());
  page.media = media;
  $("#preview").srcObject = media;
  if (page.publisher) page.publisher.setMedia(media);
  showMessage("");
  await listDevices();
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, select] of [["videoinput", $("#camera")], ["audioinput", $("#microphone")]]) {
    const current = page.media && page.media.getTracks().find((t) => `${t.kind}input` === kind);
    const chosen = current ? current.getSettings().deviceId : select.value;
    select.replaceChildren(
      ...devices
        .filter((d) => d.kind === kind)
        .map((d, i) => el("option", { value: d.deviceId, selected: d.deviceId === chosen }, d.label || `${kind === "videoinput" ? "Camera" : "Microphone"} ${i + 1}`)),
    );
  }
}

$("#camera").addEventListener("change", preview);
$("#microphone").addEventListener("change", preview);

function showMessage(text) {
  $("#preview-msg").hidden = !text;
  $("#preview-msg").textContent = text;
}

// -- going live and ending ---------------------------------------------------------------------
$("#go-live").addEventListener("click", async () => {
  $("#live-error").hidden = true;
  if (!page.media) await preview();
  if (!page.media) return;
  page.publisher = new Publisher({
    url: `${streamPath}/whip`,
    token: page.token,
    onState: (state, detail) => {
      if (state === "failed") {
        $("#live-error").hidden = false;
        $("#live-error").textContent = `Could not go live: ${detail ? detail.message : "the connection failed"}.`;
        page.publisher = null;
      }
      renderLive();
    },
  });
  page.publisher.setMedia(page.media);
  window.e2e.publisher = page.publisher;
  renderLive();
  await page.publisher.start();
});

$("#end").addEventListener("click", () => $("#confirm-end").showModal());
$("#confirm-end").addEventListener("close", async () => {
  if ($("#confirm-end").returnValue !== "end") return;
  try {
    page.stream = await api("POST", `${streamPath}/end`, { token: page.token });
  } catch (error) {
    $("#live-error").hidden = false;
    $("#live-error").textContent = `Could not end the show: ${error.message}`;
    return;
  }
  if (page.publisher) await page.publisher.stop({ tell: false });
  page.publisher = null;
  renderAll();
});

function liveState() {
  const s = page.stream;
  if (s.state === "ended") return ["ended", "Ended"];
  const p = page.publisher && page.publisher.state;
  if (p === "connecting") return ["connecting", "Connecting…"];
  if (p === "reconnecting") return ["reconnecting", "Reconnecting…"];
  if (s.state === "live") return ["live", p === "live" ? "Live" : "Live (another source)"];
  if (page.room && page.room.state === "reconnecting") return ["offline", "Server unreachable…"];
  return ["preview", "Preview"];
}

function renderLive() {
  if (!page.stream) return;
  const [state, label] = liveState();
  const badge = $("#state-badge");
  badge.textContent = label;
  badge.dataset.state = state;
  badge.className = `badge ${state === "live" ? "live" : ""}`;
  const ended = page.stream.state === "ended";
  const publishing = page.publisher !== null;
  // live without this page publishing: after a reload, or while OBS sends; either way the host
  // may (re)take the stream from here (WHIP refuses while another source still holds it)
  $("#go-live").hidden = ended || publishing;
  $("#go-live").textContent = page.stream.state === "live" ? "Publish from this browser" : "Go live";
  $("#end").hidden = ended || !(publishing || page.stream.state === "live");
  $("#camera").disabled = ended;
  $("#microphone").disabled = ended;
  if (ended) showMessage("The show has ended.");
  tick();
}

function tick() {
  const s = page.stream;
  $("#timer").textContent = s && s.state === "live" && s.started_at ? clock(Date.now() / 1000 - s.started_at) : "";
  const sale = s && s.sale;
  const box = $("#sale-countdown");
  if (box && sale) box.textContent = clock(sale.ends_at - Date.now() / 1000);
  if (sale && sale.state !== "ended" && sale.ends_at * 1000 < Date.now()) {
    s.sale = { ...sale, state: "ended" };
    renderSale();
  }
}
setInterval(tick, 1000);

// -- lineup and pins ----------------------------------------------------------------------------
function renderLineup() {
  const s = page.stream;
  const pinned = s.pinned && s.pinned.id;
  // a keyboard user's focus stays on the same product's button across the re-render
  const focused = document.activeElement && document.activeElement.closest("#lineup li");
  const focusedProduct = focused ? focused.dataset.product : null;
  $("#lineup").replaceChildren(
    ...s.products.map((p) =>
      el(
        "li",
        { className: p.id === pinned ? "is-pinned" : "", dataset: { product: p.id } },
        thumb(p),
        el("div", { className: "info" }, el("div", { className: "t" }, p.title), el("div", { className: "muted num" }, `${money(p.price, p.currency)} · ${p.stock} in stock`)),
        p.id === pinned
          ? el("button", { className: "small", type: "button", disabled: s.state === "ended", onclick: () => pin(null), "aria-label": `Unpin ${p.title}` }, "Unpin")
          : el("button", { className: "small primary", type: "button", disabled: s.state === "ended", onclick: () => pin(p.id), "aria-label": `Pin ${p.title}` }, icon("pin"), "Pin"),
      ),
    ),
  );
  if (!s.products.length) $("#lineup").append(el("li", { className: "muted" }, "No products in this show's lineup."));
  if (focusedProduct) $(`#lineup li[data-product="${CSS.escape(focusedProduct)}"] button`)?.focus();
  const select = $("#sale-product");
  const chosen = select.value;
  select.replaceChildren(...s.products.map((p) => el("option", { value: p.id, selected: p.id === chosen }, p.title)));
  fillSaleDefaults(false);
}

async function pin(productId) {
  try {
    if (productId) page.stream.pinned = (await api("POST", `${streamPath}/pin`, { token: page.token, body: { product_id: productId } })).pinned;
    else {
      await api("DELETE", `${streamPath}/pin`, { token: page.token });
      page.stream.pinned = null;
    }
    renderLineup();
  } catch (error) {
    alertIn("#live-error", `Could not ${productId ? "pin" : "unpin"}: ${error.message}`);
  }
}

function alertIn(selector, text) {
  const box = $(selector);
  box.hidden = !text;
  box.textContent = text;
}

// -- flash sales --------------------------------------------------------------------------------
function fillSaleDefaults(force) {
  const p = page.stream.products.find((x) => x.id === $("#sale-product").value);
  if (!p) return;
  if (force || !$("#sale-price").value) $("#sale-price").value = majorUnits(Math.round(p.price * 0.8), p.currency);
  if (force || !$("#sale-quantity").value) $("#sale-quantity").value = String(Math.max(1, Math.min(p.stock, 20)));
}
$("#sale-product").addEventListener("change", () => fillSaleDefaults(true));

$("#sale-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const p = page.stream.products.find((x) => x.id === $("#sale-product").value);
  if (!p) return;
  const body = {
    product_id: p.id,
    price: minorUnits($("#sale-price").value, p.currency),
    quantity: Number($("#sale-quantity").value),
    duration_s: Math.round(Number($("#sale-minutes").value) * 60),
    per_viewer_limit: Number($("#sale-limit").value),
  };
  try {
    page.stream.sale = await api("POST", `${streamPath}/sales`, { token: page.token, body });
    alertIn("#sale-error", "");
    renderSale();
  } catch (error) {
    alertIn("#sale-error", error.message);
  }
});

async function endSale(sale) {
  try {
    page.stream.sale = await api("DELETE", `${streamPath}/sales/${encodeURIComponent(sale.id)}`, { token: page.token });
    renderSale();
  } catch (error) {
    alertIn("#sale-error", error.message);
  }
}

function renderSale() {
  const s = page.stream;
  const sale = s.sale && s.sale.state !== "ended" ? s.sale : null;
  const last = s.sale && s.sale.state === "ended" ? s.sale : null;
  const box = $("#running-sale");
  $("#sale-form").hidden = Boolean(sale) || s.state === "ended";
  box.hidden = !sale && !last;
  box.classList.toggle("over", Boolean(last));
  const p = s.sale && s.products.find((x) => x.id === s.sale.product_id);
  if (last) {
    const sold = last.quantity - last.remaining;
    return box.replaceChildren(
      el("div", {}, el("b", {}, `Last sale: ${p ? p.title : "a product"}`), " · ", el("span", { id: "sale-left", className: "num" }, last.remaining === 0 ? `sold out, ${sold} of ${last.quantity}` : `sold ${sold} of ${last.quantity}`)),
    );
  }
  if (!sale) return box.replaceChildren();
  box.replaceChildren(
    el(
      "div",
      {},
      el("div", {}, el("b", {}, icon("bolt"), p ? p.title : "Sale"), " at ", el("b", {}, money(sale.price, sale.currency))),
      el("div", { className: "num" }, el("span", { id: "sale-left" }, `${sale.remaining} of ${sale.quantity} left`), " · ends in ", el("span", { id: "sale-countdown" }, clock(sale.ends_at - Date.now() / 1000))),
    ),
    el("button", { className: "small danger", type: "button", onclick: () => endSale(sale) }, "End sale"),
  );
}

// -- chat and moderation ------------------------------------------------------------------------
function addLine(line) {
  const list = $("#chat");
  if (list.querySelector(`[data-id="${CSS.escape(line.id)}"]`)) return;
  const mine = page.you && line.user.id === page.you.id;
  const moderate = (action) => page.room.send({ type: "moderate", action, ...(action === "delete" ? { message_id: line.id } : { user_id: line.user.id }), ...(action === "mute" ? { duration_s: MUTE_S } : {}) });
  const li = el(
    "li",
    { dataset: { id: line.id, user: line.user.id } },
    el("span", { className: "chat-line" }, el("span", { className: `who ${line.user.role === "host" ? "host" : ""}` }, line.user.name), line.text),
    mine
      ? null
      : el(
          "span",
          { className: "mod" },
          el("button", { type: "button", onclick: () => moderate("delete"), "aria-label": `Delete ${line.user.name}'s message` }, "Delete"),
          el("button", { type: "button", onclick: () => moderate("mute"), "aria-label": `Mute ${line.user.name} for 10 minutes` }, "Mute"),
          el("button", { type: "button", className: "danger", onclick: () => moderate("ban"), "aria-label": `Ban ${line.user.name}` }, "Ban"),
        ),
  );
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(li);
  while (list.children.length > 200) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function note(text) {
  const list = $("#chat");
  list.append(el("li", { className: "muted" }, text));
  list.scrollTop = list.scrollHeight;
}

$("#chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("#chat-input").value.trim();
  if (!text) return;
  if (page.room.send({ type: "chat", text })) $("#chat-input").value = "";
  else note("Not connected — your message was not sent.");
});

// -- the room's events --------------------------------------------------------------------------
function handle({ type, data }) {
  const s = page.stream;
  if (type === "hello") {
    page.stream = data.stream;
    if (!$("#studio").hidden) renderAll();
    return;
  }
  if (!s) return;
  if (type === "chat") addLine(data);
  else if (type === "likes") page.hearts = data.total;
  else if (type === "viewers") s.viewers = data.count;
  else if (type === "pin") s.pinned = data.product;
  else if (type === "unpin") s.pinned = null;
  else if (type === "sale" || type === "sale_end") s.sale = data;
  else if (type === "stock") {
    if (s.sale && s.sale.product_id === data.product_id && s.sale.state !== "ended") s.sale.remaining = data.remaining;
    else for (const p of s.products) if (p.id === data.product_id) p.stock = data.remaining;
  } else if (type === "purchase") {
    page.sold += data.quantity;
    const p = s.products.find((x) => x.id === data.product_id);
    note(`${data.name} bought ${data.quantity} × ${p ? p.title : "a product"}`);
  } else if (type === "moderation") {
    if (data.action === "delete" && data.message_id) $(`#chat [data-id="${CSS.escape(data.message_id)}"]`)?.remove();
    if (data.action === "ban" && data.user_id) document.querySelectorAll(`#chat [data-user="${CSS.escape(data.user_id)}"]`).forEach((li) => li.remove());
    if (data.action !== "delete") note(data.action === "mute" ? "A viewer was muted for 10 minutes." : "A viewer was banned.");
  } else if (type === "stream") {
    s.state = data.state;
    if (data.state === "live" && !s.started_at) s.started_at = Date.now() / 1000;
  } else if (type === "resync") {
    api("GET", streamPath).then((stream) => {
      page.stream = stream;
      renderAll();
    }, (error) => report("resync", error));
    return;
  } else if (type === "error") note(data.message);
  renderAll();
}

function renderAll() {
  const s = page.stream;
  if (!s || $("#studio").hidden) return;
  $("#title").textContent = s.title;
  document.title = `Studio: ${s.title} — livecart`;
  $("#whip-url").value = s.whip_url;
  $("#watch-link").href = `/watch/${encodeURIComponent(s.id)}`;
  $("#fig-viewers").textContent = compact.format(s.viewers || 0);
  $("#fig-hearts").textContent = compact.format(page.hearts);
  $("#fig-sold").textContent = compact.format(page.sold);
  renderLive();
  renderLineup();
  renderSale();
}

$("#copy-whip").addEventListener("click", async () => {
  const input = $("#whip-url");
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    input.select();
    document.execCommand("copy");
  }
  $("#copy-whip").textContent = "Copied";
  setTimeout(() => ($("#copy-whip").textContent = "Copy"), 2000);
});

window.addEventListener("pagehide", () => {
  // leaving the page drops the connection; the server keeps the show live for its grace period
  if (page.publisher) page.publisher.close();
});

if (page.token) open(page.token);
else showGate();
