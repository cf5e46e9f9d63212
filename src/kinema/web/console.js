// The operator console (admin keys only): keys (create, shown once; credit; revoke) with
// their usage, usage over time, queue depth, live workers, engines and their health,
// recent failures, the audit log. Everything through /v2/admin with the bearer key.

import { api } from "./api.js";
import { $, fill, fmtAgo, fmtCredits, fmtDate, fmtInt, fmtSeconds, fmtTime, h, show, svg } from "./dom.js";
import { copy } from "./playground.js";

const ADMIN = "/v2/admin";
const REFRESH_MS = 5000;
const METRICS = {
  jobs: ["Generations", (n) => fmtInt(n)],
  seconds_rendered: ["Seconds rendered", (n) => fmtSeconds(n)],
  credits_used: ["Credits charged", (n) => fmtInt(n)],
};

export class Console {
  constructor() {
    this.keys = [];
    this.timer = 0;
    $("#new-key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.createKey();
    });
    $("#usage-metric").addEventListener("change", () => this.loadUsage());
    $("#usage-key").addEventListener("change", () => this.loadUsage());
    $("#secret-done").addEventListener("click", () => this.hideSecret());
    $("#secret-copy").addEventListener("click", () => copy($("#secret-value").value, $("#secret-copy")));
    $("#console-refresh").addEventListener("click", () => this.load());
  }

  /** True when the key is an admin key (the console is then offered). */
  async allowed() {
    try {
      await api("GET", `${ADMIN}/queue`);
      return true;
    } catch {
      return false;
    }
  }

  start() {
    this.load();
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (!document.hidden) this.loadLive();
    }, REFRESH_MS);
  }

  stop() {
    clearInterval(this.timer);
  }

  async load() {
    await Promise.all([this.loadKeys(), this.loadLive(), this.loadUsage(), this.loadAudit()]);
  }

  async loadLive() {
    await Promise.all([this.loadQueue(), this.loadWorkers(), this.loadEngines(), this.loadFailures()]);
    $("#console-updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  async section(id, fn) {
    const note = $(`#${id}-note`);
    try {
      await fn();
      if (note) note.textContent = "";
    } catch (err) {
      if (note) note.textContent = `Could not load: ${err.message}`;
    }
  }

  // ------------------------------------------------------------- keys
  loadKeys() {
    return this.section("keys", async () => {
      const { data } = await api("GET", `${ADMIN}/keys`, { query: { days: 30 } });
      this.keys = data;
      fill($("#keys-body"), data.map((k) => this.keyRow(k)));
      const select = $("#usage-key");
      const chosen = select.value;
      fill(select, h("option", { value: "" }, "All keys"), data.map((k) => h("option", { value: k.id }, `${k.name} (${k.id})`)));
      select.value = data.some((k) => k.id === chosen) ? chosen : "";
    });
  }

  keyRow(k) {
    const revoked = Boolean(k.revoked_at);
    const amount = h("input", { type: "number", step: "1", id: `credit-${k.id}`, class: "narrow", placeholder: "+ credits", "aria-label": `Credits to add to ${k.name}` });
    const add = h("button", { type: "button", class: "secondary" }, "Add");
    add.addEventListener("click", () => this.credit(k, amount));
    const actions = h("td", { class: "actions" });
    if (!revoked) {
      const revoke = h("button", { type: "button", class: "secondary danger", "aria-label": `Revoke ${k.name}` }, "Revoke");
      revoke.addEventListener("click", () => this.confirmRevoke(k, actions, revoke));
      actions.append(h("span", { class: "inline" }, amount, add), revoke);
    }
    return h(
      "tr",
      { "data-key": k.id, class: revoked ? "revoked" : "" },
      h("th", { scope: "row" }, k.name, k.admin ? h("span", { class: "badge admin" }, "admin") : null),
      h("td", { class: "mono" }, k.id, h("br"), h("span", { class: "muted" }, `${k.prefix}…`)),
      h("td", {}, fmtCredits(k.credits)),
      h("td", { class: "num" }, fmtInt(k.usage.jobs)),
      h("td", { class: "num" }, fmtSeconds(k.usage.seconds_rendered)),
      h("td", { class: "num" }, fmtInt(k.usage.credits_used)),
      h("td", {}, fmtDate(k.created_at)),
      h("td", {}, revoked ? h("span", { class: "badge error" }, "revoked") : h("span", { class: "badge completed" }, "active")),
      actions,
    );
  }

  async createKey() {
    const name = $("#new-key-name");
    const credits = $("#new-key-credits");
    const error = $("#new-key-error");
    error.textContent = "";
    if (!name.value.trim()) {
      error.textContent = "Give the key a name.";
      name.setAttribute("aria-invalid", "true");
      name.focus();
      return;
    }
    name.setAttribute("aria-invalid", "false");
    const body = { name: name.value.trim(), credits: credits.value === "" ? null : Number(credits.value), admin: $("#new-key-admin").checked };
    try {
      const created = await api("POST", `${ADMIN}/keys`, { body });
      $("#new-key-form").reset();
      this.showSecret(created);
      await Promise.all([this.loadKeys(), this.loadAudit()]);
    } catch (err) {
      error.textContent = err.details?.length ? err.details.map((d) => `${d.field}: ${d.message}`).join("; ") : err.message;
    }
  }

  showSecret(created) {
    $("#secret-name").textContent = `${created.name} (${created.id})`;
    $("#secret-value").value = created.secret;
    show($("#new-secret"));
    $("#secret-value").focus();
    $("#secret-value").select();
  }

  hideSecret() {
    $("#secret-value").value = "";
    show($("#new-secret"), false);
  }

  async credit(k, input) {
    const note = $("#keys-note");
    const add = Number(input.value);
    if (!input.value || !Number.isInteger(add)) {
      note.textContent = `Enter a whole number of credits for ${k.name}.`;
      input.focus();
      return;
    }
    try {
      const changed = await api("POST", `${ADMIN}/keys/${encodeURIComponent(k.id)}/credit`, { body: { add } });
      note.textContent = `${changed.name}: balance ${fmtCredits(changed.credits)}.`;
      await Promise.all([this.loadKeys(), this.loadAudit()]);
    } catch (err) {
      note.textContent = `Could not credit ${k.name}: ${err.message}`;
    }
  }

  confirmRevoke(k, cell, button) {
    const yes = h("button", { type: "button", class: "danger" }, `Revoke ${k.name} now`);
    const no = h("button", { type: "button", class: "secondary" }, "Cancel");
    show(button, false);
    cell.append(yes, no);
    yes.focus();
    no.addEventListener("click", () => {
      yes.remove();
      no.remove();
      show(button);
      button.focus();
    });
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      try {
        await api("POST", `${ADMIN}/keys/${encodeURIComponent(k.id)}/revoke`);
        $("#keys-note").textContent = `Revoked ${k.name} (${k.id}).`;
        await Promise.all([this.loadKeys(), this.loadAudit()]);
      } catch (err) {
        $("#keys-note").textContent = `Could not revoke ${k.name}: ${err.message}`;
        yes.disabled = false;
      }
    });
  }

  // ------------------------------------------------------------- usage chart
  loadUsage() {
    return this.section("usage", async () => {
      const days = 14;
      const usage = await api("GET", `${ADMIN}/usage`, { query: { days, bucket: "day", key_id: $("#usage-key").value } });
      const metric = $("#usage-metric").value;
      const [label, format] = METRICS[metric];
      const totals = new Map();
      const start = new Date(usage.since).getTime();
      for (let i = 0; i <= days; i++) totals.set(start + i * 86400_000, 0);
      for (const point of usage.data) {
        const t = new Date(point.start).getTime();
        totals.set(t, (totals.get(t) || 0) + point[metric]);
      }
      const series = [...totals.entries()].sort((a, b) => a[0] - b[0]);
      drawBars($("#usage-chart"), series, label, format);
      const sum = series.reduce((acc, [, v]) => acc + v, 0);
      $("#usage-total").textContent = `${label}, last ${days} days: ${format(sum)}`;
    });
  }

  // ------------------------------------------------------------- live panels
  loadQueue() {
    return this.section("queue", async () => {
      const q = await api("GET", `${ADMIN}/queue`);
      $("#queue-summary").textContent = `${fmtInt(q.queued)} queued · ${fmtInt(q.generating)} generating`;
      fill($("#queue-body"), q.data.length ? q.data.map((d) => h("tr", {}, h("th", { scope: "row", class: "mono" }, d.model), h("td", { class: "num" }, fmtInt(d.queued)), h("td", { class: "num" }, fmtInt(d.generating)))) : emptyRow(3, "The queue is empty."));
    });
  }

  loadWorkers() {
    return this.section("workers", async () => {
      const w = await api("GET", `${ADMIN}/workers`);
      fill(
        $("#workers-body"),
        w.data.length
          ? w.data.map((x) =>
              h(
                "tr",
                {},
                h("th", { scope: "row", class: "mono" }, x.id),
                h("td", {}, `${x.host} (pid ${x.pid})`),
                h("td", {}, x.engines.join(", ") || "—"),
                h("td", {}, x.devices.join(", ") || "—"),
                h("td", { class: "mono" }, x.current_job || "idle"),
                h("td", { class: "num" }, fmtInt(x.jobs_done)),
                h("td", {}, fmtAgo(x.last_seen)),
              ),
            )
          : emptyRow(7, `No live worker (none seen in the last ${w.live_seconds} s): queued jobs wait.`),
      );
    });
  }

  loadEngines() {
    return this.section("engines", async () => {
      const e = await api("GET", `${ADMIN}/engines`);
      const label = { ok: "ok", degraded: "degraded", no_worker: "no worker", disabled: "disabled" };
      const tone = { ok: "completed", degraded: "error", no_worker: "queued", disabled: "error" };
      fill(
        $("#engines-body"),
        e.data.map((x) =>
          h(
            "tr",
            { "data-engine": x.name },
            h("th", { scope: "row" }, x.name),
            h("td", {}, h("span", { class: `badge ${tone[x.status]}` }, label[x.status])),
            h("td", {}, `${x.kind}${x.device ? ` · ${x.device}` : ""}`),
            h("td", {}, x.routes.join(", ") || "—"),
            h("td", { class: "num" }, `${fmtInt(x.completed)} / ${fmtInt(x.failed)}`),
            h("td", { class: "small" }, x.reason || ""),
          ),
        ),
      );
    });
  }

  loadFailures() {
    return this.section("failures", async () => {
      const f = await api("GET", `${ADMIN}/failures`, { query: { hours: 24 } });
      fill(
        $("#failures-body"),
        f.data.length
          ? f.data.map((x) => h("tr", {}, h("th", { scope: "row" }, x.name), h("td", { class: "num" }, fmtInt(x.count)), h("td", {}, fmtAgo(x.last_at)), h("td", { class: "mono small" }, x.last_model), h("td", { class: "small" }, x.last_message)))
          : emptyRow(5, "No failures in the last 24 hours."),
      );
    });
  }

  loadAudit() {
    return this.section("audit", async () => {
      const a = await api("GET", `${ADMIN}/audit`, { query: { limit: 20 } });
      fill(
        $("#audit-body"),
        a.data.length
          ? a.data.map((x) =>
              h(
                "tr",
                {},
                h("td", {}, fmtTime(x.at)),
                h("td", { class: "mono" }, x.actor),
                h("th", { scope: "row" }, x.action),
                h("td", { class: "mono" }, x.target || "—"),
                h("td", { class: "small mono" }, Object.entries(x.detail).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")),
              ),
            )
          : emptyRow(5, "No admin actions yet."),
      );
    });
  }
}

