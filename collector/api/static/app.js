// The cost dashboard: reads /api/v1 and draws its own SVG (no chart library, nothing fetched from the net).
"use strict";

const COLORS = ["#3c5bd9", "#2f9e62", "#d08b11", "#c8372d", "#7b4fd1", "#1f9bb4", "#b5487e", "#6b7385",
                "#8fa31d", "#e06b2f"];
const BREAKDOWNS = ["model", "customer", "feature", "team", "service"];
const state = { period: "7d", from: null, to: null, stackBy: "model", filters: {}, info: null };

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
};
// three significant digits below 1, never in scientific notation (3.2e-7 is 0.000000320), at most pico-units
const money = (text) => {
  const value = Number(text || 0), size = Math.abs(value);
  if (size >= 100) return value.toFixed(2);
  if (size >= 1) return value.toFixed(3);
  if (size === 0) return "0.00";
  return value.toFixed(Math.min(12, 2 - Math.floor(Math.log10(size))));
};
const number = (value) => Number(value || 0).toLocaleString("en-US");
// a time in the viewer's zone, with the zone named (CET, GMT+2, UTC…)
const when = (iso) => new Date(iso).toLocaleString(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short"});

// With cost_api.auth, open the page as http://host:8888/#token=<read token>: the token stays in this tab.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) sessionStorage.setItem("token", fragment.get("token"));
const token = sessionStorage.getItem("token");

async function api(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== null && value !== undefined) query.set(key, value);
  const reply = await fetch(`/api/v1/${path}?${query}`, token ? { headers: { Authorization: `Bearer ${token}` } } : {});
  if (reply.status === 401) throw new Error("this collector needs a token: open the page as /#token=<read token>");
  if (!reply.ok) throw new Error(`${path}: HTTP ${reply.status}`);
  return reply.json();
}

function range() {
  // [from, to) of the period shown, and the same length just before it (for the change)
  const to = state.to ? new Date(state.to) : new Date();
  const hours = { "24h": 24, "7d": 168, "30d": 720 }[state.period];
  const from = state.from ? new Date(state.from) : new Date(to.getTime() - hours * 3600e3);
  const previous = new Date(from.getTime() - (to.getTime() - from.getTime()));
  return { from: from.toISOString(), to: to.toISOString(), previous: previous.toISOString(),
           granularity: to - from <= 48 * 3600e3 ? "hour" : "day" };
}

function filterParams() {
  const params = {};
  for (const [key, value] of Object.entries(state.filters)) params[`filter[${key}]`] = value;
  return params;
}

function totalOf(report) {
  const totals = report.totals[0] || {};
  return { cost: totals.cost || "0", currency: totals.currency || "", calls: totals.calls || 0,
           input: totals.input_tokens || 0, output: totals.output_tokens || 0 };
}

async function drawTotals(r) {
  const [now, before] = await Promise.all([
    api("costs", { from: r.from, to: r.to, ...filterParams() }),
    api("costs", { from: r.previous, to: r.from, ...filterParams() })]);
  const current = totalOf(now), previous = totalOf(before);
  // money of two currencies is never added up: one figure per currency
  $("total-cost").textContent = now.totals.length > 1
    ? now.totals.map((t) => `${money(t.cost)} ${t.currency}`).join(" · ") : `${money(current.cost)} ${current.currency}`;
  $("total-cost").dataset.exact = now.totals.map((t) => t.cost).join(" ") || "0";
  $("total-calls").textContent = number(current.calls);
  // unpriced calls in the range, in the header, however far the unpriced panel is scrolled away
  const unpriced = now.totals.reduce((sum, t) => sum + (t.unpriced_calls || 0), 0);
  $("unpriced-count").hidden = !unpriced;
  $("unpriced-count").textContent = `${number(unpriced)} unpriced call${unpriced === 1 ? "" : "s"}`;
  $("total-tokens").textContent = `${number(current.input)} / ${number(current.output)}`;
  const change = $("total-change");
  if (Number(previous.cost) > 0 && previous.currency === current.currency && now.totals.length === 1) {
    const pct = (Number(current.cost) - Number(previous.cost)) / Number(previous.cost) * 100;
    change.textContent = `${pct >= 0 ? "+" : ""}${pct.toFixed(1)}% vs previous`;
    change.className = `change ${pct > 0 ? "up" : "down"}`;
  } else {
    change.textContent = "no spend in the previous period";
    change.className = "change";
  }
}

