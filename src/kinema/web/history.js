// History: the key's generations, newest first, a page at a time (keyset cursors), each
// with its status, a thumbnail (the video's first frame) and delete.

import { api, GENERATIONS } from "./api.js";
import { $, fill, fmtBytes, fmtCredits, fmtSeconds, h, show } from "./dom.js";

export const PAGE_SIZE = 8;

export class History {
  constructor() {
    this.cursors = [null]; // the `after` of each page shown so far
    this.page = 0;
    this.next = null;
    this.loading = null;
    $("#history-newer").addEventListener("click", () => this.go(this.page - 1));
    $("#history-older").addEventListener("click", () => this.go(this.page + 1));
    $("#history-refresh").addEventListener("click", () => this.load());
  }

  go(page) {
    if (page < 0) return;
    if (page > this.page) {
      if (!this.next) return;
      this.cursors[page] = this.next;
    }
    this.page = page;
    this.load();
  }

  async load() {
    const status = $("#history-status");
    status.textContent = "Loading…";
    try {
      const data = await api("GET", `${GENERATIONS}/list`, { query: { limit: PAGE_SIZE, after: this.cursors[this.page] } });
      this.next = data.next;
      this.render(data.data);
      const first = this.page * PAGE_SIZE + 1;
      status.textContent = data.data.length ? `Generations ${first}–${first + data.data.length - 1}` : this.page ? "No more generations." : "No generations yet: make one in the Playground.";
    } catch (err) {
      status.textContent = `Could not load the history: ${err.message}`;
    }
    $("#history-newer").disabled = this.page === 0;
    $("#history-older").disabled = !this.next;
  }

  render(items) {
    fill($("#history-list"), items.map((g) => this.item(g)));
  }

  item(g) {
    const badge = h("span", { class: `badge ${g.status}` }, g.error?.name === "Cancelled" ? "cancelled" : g.status);
    let thumb;
    if (g.status === "completed" && g.video) {
      // The first frame, from the video itself (preload=metadata + #t).
      thumb = h("video", { class: "thumb", src: `${g.video.url}#t=0.1`, preload: "metadata", muted: true, playsinline: true, "aria-hidden": "true", tabindex: "-1" });
      thumb.muted = true;
    } else {
      thumb = h("div", { class: `thumb placeholder ${g.status}`, "aria-hidden": "true" }, g.status === "error" ? "!" : "…");
    }
    const facts = [];
    if (g.video) facts.push(fmtSeconds(g.video.duration), `${g.video.width}×${g.video.height}`, fmtBytes(g.video.file_size));
    if (g.meta?.usage) facts.push(`${fmtCredits(g.meta.usage.credits_used)} credits`);
    if (g.status === "queued" || g.status === "generating") facts.push(g.status === "queued" ? `queue position ${(g.queue_position ?? 0) + 1}` : `${g.progress ?? 0} %`);
    const actions = h("div", { class: "actions" });
    if (g.video) actions.append(h("a", { class: "button secondary", href: g.video.url, download: g.video.file_name, "aria-label": `Download ${g.id}` }, "Download"));
    const del = h("button", { type: "button", class: "secondary danger", "aria-label": `Delete ${g.id}` }, "Delete");
    del.addEventListener("click", () => this.confirmDelete(g, actions, del));
    actions.append(del);
    return h(
      "li",
      { class: "generation", "data-id": g.id, "data-status": g.status },
      thumb,
      h(
        "div",
        { class: "about" },
        h("p", {}, badge, " ", h("strong", {}, g.model)),
        h("p", { class: "mono small" }, g.id),
        facts.length ? h("p", { class: "muted small" }, facts.join(" · ")) : null,
        g.error ? h("p", { class: "small error-text" }, `${g.error.name}: ${g.error.message}`) : null,
      ),
      actions,
    );
  }

  confirmDelete(g, actions, del) {
    const yes = h("button", { type: "button", class: "danger" }, "Delete for good");
    const no = h("button", { type: "button", class: "secondary" }, "Keep");
    const question = h("span", { class: "small", role: "status" }, "Delete this generation and its video?");
    const restore = () => {
      question.remove();
      yes.remove();
      no.remove();
      show(del);
      del.focus();
    };
    show(del, false);
    actions.append(question, yes, no);
    yes.focus();
    no.addEventListener("click", restore);
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      try {
        await api("DELETE", GENERATIONS, { query: { generation_id: g.id } });
        $("#history-status").textContent = `Deleted ${g.id}.`;
        await this.load();
      } catch (err) {
        question.textContent = `Could not delete: ${err.message}`;
        yes.disabled = false;
      }
    });
  }
}
