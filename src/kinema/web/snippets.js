// "The same request as …": curl, Python (requests), the Kinema SDK and the CLI, made
// from the form. The key is never written in: every snippet reads $KINEMA_API_KEY.
// A picked file appears by its name and is read by the snippet (as a data: URI).

const isFile = (v) => v && typeof v === "object" && "file" in v;

/** Quote for a POSIX shell (single quotes). */
export function shellQuote(text) {
  const s = String(text);
  return /^[A-Za-z0-9_\/.:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A JSON value as a Python literal. */
function py(value) {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return String(value);
  return JSON.stringify(String(value));
}

const fileVar = (name) => name.toUpperCase();

function curl(base, path, body) {
  const files = Object.entries(body).filter(([, v]) => isFile(v));
  const lines = [];
  for (const [name, v] of files) {
    const mime = v.mime || (v.kind === "audio" ? "audio/mpeg" : "image/png");
    lines.push(`${fileVar(name)}="data:${mime};base64,$(base64 < ${shellQuote(v.file)} | tr -d '\\n')"`);
  }
  // The JSON, single-quoted, with each file's variable spliced in.
  const marker = (name) => `@@${name}@@`;
  const plain = Object.fromEntries(Object.entries(body).map(([k, v]) => [k, isFile(v) ? marker(k) : v]));
  let json = shellQuote(JSON.stringify(plain, null, 2));
  if (!json.startsWith("'")) json = `'${json}'`;
  for (const [name] of files) json = json.replace(`"${marker(name)}"`, `"'"$${fileVar(name)}"'"`);
  const headers = [`  -H "Authorization: Bearer $KINEMA_API_KEY" \\`, `  -H "Content-Type: application/json" \\`];
  if (files.length) {
    // Through a pipe: a file's data: URI is too long for a command-line argument
    // (printf is a shell builtin, so it has no such limit).
    lines.push(`printf '%s' ${json} | curl -sS ${shellQuote(base + path)} \\`, ...headers, `  --data-binary @-`);
  } else {
    lines.push(`curl -sS ${shellQuote(base + path)} \\`, ...headers, `  -d ${json}`);
  }
  lines.push(
    ``,
    `# then poll with the "id" it returns:`,
    `curl -sS ${shellQuote(base + path)}"?generation_id=ID" -H "Authorization: Bearer $KINEMA_API_KEY"`,
  );
  return lines.join("\n");
}

function python(base, path, body) {
  const files = Object.values(body).some(isFile);
  const lines = ["import os", "import time", "", "import requests"];
  if (files) lines.splice(0, 0, "import base64", "import mimetypes");
  lines.push("", `URL = ${py(base + path)}`, `HEADERS = {"Authorization": "Bearer " + os.environ["KINEMA_API_KEY"]}`);
  if (files) {
    lines.push(
      "",
      "",
      "def data_uri(path):",
      `    mime = mimetypes.guess_type(path)[0] or "application/octet-stream"`,
      `    with open(path, "rb") as f:`,
      `        return f"data:{mime};base64," + base64.b64encode(f.read()).decode()`,
      "",
    );
  }
  lines.push("", "job = requests.post(URL, headers=HEADERS, json={");
  for (const [name, v] of Object.entries(body)) {
    lines.push(`    ${py(name)}: ${isFile(v) ? `data_uri(${py(v.file)})` : py(v)},`);
  }
  lines.push(
    "}).json()",
    `while (r := requests.get(URL, headers=HEADERS, params={"generation_id": job["id"]}).json())["status"] in ("queued", "generating"):`,
    "    time.sleep(2)",
    `print(r["video"]["url"] if r["status"] == "completed" else r["error"])`,
  );
  return lines.join("\n");
}

function sdk(base, body) {
  const files = Object.values(body).some(isFile);
  const args = [`model=${py(body.model)}`];
  for (const [name, v] of Object.entries(body)) {
    if (name === "model") continue;
    args.push(`${name}=${isFile(v) ? `Path(${py(v.file)})` : py(v)}`);
  }
  const lines = [];
  if (files) lines.push("from pathlib import Path", "");
  lines.push(
    "import kinema",
    "",
    `client = kinema.Client(${py(base)})  # the key: $KINEMA_API_KEY`,
    "video = client.videos.generate(",
    ...args.map((a) => `    ${a},`),
    ")",
    `print(video.download("video.mp4"))`,
  );
  return lines.join("\n");
}

const CLI_FLAGS = { image_url: "--image", first_frame_image: "--image", audio_url: "--audio", last_image_url: "--last-image" };

function cli(base, body) {
  const parts = [`kinema generate ${shellQuote(body.model)}`];
  for (const [name, v] of Object.entries(body)) {
    if (name === "model") continue;
    const value = isFile(v) ? v.file : v;
    if (name === "prompt") parts.push(`--prompt ${shellQuote(value)}`);
    else if (CLI_FLAGS[name]) parts.push(`${CLI_FLAGS[name]} ${shellQuote(value)}`);
    else parts.push(`--set ${shellQuote(`${name}=${value}`)}`);
  }
  parts.push("-o video.mp4");
  return [`export KINEMA_BASE_URL=${shellQuote(base)} KINEMA_API_KEY=kn-…`, parts.join(" \\\n  ")].join("\n");
}

export const LANGUAGES = [
  ["curl", "curl"],
  ["python", "Python (requests)"],
  ["sdk", "Kinema SDK"],
  ["cli", "CLI"],
];

/** {curl, python, sdk, cli} for a described body (files as {file, kind, mime}). */
export function snippets(base, path, body) {
  return { curl: curl(base, path, body), python: python(base, path, body), sdk: sdk(base, body), cli: cli(base, body) };
}
