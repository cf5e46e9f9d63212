// A request form generated from a model's JSON Schema (GET /v2/models: the same pydantic
// classes the API validates with): enums as choices, defaults pre-filled, descriptions as
// help, required fields marked; media fields take a dropped/picked file or a URL.

import { $, $$, fmtBytes, h } from "./dom.js";

// Fields that carry media (as the SDK's kinema.client._inputs.MEDIA_FIELDS).
export const MEDIA_FIELDS = {
  image_url: "image",
  first_frame_image: "image",
  last_image_url: "image",
  tail_image_url: "image",
  audio_url: "audio",
  video_url: "video",
};
const ACCEPT = {
  image: "image/png,image/jpeg,image/webp",
  audio: "audio/mpeg,audio/mp3,audio/wav,audio/x-wav,audio/mp4,audio/aac,audio/ogg,.mp3,.wav,.m4a,.aac,.ogg",
  video: "video/mp4,video/quicktime,video/webm,.mp4,.mov,.webm",
};
const NOUN = { image: "an image", audio: "an audio file", video: "a video" };
const MAX_FILE_BYTES = 20 * 1024 * 1024; // the server's per-input cap
const LONG_TEXT = /prompt|content/;

function variants(prop) {
  return prop.anyOf || prop.oneOf || [prop];
}

function choicesOf(prop) {
  for (const v of variants(prop)) {
    if (Array.isArray(v.enum)) return v.enum;
    if ("const" in v) return [v.const];
  }
  return null;
}

function typeOf(prop) {
  for (const v of variants(prop)) {
    if (v.type && v.type !== "null") return v.type;
  }
  return "string";
}

const nullable = (prop) => variants(prop).some((v) => v.type === "null");

function maxLengthOf(prop) {
  for (const v of variants(prop)) if (v.maxLength) return v.maxLength;
  return undefined;
}

/** A model's form. `onChange` runs after any edit. */
export class SchemaForm {
  constructor(container, schema, onChange) {
    this.container = container;
    this.schema = schema;
    this.onChange = onChange;
    this.fields = new Map(); // name -> {kind, prop, el, read, write, error}
    const required = new Set(schema.required || []);
    const props = schema.properties || {};
    const nodes = [];
    for (const [name, prop] of Object.entries(props)) {
      if (name === "model") continue;
      nodes.push(this.build(name, prop, required.has(name)));
    }
    container.replaceChildren(...nodes);
  }

  build(name, prop, required) {
    const id = `f-${name}`;
    const help = prop.description ? h("p", { class: "help", id: `${id}-help` }, prop.description) : null;
    const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
    const describedBy = [help && `${id}-help`, `${id}-error`].filter(Boolean).join(" ");
    const mark = required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null;
    const labelText = [h("code", {}, name), mark, required ? h("span", { class: "sr-only" }, " (required)") : null];
    const field = { name, prop, required, error };
    let wrap;
    if (MEDIA_FIELDS[name]) {
      wrap = this.media(field, id, labelText, help, describedBy);
    } else {
      const choices = choicesOf(prop);
      const type = typeOf(prop);
      let control;
      if (choices) {
        const options = [];
        const hasDefault = prop.default !== undefined && prop.default !== null;
        if (!required && (nullable(prop) || !hasDefault)) options.push(h("option", { value: "" }, "— not set —"));
        choices.forEach((choice, i) => options.push(h("option", { value: String(i) }, String(choice))));
        control = h("select", { id }, options);
        const index = choices.findIndex((c) => c === prop.default);
        control.value = index >= 0 ? String(index) : "";
        field.read = () => (control.value === "" ? undefined : choices[Number(control.value)]);
        field.write = (v) => {
          const i = choices.findIndex((c) => String(c) === String(v));
          control.value = i >= 0 ? String(i) : "";
        };
      } else if (type === "boolean") {
        control = h("input", { id, type: "checkbox" });
        control.checked = prop.default === true;
        field.read = () => control.checked;
        field.write = (v) => (control.checked = v === true || v === "true");
      } else if (type === "integer" || type === "number") {
        control = h("input", { id, type: "number", inputmode: type === "integer" ? "numeric" : "decimal", step: type === "integer" ? "1" : "any" });
        if (typeof prop.default === "number") control.value = String(prop.default);
        field.read = () => (control.value.trim() === "" ? undefined : Number(control.value));
        field.write = (v) => (control.value = v === undefined || v === null ? "" : String(v));
      } else {
        const long = LONG_TEXT.test(name) || (maxLengthOf(prop) || 0) > 300;
        control = h(long ? "textarea" : "input", { id, rows: long ? 3 : undefined, type: long ? undefined : "text", maxlength: maxLengthOf(prop), autocomplete: "off", spellcheck: long ? "true" : "false" });
        if (typeof prop.default === "string") control.value = prop.default;
        field.read = () => (control.value === "" ? undefined : control.value);
        field.write = (v) => (control.value = v === undefined || v === null ? "" : String(v));
      }
      control.setAttribute("aria-describedby", describedBy);
      if (required) control.setAttribute("aria-required", "true");
      control.addEventListener("input", () => this.changed(field));
      control.addEventListener("change", () => this.changed(field));
      field.control = control;
      wrap = h("div", { class: "field", "data-field": name }, h("label", { for: id }, labelText), control, help, error);
    }
    field.wrap = wrap;
    this.fields.set(name, field);
    return wrap;
  }

