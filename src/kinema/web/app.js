// Boot: the API key gate, the tabs (playground, history, console), wiring.

import { api, ApiError, keyStore, onUnauthorized } from "./api.js";
import { Console } from "./console.js";
import { $, $$, show } from "./dom.js";
import { History } from "./history.js";
import { Playground } from "./playground.js";

const TABS = ["playground", "history", "console"];

class App {
  constructor() {
    this.playground = new Playground();
    this.history = new History();
    this.console = new Console();
    this.ready = false;
    this.admin = false;
  }

  async start() {
    $("#key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.useKey($("#api-key").value.trim());
    });
    $("#forget-key").addEventListener("click", () => this.lock("Enter another key."));
    const tablist = $("#tabs");
    tablist.addEventListener("keydown", (e) => this.tabKeys(e));
    for (const name of TABS) $(`#tab-${name}`).addEventListener("click", () => this.select(name, true));
    window.addEventListener("hashchange", () => this.fromHash());
    document.addEventListener("kinema:finished", () => {
      if (this.current === "history") this.history.load();
    });
    onUnauthorized(() => this.lock("This key is no longer accepted by the server (revoked, or it was mistyped). Enter a valid key."));
    const saved = keyStore.get();
    if (saved) await this.useKey(saved, true);
    else this.lock();
  }

  /** Check a key against the server; keep it (localStorage) only if it works. */
  async useKey(key, saved = false) {
    const error = $("#key-error");
    error.textContent = "";
    if (!key) {
      error.textContent = "Enter an API key.";
      $("#api-key").focus();
      return;
    }
    const button = $("#key-submit");
    button.disabled = true;
    try {
      await api("GET", "/v2/video/generations/list", { query: { limit: 1 }, key });
    } catch (err) {
      button.disabled = false;
      if (err instanceof ApiError && err.status === 401) {
        if (saved) keyStore.clear();
        this.lock(saved ? "The saved key is not accepted any more. Enter a valid key." : "");
        error.textContent = "This server does not accept that key. Check it, or make one with `kinema keys create --name NAME`.";
      } else {
        this.lock();
        error.textContent = `Could not check the key: ${err.message}`;
      }
      return;
    }
    button.disabled = false;
    keyStore.set(key);
    $("#api-key").value = "";
    $("#key-label").textContent = `Key ${key.slice(0, 10)}…`;
    await this.unlock();
  }

  async unlock() {
    show($("#key-gate"), false);
    show($("#session"));
    show($("#tabs"));
    if (!this.ready) {
      try {
        await this.playground.load();
      } catch (err) {
        $("#form-error").textContent = `Could not load the models: ${err.message}`;
        show($("#form-error"));
      }
      this.ready = true;
    }
    this.admin = await this.console.allowed();
    show($("#tab-console"), this.admin);
    this.fromHash();
  }

  lock(message = "") {
    keyStore.clear();
    this.console.stop();
    for (const name of TABS) show($(`#view-${name}`), false);
    show($("#tabs"), false);
    show($("#session"), false);
    show($("#key-gate"));
    $("#key-message").textContent = message;
    show($("#key-message"), Boolean(message));
    $("#api-key").focus();
  }

  fromHash() {
    const name = location.hash.slice(1);
    this.select(TABS.includes(name) && (name !== "console" || this.admin) ? name : "playground");
  }

  select(name, focus = false) {
    this.current = name;
    for (const tab of TABS) {
      const on = tab === name;
      const button = $(`#tab-${tab}`);
      button.setAttribute("aria-selected", String(on));
      button.tabIndex = on ? 0 : -1;
      show($(`#view-${tab}`), on);
    }
    if (location.hash.slice(1) !== name) history.replaceState(null, "", `#${name}`);
    if (name === "history") this.history.load();
    if (name === "console") this.console.start();
    else this.console.stop();
    if (focus) $(`#tab-${name}`).focus();
  }

  tabKeys(e) {
    const visible = $$("[role=tab]", $("#tabs")).filter((t) => !t.hidden);
    const i = visible.indexOf(document.activeElement);
    if (i < 0) return;
    let next = null;
    if (e.key === "ArrowRight") next = visible[(i + 1) % visible.length];
    else if (e.key === "ArrowLeft") next = visible[(i - 1 + visible.length) % visible.length];
    else if (e.key === "Home") next = visible[0];
    else if (e.key === "End") next = visible[visible.length - 1];
    if (next) {
      e.preventDefault();
      this.select(next.id.replace("tab-", ""), true);
    }
  }
}

new App().start();
