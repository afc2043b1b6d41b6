// The index: live shows first, then the ones starting soon, then recent ones; refreshed quietly.
import { $, api, compact, el, icon, money, report, thumb } from "/static/lib/api.js";

const REFRESH_MS = 10000;
const LABEL = { live: "Live", scheduled: "Soon", ended: "Ended" };

function card(stream) {
  const product = stream.pinned || stream.products[0] || null;
  const sale = stream.sale && product && stream.sale.product_id === product.id ? stream.sale : null;
  const viewers =
    stream.state === "live"
      ? el("span", { className: "num", "aria-label": `${stream.viewers} watching` }, icon("eye"), compact.format(stream.viewers))
      : null;
  return el(
    "li",
    {},
    el(
      "a",
      { className: "card show", href: `/watch/${encodeURIComponent(stream.id)}`, dataset: { stream: stream.id } },
      el("div", { className: "top" }, el("span", { className: `badge ${stream.state}` }, LABEL[stream.state] || stream.state), viewers),
      el("div", {}, el("div", { className: "title" }, stream.title), el("div", { className: "muted host" }, stream.host_name || "")),
      product
        ? el(
            "div",
            { className: "pinned" },
            thumb(product),
            el(
              "div",
              {},
              el("div", { className: "product" }, stream.pinned ? icon("pin") : null, product.title),
              el(
                "div",
                { className: "price" },
                money(sale ? sale.price : product.price, product.currency),
                sale ? el("span", { className: "was" }, money(product.price, product.currency)) : null,
              ),
            ),
          )
        : el("div", { className: "muted" }, "No products yet"),
    ),
  );
}

async function refresh() {
  const status = $("#status");
  try {
    const { streams } = await api("GET", "/api/streams");
    for (const state of ["live", "scheduled", "ended"]) {
      const section = $(`#${state}`);
      const mine = streams.filter((s) => s.state === state);
      section.hidden = mine.length === 0;
      $("ul", section).replaceChildren(...mine.map(card));
    }
    status.hidden = streams.length > 0;
    status.textContent = "No shows yet. A host's first stream will appear here.";
  } catch (error) {
    status.hidden = false;
    status.textContent = `Could not load the shows: ${error.message}. Trying again…`;
    report("index", error);
  }
}

await refresh();
setInterval(() => document.visibilityState === "visible" && refresh(), REFRESH_MS);