  media(field, id, labelText, help, describedBy) {
    const kind = MEDIA_FIELDS[field.name];
    const fileInput = h("input", { id: `${id}-file`, type: "file", accept: ACCEPT[kind], class: "file-input", "aria-describedby": describedBy });
    const urlInput = h("input", { id, type: "text", inputmode: "url", autocomplete: "off", spellcheck: "false", placeholder: "https://… or data:…", "aria-describedby": describedBy });
    if (field.required) urlInput.setAttribute("aria-required", "true");
    const preview = h("div", { class: "preview", "aria-live": "polite" });
    const clear = h("button", { type: "button", class: "link", hidden: true }, "Remove file");
    const drop = h(
      "div",
      { class: "drop" },
      h("label", { for: `${id}-file`, class: "drop-label" }, h("strong", {}, `Choose ${NOUN[kind]}`), " or drop it here"),
      fileInput,
    );
    field.file = null;
    let objectUrl = "";
    const showPreview = () => {
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = "";
      preview.replaceChildren();
      clear.hidden = !field.file;
      if (!field.file) return;
      objectUrl = URL.createObjectURL(field.file.blob);
      const what = `${field.file.name} · ${fmtBytes(field.file.blob.size)}`;
      const media =
        kind === "image"
          ? h("img", { src: objectUrl, alt: `Preview of ${field.file.name}`, class: "thumb" })
          : h(kind, { src: objectUrl, controls: true, preload: "metadata", "aria-label": `Preview of ${field.file.name}`, class: kind === "video" ? "thumb" : "" });
      preview.append(media, h("p", { class: "muted small" }, what));
    };
    const takeFile = async (blob) => {
      this.setError(field.name, "");
      if (!blob) return;
      if (blob.size > MAX_FILE_BYTES) {
        this.setError(field.name, `This file is ${fmtBytes(blob.size)}; the server accepts up to 20 MB.`);
        return;
      }
      field.file = { name: blob.name || `${kind}`, blob, dataUri: await readDataUri(blob) };
      urlInput.value = "";
      showPreview();
      this.changed(field);
    };
    fileInput.addEventListener("change", () => takeFile(fileInput.files[0]));
    for (const type of ["dragenter", "dragover"]) {
      drop.addEventListener(type, (e) => {
        e.preventDefault();
        drop.classList.add("over");
      });
    }
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      takeFile(e.dataTransfer?.files?.[0]);
    });
    clear.addEventListener("click", () => {
      field.file = null;
      fileInput.value = "";
      showPreview();
      this.changed(field);
    });
    urlInput.addEventListener("input", () => {
      if (urlInput.value && field.file) {
        field.file = null;
        fileInput.value = "";
        showPreview();
      }
      this.changed(field);
    });
    field.control = urlInput;
    field.read = () => field.file?.dataUri ?? (urlInput.value.trim() || undefined);
    field.write = (v) => {
      field.file = null;
      fileInput.value = "";
      urlInput.value = v ?? "";
      showPreview();
    };
    field.describe = () => (field.file ? { file: field.file.name, kind, mime: field.file.blob.type } : undefined);
    return h(
      "fieldset",
      { class: "field media", "data-field": field.name },
      h("legend", {}, labelText),
      help,
      drop,
      h("label", { for: id, class: "small" }, "or a URL"),
      urlInput,
      preview,
      clear,
      field.error,
    );
  }

  changed(field) {
    if (field) this.setError(field.name, "");
    this.onChange?.();
  }

  /** The request body (model included); empty fields are left out. */
  body(model) {
    const out = { model };
    for (const [name, field] of this.fields) {
      const value = field.read();
      if (value !== undefined) out[name] = value;
    }
    return out;
  }

  /** The body as snippets show it: files stand for their data: URI. */
  described(model) {
    const out = { model };
    for (const [name, field] of this.fields) {
      const file = field.describe?.();
      const value = file ?? field.read();
      if (value !== undefined) out[name] = value;
    }
    return out;
  }

  fill(values) {
    for (const [name, field] of this.fields) {
      if (name in values) field.write(values[name]);
    }
    this.clearErrors();
    this.onChange?.();
  }

  /** Client-side checks; marks each problem beside its field. True when clean. */
  validate() {
    this.clearErrors();
    let ok = true;
    for (const [name, field] of this.fields) {
      const value = field.read();
      if (field.required && (value === undefined || value === "")) {
        this.setError(name, "Required");
        ok = false;
      } else if (typeof value === "number" && Number.isNaN(value)) {
        this.setError(name, "Enter a number");
        ok = false;
      } else if (typeof value === "string" && maxLengthOf(field.prop) && value.length > maxLengthOf(field.prop)) {
        this.setError(name, `At most ${maxLengthOf(field.prop)} characters`);
        ok = false;
      }
    }
    if (!ok) this.focusFirstError();
    return ok;
  }

  /** The server's 400 `details`: each beside its field. Returns those with no field here. */
  showServerErrors(details) {
    const unplaced = [];
    for (const detail of details) {
      const name = String(detail.field || "").split(".")[0];
      if (this.fields.has(name)) this.setError(name, detail.message || "Invalid value", true);
      else unplaced.push(detail);
    }
    this.focusFirstError();
    return unplaced;
  }

  setError(name, message, append = false) {
    const field = this.fields.get(name);
    if (!field) return;
    const text = append && !field.error.hidden && field.error.textContent ? `${field.error.textContent} ${message}` : message;
    field.error.textContent = text;
    field.error.hidden = !text;
    field.wrap.classList.toggle("invalid", Boolean(text));
    if (field.control) field.control.setAttribute("aria-invalid", text ? "true" : "false");
  }

  clearErrors() {
    for (const name of this.fields.keys()) this.setError(name, "");
  }

  focusFirstError() {
    const first = $$(".field.invalid", this.container)[0];
    const control = first && ($("input:not([type=file]), textarea, select", first) || $("input", first));
    control?.focus();
  }
}

function readDataUri(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}
