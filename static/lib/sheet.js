// The viewer who buys, and the sheet they buy in: a name first (once), then Buy → quantity → pay
// → the order's state in words. The watch page and the replay share it; each says which product
// an id is, which sale (if any) prices a buy now, and what else must hear of a new viewer.
import { $, ApiError, api, el, money, saved, thumb } from "/static/lib/api.js";

const VIEWER_KEY = "livecart.viewer";
const ORDER_POLL_MS = 1000;
const ORDER_POLL_TRIES = 60;

const REFUSALS = {
  sold_out: "Sold out — every unit is taken right now.",
  sale_ended: "This flash sale has ended.",
  limit_reached: "You have reached this sale's limit per viewer.",
  stream_ended: "The show has ended; orders are closed.",
  not_granted: "The brand no longer sells this product here.",
  rate_limited: "Too many taps — try again in a moment.",
};

const ORDER_WORDS = {
  paid: (order, title) => ["Order confirmed", `${order.quantity} × ${title} · ${money(order.amount, order.currency)}`],
  pending_payment: () => ["Waiting for the payment…", "This takes a few seconds."],
  failed: () => ["The payment did not go through", "Nothing was charged. You can try again."],
  expired: () => ["The order expired", "It was not paid in time; the units went back on sale."],
  canceled: () => ["Order canceled", "Nothing was charged."],
  refunded: () => ["Refunded", "The amount is on its way back to you."],
};

// The viewer kept in this browser ({id, name, token}), or null.
export function keptViewer() {
  try {
    const me = JSON.parse(saved.get(VIEWER_KEY) || "null");
    return me && me.token ? me : null;
  } catch {
    return null;
  }
}

export function forgetViewer() {
  saved.remove(VIEWER_KEY);
}

// A kept viewer the server no longer knows (another server, a reset) is dropped quietly.
export async function checkedViewer() {
  const me = keptViewer();
  if (!me) return null;
  try {
    await api("GET", "/api/me", { token: me.token });
  } catch (error) {
    if (error.status === 401) {
      forgetViewer();
      return null;
    }
  }
  return me;
}

