// A small per-minute chart drawn here in SVG: bars for orders, a line (with a soft area) for GMV.
//
// No chart library is fetched at run time and none is needed at this size: a chart is rebuilt
// from its slots on every change (a show has at most a few dozen bars on screen), at the pixel
// size of its box, so text and strokes stay crisp instead of being scaled with a viewBox.
// Colours come from CSS classes (livecart.css, "dashboard"), so light and dark follow the page.

const NS = "http://www.w3.org/2000/svg";
let gradients = 0; // each chart's gradient needs an id of its own on the page

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  node.append(...children);
  return node;
}

// The minute slots of a show, from its `start` (Unix seconds; else its first sale) to `end`
// (now, or when it ended), rows summed into theirs. A young show gets slots ahead of it up to
// `least`, marked `ahead`, so its chart fills from the left as it runs; a long one is grouped
// into slots of several minutes so that at most `most` are drawn. Each: {t, minutes, orders, gmv}.
export function minuteSlots(rows, { start = null, end, least = 20, most = 60 }) {
  const minute = (t) => Math.floor(t / 60) * 60;
  const times = rows.map((r) => minute(r.t));
  const first = Math.min(minute(start ?? end), ...times);
  const last = Math.max(minute(end), first, ...times); // a browser's clock may lag the server's
  const count = (last - first) / 60 + 1;
  const size = Math.ceil(count / most);
  const n = Math.max(Math.ceil(count / size), Math.ceil(least / size));
  const slots = Array.from({ length: n }, (_, i) => {
    const t = first + i * size * 60;
    return { t, minutes: size, orders: 0, gmv: 0, ahead: t > last };
  });
  for (const row of rows) {
    const slot = slots[Math.floor((minute(row.t) - first) / (size * 60))];
    if (!slot) continue;
    slot.orders += row.orders;
    slot.gmv += row.gmv;
  }
  return slots;
}

// A round top for an axis: 1, 2, 2.5 or 5 times a power of ten, split into `ticks` steps.
export function niceScale(max, ticks = 4, whole = false) {
  if (!(max > 0)) return { top: ticks, step: 1 };
  const rough = max / ticks;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough && (!whole || Number.isInteger(s)));
  const used = whole ? Math.max(1, Math.ceil(step)) : step;
  return { top: used * ticks, step: used };
}

// The chart as an <svg> `width` × `height` pixels: a bar per slot for its orders (right axis)
// and the GMV so far as a line over a soft area (left axis), drawn up to the last slot that is
// not ahead. `format` holds {money(minor), moneyShort(minor), time(t), count(n)} for the labels;
// `now` is the slot (its t) still filling up, drawn lighter.
export function minuteChart(slots, { width, height, format, now = null, label = "Sales per minute" }) {
  const pad = { top: 14, right: 40, bottom: 28, left: 64 };
  const w = Math.max(120, width - pad.left - pad.right);
  const h = Math.max(60, height - pad.top - pad.bottom);
  const ticks = 4;
  const shown = slots.filter((slot) => !slot.ahead);
  let sum = 0;
  const running = shown.map((slot) => (sum += slot.gmv));
  const totalOrders = shown.reduce((n, slot) => n + slot.orders, 0);
  const money = niceScale(sum, ticks);
  const orders = niceScale(Math.max(...slots.map((s) => s.orders)), ticks, true);
  const slotW = w / slots.length;
  const barW = Math.max(2, Math.min(28, slotW * 0.6));
  const x = (i) => pad.left + slotW * (i + 0.5);
  const base = pad.top + h;
  const yMoney = (v) => base - (v / money.top) * h;
  const yOrders = (v) => base - (v / orders.top) * h;

  const chart = svg("svg", {
    class: "minute-chart",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `${label}: ${format.count(totalOrders)} ${totalOrders === 1 ? "order" : "orders"}, ${format.money(sum)} in all`,
  });

  // an axis with nothing on it yet has no labels (the page says "No sales yet" over it)
  const grid = svg("g", { class: "grid" });
  for (let i = 0; i <= ticks; i += 1) {
    const y = base - (h * i) / ticks;
    grid.append(svg("line", { x1: pad.left, x2: pad.left + w, y1: y, y2: y, class: i === 0 ? "base" : null }));
    if (sum > 0) grid.append(svg("text", { x: pad.left - 8, y: y + 4, class: "axis money", "text-anchor": "end" }, format.moneyShort(money.step * i)));
    if (totalOrders > 0) grid.append(svg("text", { x: pad.left + w + 8, y: y + 4, class: "axis orders", "text-anchor": "start" }, format.count(orders.step * i)));
  }
  chart.append(grid);

  // time labels: as many as fit without touching, counted from the show's first slot
  const every = Math.max(1, Math.ceil(slots.length / Math.max(1, Math.floor(w / 72))));
  const labels = svg("g", { class: "axis time" });
  slots.forEach((slot, i) => {
    if (i % every === 0) labels.append(svg("text", { x: x(i), y: base + 18, "text-anchor": "middle" }, format.time(slot.t)));
  });
  chart.append(labels);

  const bars = svg("g", { class: "bars" });
  slots.forEach((slot, i) => {
    if (!slot.orders) return;
    const top = yOrders(slot.orders);
    bars.append(
      svg("rect", {
        x: x(i) - barW / 2,
        y: top,
        width: barW,
        height: Math.max(1, base - top),
        rx: Math.min(4, barW / 3),
        class: slot.t === now ? "bar now" : "bar",
        "data-t": slot.t,
        "data-orders": slot.orders,
        "data-gmv": slot.gmv,
      }),
    );
  });
  chart.append(bars);

  if (sum > 0) {
    const id = `gmv-fill-${(gradients += 1)}`;
    // the line starts at zero on the first slot's left edge, then steps through each slot's end
    const points = [[pad.left, base], ...running.map((v, i) => [pad.left + slotW * (i + 1), yMoney(v)])];
    const line = points.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`).join("");
    const end = points[points.length - 1][0].toFixed(1);
    chart.append(
      svg("defs", {}, svg("linearGradient", { id, x1: 0, x2: 0, y1: 0, y2: 1 }, svg("stop", { offset: "0%", class: "fill-top" }), svg("stop", { offset: "100%", class: "fill-bottom" }))),
      svg("path", { d: `${line}L${end},${base.toFixed(1)}Z`, class: "area", fill: `url(#${id})` }),
      svg("path", { d: line, class: "line", fill: "none", "data-total": sum }),
    );
    const [lastX, lastY] = points[points.length - 1];
    chart.append(svg("circle", { cx: lastX, cy: lastY, r: 4, class: "last" }));
  }

  // one invisible column per slot carries its figures as a tooltip
  const hits = svg("g", { class: "hits" });
  slots.forEach((slot, i) => {
    if (slot.ahead) return;
    const when = slot.minutes > 1 ? `${format.time(slot.t)}–${format.time(slot.t + slot.minutes * 60)}` : format.time(slot.t);
    const what = `${when}: ${format.count(slot.orders)} ${slot.orders === 1 ? "order" : "orders"}, ${format.money(slot.gmv)} (${format.money(running[i])} so far)`;
    hits.append(svg("rect", { x: pad.left + slotW * i, y: pad.top, width: slotW, height: h }, svg("title", {}, what)));
  });
  chart.append(hits);
  return chart;
}