function emptyRow(span, text) {
  return h("tr", {}, h("td", { colspan: String(span), class: "muted" }, text));
}

/** A bar chart in SVG (attributes only: no inline style), with a text alternative. */
function drawBars(host, series, label, format) {
  const width = Math.max(300, Math.round(host.clientWidth || 640));
  const height = 180;
  const pad = { left: 8, right: 8, top: 12, bottom: 28 };
  const max = Math.max(1, ...series.map(([, v]) => v));
  const step = (width - pad.left - pad.right) / Math.max(1, series.length);
  const bar = Math.max(2, step * 0.7);
  const plot = height - pad.top - pad.bottom;
  const day = (t) => new Date(t).toLocaleDateString(undefined, { month: "short", day: "numeric" });
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": `${label} per day: ${series.map(([t, v]) => `${day(t)} ${format(v)}`).join(", ")}` });
  chart.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: height - pad.bottom, y2: height - pad.bottom, class: "axis" }));
  series.forEach(([t, v], i) => {
    const barHeight = (v / max) * plot;
    const x = pad.left + i * step + (step - bar) / 2;
    const rect = svg("rect", { x: x.toFixed(1), y: (height - pad.bottom - barHeight).toFixed(1), width: bar.toFixed(1), height: Math.max(0, barHeight).toFixed(1), rx: "2", class: "bar" });
    rect.append(svg("title", {}, `${day(t)}: ${format(v)}`));
    chart.append(rect);
    if (i % Math.ceil(series.length / 7) === 0) {
      chart.append(svg("text", { x: (x + bar / 2).toFixed(1), y: String(height - 8), "text-anchor": "middle", class: "tick" }, day(t)));
    }
  });
  fill(host, chart);
}