async function drawChart(r) {
  const report = await api("costs", { from: r.from, to: r.to, granularity: r.granularity,
                                      group_by: state.stackBy, ...filterParams() });
  // one currency per chart: the first of the totals; the others are in the tables, each with its currency
  const currency = (report.totals[0] || {}).currency;
  const series = report.series.filter((row) => row.currency === currency);
  const buckets = [...new Set(series.map((row) => row.bucket))].sort();
  const groups = [...new Set(series.map((row) => row[state.stackBy]))];
  const cost = {};
  for (const row of series) cost[`${row.bucket}|${row[state.stackBy]}`] = Number(row.cost);
  const totals = buckets.map((b) => groups.reduce((sum, g) => sum + (cost[`${b}|${g}`] || 0), 0));
  const max = Math.max(...totals, 0);
  const width = 960, height = 240, left = 56, bottom = 22;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", "100%");
  svg.setAttribute("role", "img");
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  if (!buckets.length) {
    add("text", { x: width / 2, y: height / 2, "text-anchor": "middle", fill: "#6b7385" }, "no spend in this period");
  }
  const plot = height - bottom - 10, step = (width - left) / Math.max(buckets.length, 1);
  for (let i = 0; i <= 4; i++) {
    const y = 10 + plot - plot * i / 4;
    add("line", { x1: left, x2: width, y1: y, y2: y, stroke: "#eceff4" });
    add("text", { x: left - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7385" },
        money(max * i / 4));
  }
  buckets.forEach((bucket, i) => {
    let y = 10 + plot;
    groups.forEach((group, g) => {
      const value = cost[`${bucket}|${group}`] || 0;
      const h = max ? plot * value / max : 0;
      y -= h;
      const barWidth = Math.min(step * 0.7, 48);
      const bar = add("rect", { x: left + i * step + (step - barWidth) / 2, y, width: barWidth, height: h,
                                fill: COLORS[g % COLORS.length] });
      const title = document.createElementNS(ns, "title");
      title.textContent = `${bucket} ${group}: ${value}`;
      bar.append(title);
    });
    if (buckets.length <= 31 || i % Math.ceil(buckets.length / 24) === 0) {
      const label = r.granularity === "hour" ? bucket.slice(11, 16) : bucket.slice(5, 10);
      add("text", { x: left + i * step + step / 2, y: height - 6, "text-anchor": "middle", "font-size": 10,
                    fill: "#6b7385" }, label);
    }
  });
  $("chart").replaceChildren(svg);
  $("legend").replaceChildren(...(currency ? [el("span", {}, `amounts in ${currency}`)] : []), ...groups.map((group, g) =>
    el("span", {}, el("i", { style: `background:${COLORS[g % COLORS.length]}` }), group || "(none)")));
}

async function drawBreakdowns(r) {
  const reports = await Promise.all(BREAKDOWNS.map((dimension) =>
    api("costs", { from: r.from, to: r.to, group_by: dimension, ...filterParams() })));
  const panels = reports.map((report, index) => {
    const dimension = BREAKDOWNS[index];
    const totals = Object.fromEntries(report.totals.map((t) => [t.currency, Number(t.cost) || 1]));
    const table = el("table", { "data-dimension": dimension },
      el("tr", {}, el("th", {}, dimension), el("th", { class: "num" }, "calls"),
         el("th", { class: "num" }, "tokens"), el("th", { class: "num" }, "cost"), el("th", {}, "share")));
    for (const row of report.series.slice(0, 12)) {
      const value = row[dimension];
      const share = Number(row.cost) / (totals[row.currency] || 1);  // of the spend in the row's currency
      const tr = el("tr", { class: "row", "data-value": value },
        el("td", { class: "name", title: value || "" }, value || "(none)"), el("td", { class: "num" }, number(row.calls)),
        el("td", { class: "num" }, number(row.input_tokens + row.output_tokens)),
        el("td", { class: "num" }, `${money(row.cost)} ${row.currency}`),
        el("td", {}, el("span", { class: "share", style: `width:${Math.round(share * 48)}px` }),
           ` ${(share * 100).toFixed(0)}%`));
      tr.addEventListener("click", () => { state.filters[dimension] = value; refresh(); });
      table.append(tr);
    }
    if (!report.series.length) table.append(el("tr", {}, el("td", { class: "empty", colspan: 5 }, "no calls")));
    return el("div", { class: "panel" }, el("h2", {}, `By ${dimension}`), table);
  });
  $("breakdowns").replaceChildren(...panels);
}

// A budget as a progress bar: filled to its utilisation, a mark at each warning threshold, a status chip.
function budgetRow(b) {
  const percent = b.utilization * 100;
  const currency = state.info.currency ? ` ${state.info.currency}` : "";
  const marks = b.thresholds.filter((t) => t < 1).map((t) =>
    el("i", { class: "mark", style: `left:${t * 100}%`, title: `${Math.round(t * 100)}%` }));
  const match = Object.entries(b.match).map(([key, value]) => `${key} = ${value}`).join(", ") || "all spend";
  return el("div", { class: "budget", "data-id": b.id },
    el("div", { class: "budget-head" }, el("strong", {}, b.id), el("span", { class: `status ${b.status}` }, b.status),
       ...(b.hard ? [el("span", { class: "status" }, "hard")] : []),
       el("span", { class: "amounts" }, `${money(b.spent)} of ${money(b.limit)}${currency} · ${money(b.remaining)} ` +
          `left · ${percent.toFixed(1)}%`)),
    el("div", { class: "bar", role: "progressbar", "aria-valuenow": percent.toFixed(1), "aria-valuemin": "0",
                "aria-valuemax": "100" },
       el("div", { class: `fill ${b.status}`, style: `width:${Math.min(100, percent)}%` }), ...marks),
    el("div", { class: "meta" }, `${b.period}; resets ${b.resets_at ? when(b.resets_at) : "never"}; ${match}`));
}

async function drawBudgets() {
  if (!state.info.budgets) return;
  const { budgets } = await api("budgets");
  $("budgets-panel").hidden = false;
  $("budgets").replaceChildren(...budgets.map(budgetRow));
  if (!budgets.length) $("budgets").replaceChildren(el("p", { class: "empty" }, "no budgets"));
}

async function drawExpensive(r) {
  const { calls } = await api("calls", { from: r.from, to: r.to, order: "cost", limit: 10, ...filterParams() });
  const template = state.info.trace_url_template;
  const table = $("expensive");
  table.replaceChildren(el("tr", {}, ...["time", "model", "customer", "tokens in / out", "cost", "trace"]
    .map((h, i) => el("th", i === 4 ? { class: "num" } : {}, h))));
  for (const call of calls) {
    const trace = template ? el("a", { href: template.replace("{trace_id}", call.trace_id), target: "_blank" },
      call.trace_id.slice(0, 16)) : call.trace_id.slice(0, 16);
    if (template) trace.addEventListener("click", (event) => event.stopPropagation());
    const model = el("td", {}, call.model || "");
    if (call.status === "incomplete_usage") model.append(" ", el("span", { class: "status warning" }, "incomplete"));
    const row = el("tr", { class: "call", title: "how this cost is made up" }, el("td", {}, when(call.start_time)),
      model, el("td", {}, call.customer || ""),
      el("td", {}, `${number(call.input_tokens)} / ${number(call.output_tokens)}`),
      el("td", { class: "num" }, `${money(call.cost)} ${call.currency}`), el("td", {}, trace));
    row.addEventListener("click", () => explainCall(call).catch((error) => {
      $("footer").textContent = `could not explain the call: ${error.message}`;
    }));
    table.append(row);
  }
  if (!calls.length) table.append(el("tr", {}, el("td", { class: "empty", colspan: 6 }, "no calls")));
}

const UNITS = { input_tokens: "input tokens", output_tokens: "output tokens", cache_read_tokens: "cache reads",
                cache_write_tokens: "cache writes", output_reasoning_tokens: "reasoning tokens", requests: "request" };
const per = (n) => n === 1 ? "" : n === 1e6 ? " / 1M" : n === 1e3 ? " / 1K" : ` / ${number(n)}`;

// "Explain a cost": each unit the call is charged for × its unit price, as the catalog prices it now, beside
// what the ledger holds and what the client reported.
async function explainCall(call) {
  const body = await api(`calls/${call.trace_id}/${call.span_id}/cost`);
  const x = body.explanation, stored = body.call, dialog = $("explain");
  const lines = el("table", { class: "lines" });
  const parts = [el("h2", {}, `${stored.model || "?"} · ${stored.provider || "?"} · ${when(stored.start_time)}`)];
  if (x.priced) {
    const unit = x.lines_currency;
    lines.append(el("tr", {}, ...["", "count", "unit price", "cost"].map((h, i) => el("th", i ? { class: "num" } : {}, h))),
      ...x.lines.map((line) => el("tr", { class: "line" }, el("td", {}, UNITS[line.unit] || line.unit),
        el("td", { class: "num" }, number(line.count)),
        el("td", { class: "num" }, `× ${line.unit_price} ${unit}${per(line.per)}`),  // the catalog's, exactly
        el("td", { class: "num" }, `= ${money(line.cost)} ${unit}`))));
    if (x.adjustment) lines.append(el("tr", {}, el("td", { colspan: 3 }, "negotiated adjustment"),
      el("td", { class: "num" }, `× ${x.adjustment}`)));
    if (x.exchange_rate) lines.append(el("tr", {}, el("td", { colspan: 3 }, `USD → ${x.currency}`),
      el("td", { class: "num" }, `× ${x.exchange_rate}`)));
    lines.append(el("tr", { class: "total" }, el("td", { colspan: 3 }, "total"),
      el("td", { class: "num", "data-exact": x.total }, `${money(x.total)} ${x.currency}`)));
    parts.push(lines, el("p", { class: "meta" },
      `price of ${x.provider} / ${x.model}, ${x.tier} tier, from ${x.source} (${x.snapshot})`));
  } else {
    parts.push(el("p", { class: "warning-text" }, `not priced: ${x.reason}`));
  }
  parts.push(el("p", { class: "meta" }, `the ledger holds ${money(stored.cost)} ${stored.currency}, priced with ` +
    `${stored.snapshot || "?"}` + (body.matches_ledger === false && x.priced
      ? `: the catalog prices it ${money(x.total)} ${x.currency} now (genai-collector reprice updates it)` : "")));
  if (stored.reported_cost !== null) {
    const reported = Number(stored.reported_cost), ours = Number(x.priced ? x.total : stored.cost);
    const gap = Math.abs(ours - reported) / Math.max(Math.abs(ours), Math.abs(reported), 1e-12);
    parts.push(el("p", { class: gap > 0.01 ? "warning-text" : "meta" },
      `the client reported ${money(stored.reported_cost)}` + (gap > 0.01 ? `: ${(gap * 100).toFixed(1)}% apart` : "")));
  }
  if (body.trace_url) parts.push(el("p", {}, el("a", { href: body.trace_url, target: "_blank" }, "open the trace")));
  const close = el("button", { class: "close", "aria-label": "close" }, "close");
  close.addEventListener("click", () => dialog.close());
  dialog.replaceChildren(close, ...parts);
  dialog.showModal();
}

async function drawUnpriced() {
  const { models, incomplete } = await api("unpriced");
  $("incomplete-panel").hidden = !incomplete.length;
  $("incomplete").replaceChildren(el("tr", {}, el("th", {}, "provider / model"), el("th", { class: "num" }, "calls"),
    el("th", {}, "last seen")), ...incomplete.map((m) => el("tr", {}, el("td", {}, `${m.provider} / ${m.model}`),
      el("td", { class: "num" }, number(m.calls)), el("td", {}, when(m.last_seen)))));
  $("unpriced-panel").hidden = !models.length;
  $("unpriced").replaceChildren(el("tr", {}, el("th", {}, "provider / model"), el("th", { class: "num" }, "calls"),
    el("th", {}, "last seen"), el("th", {}, "look it up")),
    ...models.map((m) => el("tr", {}, el("td", {}, `${m.provider} / ${m.model}`),
      el("td", { class: "num" }, number(m.calls)), el("td", {}, m.last_seen.slice(0, 19).replace("T", " ")),
      el("td", {}, el("code", {}, `genai-collector pricing lookup --provider ${m.provider} --model ${m.model}`)))));
}

function drawFilters() {
  $("filters").replaceChildren(...Object.entries(state.filters).map(([key, value]) => {
    const chip = el("span", { class: "chip", "data-filter": key }, `${key} = ${value}`);
    chip.addEventListener("click", () => { delete state.filters[key]; refresh(); });
    return chip;
  }));
}

// The view lives in the address (?period=7d&stack=model&filter[customer]=acme, or from=…&to=… for a custom
// range), so a view survives a reload and can be shared as a link; the token never stays in it.
function readView() {
  for (const [key, value] of new URLSearchParams(location.search)) {
    const filter = key.match(/^filter\[(.+)\]$/);
    if (filter) state.filters[filter[1]] = value;
    else if (key === "stack" && [...$("stack-by").options].some((option) => option.value === value)) {
      state.stackBy = value;
    } else if (key === "period" && ["24h", "7d", "30d"].includes(value)) state.period = value;
    else if ((key === "from" || key === "to") && !Number.isNaN(Date.parse(value))) state[key] = value;
  }
}

function writeView() {
  const query = new URLSearchParams();
  if (state.from && state.to) {
    query.set("from", state.from);
    query.set("to", state.to);
  } else {
    query.set("period", state.period);
  }
  query.set("stack", state.stackBy);
  for (const [key, value] of Object.entries(state.filters)) query.set(`filter[${key}]`, value);
  history.replaceState(null, "", `${location.pathname}?${query}`);
}

async function refresh() {
  const r = range();
  writeView();
  drawFilters();
  document.body.dataset.loading = "true";
  try {
    await Promise.all([drawTotals(r), drawChart(r), drawBreakdowns(r), drawBudgets(), drawExpensive(r),
                       drawUnpriced()]);
    const prices = state.info.price_snapshot ? ` · prices: ${state.info.price_snapshot}` : "";
    $("footer").textContent = `genai-cost-collector ${state.info.version}${prices} · ${r.from} – ${r.to}`;
  } catch (error) {
    $("footer").textContent = `could not load: ${error.message}`;
  } finally {
    document.body.dataset.loading = "false";
  }
}

async function main() {
  try {
    state.info = await api("info");
  } catch (error) {
    $("footer").textContent = error.message;
    return;
  }
  readView();
  $("stack-by").value = state.stackBy;
  for (const button of document.querySelectorAll("#periods button[data-period]")) {
    button.classList.toggle("active", !state.from && button.dataset.period === state.period);
    button.addEventListener("click", () => {
      document.querySelectorAll("#periods button").forEach((b) => b.classList.remove("active"));
      button.classList.add("active");
      Object.assign(state, { period: button.dataset.period, from: null, to: null });
      refresh();
    });
  }
  $("apply-custom").addEventListener("click", () => {
    if (!$("custom-from").value || !$("custom-to").value) return;
    Object.assign(state, { from: `${$("custom-from").value}T00:00:00Z`, to: `${$("custom-to").value}T00:00:00Z` });
    refresh();
  });
  $("stack-by").addEventListener("change", (event) => { state.stackBy = event.target.value; refresh(); });
  await refresh();
}

main();
