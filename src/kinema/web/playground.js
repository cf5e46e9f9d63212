// The playground: pick a model, fill its generated form (or a preset), submit, follow
// the generation live (events, else polling), play and download the result.

import { api, ApiError, GENERATIONS, poll, streamEvents, TERMINAL } from "./api.js";
import { $, debounce, fill, fmtBytes, fmtCredits, fmtDollars, fmtInt, fmtSeconds, h, safeUrl, show, sleep } from "./dom.js";
import { SchemaForm } from "./form.js";
import { MODEL_INFO, PRESETS } from "./presets.js";
import { LANGUAGES, snippets } from "./snippets.js";

const POLL_MS = 1000;

export class Playground {
  constructor() {
    this.models = [];
    this.capabilities = {};
    this.disabled = {};
    this.form = null;
    this.model = null;
    this.language = "curl";
    this.quoteSeq = 0;
    this.run = null; // {id, controller, ...}
    this.lastQuote = null;
  }

  async load() {
    const catalogue = await api("GET", "/v2/models", { key: "" });
    // The unified route's models (the legacy vendor routes repeat two of them).
    this.models = catalogue.data.filter((m) => m.route === GENERATIONS);
    this.capabilities = catalogue.capabilities || {};
    this.disabled = catalogue.disabled_engines || {};
    const select = $("#model");
    fill(select, this.models.map((m) => h("option", { value: m.id }, MODEL_INFO[m.id]?.title ? `${MODEL_INFO[m.id].title} (${m.id})` : m.id)));
    select.addEventListener("change", () => this.pick(select.value));
    fill(
      $("#presets"),
      PRESETS.map((preset) =>
        h("button", { type: "button", class: "chip", onclick: () => this.preset(preset), title: `Fill the form with the documented ${preset.body.model} example` }, preset.label),
      ),
    );
    fill(
      $("#code-tabs"),
      LANGUAGES.map(([id, label]) =>
        h("button", { type: "button", role: "tab", id: `code-tab-${id}`, "aria-selected": String(id === this.language), "aria-controls": "code", onclick: () => this.showCode(id) }, label),
      ),
    );
    $("#copy-code").addEventListener("click", () => copy($("#code-text").textContent, $("#copy-code")));
    $("#request-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    $("#cancel").addEventListener("click", () => this.cancel());
    this.pick(this.models[0]?.id);
  }

  pick(modelId, values) {
    const model = this.models.find((m) => m.id === modelId);
    if (!model) return;
    this.model = model;
    $("#model").value = model.id;
    const info = MODEL_INFO[model.id];
    $("#model-about").textContent = info?.about || model.schema.description || "";
    this.describeBackends(info?.needs || []);
    this.form = new SchemaForm($("#fields"), model.schema, () => this.changed());
    if (values) this.form.fill(values);
    this.setFormError("");
    this.changed();
  }

  describeBackends(needs) {
    const parts = needs.map((capability) => {
      const engine = this.capabilities[capability];
      return engine ? `${capability} → ${engine}` : `${capability} → not served here`;
    });
    $("#model-backend").textContent = parts.length ? `Backends: ${parts.join(" · ")}` : "";
  }

  preset(preset) {
    const { model, ...values } = preset.body;
    this.pick(model, values);
    $("#model").focus();
  }

  changed() {
    this.renderCode();
    this.requestQuote();
  }

  // ------------------------------------------------------------- code panel
  showCode(language) {
    this.language = language;
    for (const [id] of LANGUAGES) $(`#code-tab-${id}`).setAttribute("aria-selected", String(id === language));
    this.renderCode();
  }

  renderCode() {
    if (!this.form) return;
    const all = snippets(location.origin, this.model.route, this.form.described(this.model.id));
    $("#code-text").textContent = all[this.language];
  }

  // ------------------------------------------------------------- quote
  requestQuote = debounce(async () => {
    const seq = ++this.quoteSeq;
    const out = $("#quote");
    const body = this.form.body(this.model.id);
    const missing = [...this.form.fields.values()].some((f) => f.required && f.read() === undefined);
    if (missing) {
      out.textContent = "Fill the required fields (*) to see the backend and the price.";
      this.lastQuote = null;
      return;
    }
    try {
      const quote = await api("POST", this.model.route, { body, query: { dry_run: "true" } });
      if (seq !== this.quoteSeq) return;
      this.lastQuote = quote;
      const credits = quote.meta?.usage?.credits_used;
      out.textContent = `Rendered by ${quote.backend} (${quote.capability}) · reserves ${fmtInt(credits)} credits (${fmtDollars(credits)}); the real length is charged`;
    } catch (err) {
      if (seq !== this.quoteSeq) return;
      this.lastQuote = null;
      if (err instanceof ApiError && err.status === 401) return;
      const detail = err.details?.[0];
      out.textContent = detail ? `Not ready: ${detail.field}: ${detail.message}` : `Not ready: ${err.message}`;
    }
  }, 350);

  // ------------------------------------------------------------- submit
  setFormError(message, extra = []) {
    const box = $("#form-error");
    fill(box, message ? h("p", {}, message) : null, extra.length ? h("ul", {}, extra.map((d) => h("li", {}, `${d.field}: ${d.message}`))) : null);
    show(box, Boolean(message || extra.length));
  }

  async submit() {
    this.setFormError("");
    if (!this.form.validate()) {
      this.setFormError("Some fields need attention.");
      return;
    }
    const button = $("#submit");
    button.disabled = true;
    const body = this.form.body(this.model.id);
    const described = this.form.described(this.model.id);
    let created;
    try {
      created = await api("POST", this.model.route, { body });
    } catch (err) {
      button.disabled = false;
      if (err instanceof ApiError && err.details.length) {
        const unplaced = this.form.showServerErrors(err.details);
        this.setFormError(err.message, unplaced);
      } else {
        this.setFormError(err.message);
      }
      return;
    }
    button.disabled = false;
    const id = created.id || created.generation_id;
    document.dispatchEvent(new CustomEvent("kinema:submitted", { detail: { id } }));
    this.track(id, described, this.lastQuote);
  }

  // ------------------------------------------------------------- live status
  track(id, described, quote) {
    this.run?.controller.abort();
    const controller = new AbortController();
    const run = { id, controller, started: performance.now(), generatingAt: null, maxProgress: 0, quote, described, last: null };
    this.run = run;
    show($("#run"));
    show($("#result"), false);
    $("#run-id").textContent = id;
    $("#run-model").textContent = described.model;
    $("#run-prompt").textContent = described.prompt ?? "";
    show($("#run-prompt-line"), typeof described.prompt === "string");
    const bar = $("#run-progress");
    bar.value = 0;
    bar.dataset.max = "0";
    $("#cancel").disabled = false;
    show($("#cancel"));
    $("#run-status").textContent = "Submitted";
    $("#run-phase").textContent = "";
    this.follow(run).catch((err) => {
      if (err.name !== "AbortError") $("#run-phase").textContent = `Lost track of the generation: ${err.message}`;
    });
    $("#run").scrollIntoView({ block: "nearest" });
  }

  async follow(run) {
    const { signal } = run.controller;
    const update = (generation) => {
      if (this.run === run) this.render(run, generation);
    };
    update(await poll(run.id, signal));
    if (!TERMINAL.has(run.last?.status)) {
      try {
        await streamEvents(run.id, update, signal);
      } catch (err) {
        if (err.name === "AbortError") throw err; // no stream (or it broke): poll instead
      }
    }
    while (!TERMINAL.has(run.last?.status)) {
      await sleep(POLL_MS, signal);
      update(await poll(run.id, signal));
    }
  }

  render(run, g) {
    if (run.last && TERMINAL.has(run.last.status)) return; // a late event after the end
    run.last = g;
    const now = performance.now();
    const bar = $("#run-progress");
    const status = $("#run-status");
    const phase = $("#run-phase");
    if (g.status === "queued") {
      status.textContent = "Queued";
      const ahead = g.queue_position ?? 0;
      phase.textContent = ahead > 0 ? `Position in queue: ${ahead + 1} (${ahead} ahead)` : "Next in line";
    } else if (g.status === "generating") {
      run.generatingAt ??= now;
      const p = Math.max(0, Math.min(100, g.progress ?? 0));
      setProgress(bar, p);
      const elapsed = (now - run.generatingAt) / 1000;
      const eta = p > 0 ? (elapsed * (100 - p)) / p : null;
      status.textContent = `Generating — ${p} %`;
      phase.textContent = eta === null ? "Starting…" : `About ${fmtSeconds(eta)} left`;
    } else if (g.status === "completed") {
      setProgress(bar, 100);
      status.textContent = "Completed";
      phase.textContent = `in ${fmtSeconds((now - run.started) / 1000)}`;
      show($("#cancel"), false);
      this.showResult(run, g);
      document.dispatchEvent(new CustomEvent("kinema:finished", { detail: { id: run.id } }));
    } else if (g.status === "error") {
      const cancelled = g.error?.name === "Cancelled";
      status.textContent = cancelled ? "Cancelled" : "Failed";
      phase.textContent = g.error ? `${g.error.name}: ${g.error.message}` : "";
      show($("#cancel"), false);
      document.dispatchEvent(new CustomEvent("kinema:finished", { detail: { id: run.id } }));
    }
    $("#run").dataset.status = g.status;
  }

  showResult(run, g) {
    const video = g.video;
    if (!video) return;
    const url = safeUrl(video.url);
    const player = $("#result-video");
    player.removeAttribute("poster");
    player.addEventListener("loadeddata", () => setPoster(player), { once: true });
    player.src = url;
    player.load();
    const link = $("#download");
    link.href = url;
    link.setAttribute("download", video.file_name || `${run.id}.mp4`);
    const credits = g.meta?.usage?.credits_used;
    const rows = [
      ["Duration", fmtSeconds(video.duration)],
      ["Size", fmtBytes(video.file_size)],
      ["Frame", `${video.width} × ${video.height}`],
      ["Credits", credits === undefined ? "—" : fmtCredits(credits)],
      ["Backend", run.quote?.backend || "—"],
      ["Model", g.model],
    ];
    fill($("#result-meta"), rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    show($("#result"));
  }

  async cancel() {
    const run = this.run;
    if (!run) return;
    $("#cancel").disabled = true;
    try {
      const g = await api("POST", `${GENERATIONS}/cancel`, { query: { generation_id: run.id } });
      this.render(run, g);
    } catch (err) {
      $("#run-phase").textContent = err.status === 409 ? "It had already finished." : `Cancel failed: ${err.message}`;
    }
  }
}

/** The first frame as the player's poster (skipped for a cross-origin video, whose
 * frames a page may not read back). */
function setPoster(player) {
  try {
    const canvas = h("canvas", { width: player.videoWidth, height: player.videoHeight });
    canvas.getContext("2d").drawImage(player, 0, 0);
    canvas.toBlob((blob) => {
      if (blob) player.poster = URL.createObjectURL(blob);
    }, "image/jpeg", 0.85);
  } catch {
    // tainted canvas (another origin): the browser shows the first frame anyway
  }
}

function setProgress(bar, value) {
  bar.value = value;
  bar.dataset.max = String(Math.max(Number(bar.dataset.max || 0), value));
  bar.setAttribute("aria-valuetext", `${value} %`);
}

export async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    const before = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = before), 1500);
  } catch {
    button.textContent = "Select and copy";
  }
}