export class BuySheet {
  // streamId; product(id) → item; saleFor(item) → the sale a buy now is priced by, or null;
  // joined(me): awaited after a new viewer is made (the watch page reconnects its room);
  // closeLabel: the last step's button; me: the viewer, if known.
  constructor({ streamId, product, saleFor = () => null, joined = async () => {}, closeLabel = "Keep watching", me = null, returnFocus = "#buy" }) {
    Object.assign(this, { streamId, product, saleFor, joined, closeLabel, me, returnFocus });
    this.box = $("#sheet");
    this.state = null; // what the sheet shows: {step, ...}
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.state) this.close();
    });
  }

  close() {
    this.state = null;
    this.box.hidden = true;
    this.box.replaceChildren();
    $(this.returnFocus)?.focus();
  }

  // The name step, for `reason` ("chat", "like", "buy"); `then` runs once the viewer exists.
  askName(reason, then) {
    this.state = { step: "name", reason, then };
    this.render();
  }

  open(item) {
    const buy = () => {
      this.state = { step: "buy", productId: item.id, quantity: 1, key: null, error: null };
      this.render();
    };
    if (!this.me) this.askName("buy", buy);
    else buy();
  }

  // Re-priced when what it shows changed under it (a sale began or ended): no one pays a price
  // they did not see.
  refresh() {
    if (this.state && this.state.step === "buy" && !this.state.busy) this.render();
  }

  head(title) {
    return el(
      "div",
      { className: "head" },
      el("h2", { id: "sheet-title", className: "info" }, title),
      el("button", { className: "close", type: "button", "aria-label": "Close", onclick: () => this.close() }, "×"),
    );
  }

  render() {
    const sheet = this.state;
    if (!sheet) return this.close();
    if (sheet.step === "name") return this.renderName(sheet);
    const parts = sheet.step === "buy" ? this.buyStep(sheet) : sheet.step === "pay" ? this.payStep(sheet) : this.doneStep(sheet);
    const keep = this.box.contains(document.activeElement) ? document.activeElement.id : null;
    this.box.replaceChildren(...parts.filter(Boolean));
    this.box.hidden = false;
    if (sheet.step === "pay" && sheet.order.payment.provider !== "demo" && !sheet.mounted) this.mountStripe(sheet);
    const focus = (keep && document.getElementById(keep)) || this.box.querySelector(".pay, #confirm-pay");
    focus?.focus();
  }

  renderName(sheet) {
    const why = { chat: "to chat", like: "to send hearts", buy: "to buy" }[sheet.reason] || "";
    const input = el("input", { id: "viewer-name", name: "name", required: true, maxLength: 40, autocomplete: "nickname", placeholder: "e.g. Mia" });
    const form = el(
      "form",
      { className: "name-form", onsubmit: (event) => { event.preventDefault(); this.join(input.value.trim(), sheet.then); } },
      el("label", { htmlFor: "viewer-name" }, `Pick a name ${why}`, input),
      sheet.error ? el("p", { className: "error", role: "alert" }, sheet.error) : null,
      el("button", { className: "primary", type: "submit" }, "Continue"),
    );
    this.box.replaceChildren(this.head("Join the show"), form);
    this.box.hidden = false;
    input.focus();
  }

  buyStep(sheet) {
    const item = this.product(sheet.productId);
    const sale = this.saleFor(item);
    const unit = sale ? sale.price : item.price;
    const most = sale ? Math.max(1, Math.min(sale.per_viewer_limit || sale.remaining, sale.remaining)) : Math.max(1, Math.min(item.stock, 10));
    sheet.quantity = Math.min(sheet.quantity, most);
    const step = (delta) => {
      sheet.quantity = Math.max(1, Math.min(most, sheet.quantity + delta));
      sheet.key = null; // another body: another order
      this.render();
    };
    return [
      this.head("Buy"),
      el(
        "div",
        { className: "head" },
        thumb(item),
        el("div", { className: "info" }, el("div", { className: "t" }, item.title), el("div", { className: "price" }, money(unit, item.currency), sale ? el("span", { className: "was" }, money(item.price, item.currency)) : null)),
      ),
      el(
        "div",
        { className: "row" },
        el("span", { id: "qty-label" }, sale ? `Quantity (up to ${most})` : "Quantity"),
        el(
          "div",
          { className: "stepper", role: "group", "aria-labelledby": "qty-label" },
          el("button", { type: "button", id: "qty-less", "aria-label": "One less", disabled: sheet.quantity <= 1, onclick: () => step(-1) }, "−"),
          el("output", { id: "quantity", "aria-live": "polite" }, String(sheet.quantity)),
          el("button", { type: "button", id: "qty-more", "aria-label": "One more", disabled: sheet.quantity >= most, onclick: () => step(1) }, "+"),
        ),
      ),
      el("div", { className: "row" }, el("span", {}, "Total"), el("span", { className: "total num", id: "total" }, money(unit * sheet.quantity, item.currency))),
      sheet.error ? el("p", { className: "error", role: "alert" }, sheet.error) : null,
      el("button", { className: "primary pay", id: "place", type: "button", disabled: sheet.busy, onclick: () => this.place(item) }, sheet.busy ? "Placing your order…" : `Pay ${money(unit * sheet.quantity, item.currency)}`),
    ];
  }

  payStep(sheet) {
    const order = sheet.order;
    const item = this.product(order.product_id);
    const parts = [this.head("Pay"), el("div", { className: "row" }, el("span", {}, `${order.quantity} × ${item ? item.title : "item"}`), el("span", { className: "total num" }, money(order.amount, order.currency)))];
    const error = sheet.error ? el("p", { className: "error", role: "alert" }, sheet.error) : null;
    if (order.payment.provider === "demo") {
      parts.push(
        el("p", { className: "demo-tag" }, "Demo payment: no card is charged and no money moves."),
        error,
        el("button", { className: "primary pay", id: "confirm-pay", type: "button", disabled: sheet.busy, onclick: () => this.demoPay(order) }, sheet.busy ? "Paying…" : "Confirm demo payment"),
      );
    } else {
      // one container for the sheet's life: Stripe's element lives in it across re-renders
      sheet.container = sheet.container || el("div", { id: "payment-element" });
      parts.push(sheet.container, error, el("button", { className: "primary pay", id: "confirm-pay", type: "button", disabled: sheet.busy || !sheet.stripeReady, onclick: () => this.stripePay(order) }, sheet.busy ? "Paying…" : `Pay ${money(order.amount, order.currency)}`));
    }
    parts.push(el("button", { type: "button", className: "small", onclick: () => this.cancel(order) }, "Cancel order"));
    return parts;
  }

  doneStep(sheet) {
    const order = sheet.order;
    const item = this.product(order.product_id);
    const words = ORDER_WORDS[order.status] ? ORDER_WORDS[order.status](order, item ? item.title : "item") : [order.status, ""];
    return [
      this.head("Your order"),
      el("div", { className: `order-state ${order.status}`, id: "order-state", dataset: { status: order.status }, role: "status" }, el("div", { className: "big" }, words[0]), el("div", { className: "muted" }, words[1])),
      el("button", { className: "primary pay", type: "button", onclick: () => this.close() }, this.closeLabel),
    ];
  }

  async join(name, then) {
    if (!name) return;
    try {
      const account = await api("POST", "/api/viewers", { body: { name } });
      this.me = { id: account.id, name: account.name, token: account.token };
      saved.set(VIEWER_KEY, JSON.stringify(this.me));
      this.state = null;
      this.box.hidden = true;
      await this.joined(this.me);
      then && then();
    } catch (error) {
      this.state = { ...this.state, error: error.message };
      this.render();
    }
  }

  async place(item) {
    const sheet = this.state;
    const sale = this.saleFor(item);
    sheet.key = sheet.key || crypto.randomUUID();
    sheet.busy = true;
    sheet.error = null;
    this.render();
    try {
      const order = await api("POST", "/api/orders", {
        token: this.me.token,
        headers: { "Idempotency-Key": sheet.key },
        // naming the sale shown: if it ended meanwhile, 409 sale_ended rather than the list price
        body: { stream_id: this.streamId, product_id: item.id, quantity: sheet.quantity, ...(sale ? { sale_id: sale.id } : {}) },
      });
      this.state = { step: "pay", order, busy: false };
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return this.forget();
      sheet.busy = false;
      sheet.error = REFUSALS[error.code] || error.message;
      if (error.status && error.status !== 429) sheet.key = null;
    }
    this.render();
  }

  async demoPay(order) {
    const sheet = this.state;
    sheet.busy = true;
    this.render();
    try {
      const paid = await api("POST", `/api/orders/${encodeURIComponent(order.id)}/demo-pay`, { token: this.me.token });
      this.state = { step: "done", order: paid };
    } catch (error) {
      sheet.busy = false;
      sheet.error = error.message;
    }
    this.render();
  }

  async cancel(order) {
    try {
      const canceled = await api("POST", `/api/orders/${encodeURIComponent(order.id)}/cancel`, { token: this.me.token });
      this.state = { step: "done", order: canceled };
    } catch (error) {
      this.state.error = error.message;
    }
    this.render();
  }

  // Stripe: its Payment Element, loaded from Stripe only when an order is paid through Stripe.
  async mountStripe(sheet) {
    sheet.mounted = true;
    try {
      const Stripe = await loadStripe();
      const payment = sheet.order.payment;
      sheet.stripe = Stripe(payment.publishable_key);
      sheet.elements = sheet.stripe.elements({ clientSecret: payment.client_secret });
      sheet.elements.create("payment").mount(sheet.container);
      sheet.stripeReady = true;
    } catch (error) {
      sheet.error = error.message;
    }
    if (this.state === sheet) this.render();
  }

  async stripePay(order) {
    const sheet = this.state;
    sheet.busy = true;
    this.render();
    const { error } = await sheet.stripe.confirmPayment({ elements: sheet.elements, redirect: "if_required" });
    if (error) {
      sheet.busy = false;
      sheet.error = error.message;
      this.render();
      return;
    }
    this.state = { step: "done", order: { ...order, status: "pending_payment" } };
    this.render();
    // the webhook settles it: follow the order until it does
    for (let i = 0; i < ORDER_POLL_TRIES && this.state?.order?.id === order.id; i += 1) {
      const now = await api("GET", `/api/orders/${encodeURIComponent(order.id)}`, { token: this.me.token }).catch(() => null);
      if (now && now.status !== "pending_payment") {
        this.state = { step: "done", order: now };
        this.render();
        return;
      }
      await new Promise((r) => setTimeout(r, ORDER_POLL_MS));
    }
  }

  // A token the server no longer knows (another server, a reset): start again as a new viewer.
  async forget() {
    forgetViewer();
    this.me = null;
    await this.joined(null);
    this.askName("buy", () => {});
  }
}

function loadStripe() {
  if (window.Stripe) return Promise.resolve(window.Stripe);
  return new Promise((resolve, reject) => {
    const script = el("script", { src: "https://js.stripe.com/v3/" });
    script.onload = () => resolve(window.Stripe);
    script.onerror = () => reject(new Error("could not load Stripe's payment form"));
    document.head.append(script);
  });
}
