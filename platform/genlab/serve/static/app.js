// The search and text-to-image page: talks only to this app's /api endpoints.
const $ = (id) => document.getElementById(id);

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function call(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    throw new Error(`the server did not answer (${err.message}); is it still running?`);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
    throw new Error(`${response.status}: ${detail || response.statusText}`);
  }
  return body;
}

async function refreshStats() {
  try {
    const s = await call("/api/stats");
    $("stats").textContent = `${s.count.toLocaleString()} images indexed · ${s.model}`;
  } catch (err) {
    $("stats").textContent = "index unavailable";
  }
}

function render(result, what) {
  $("summary").textContent = `${result.results.length} results for ${what} in ${result.took_ms} ms`;
  const grid = $("grid");
  grid.replaceChildren(...result.results.map((hit, rank) => {
    const card = document.createElement("figure");
    card.className = "hit";
    card.dataset.id = hit.id;
    const img = document.createElement("img");
    img.src = hit.thumbnail;
    img.alt = `result ${rank + 1}`;
    const score = document.createElement("div");
    score.className = "score";
    score.textContent = hit.score.toFixed(3);
    const id = document.createElement("div");
    id.className = "id";
    id.textContent = hit.id;
    card.append(img, score, id);
    return card;
  }));
}

async function searchText(event) {
  event.preventDefault();
  const q = $("query").value.trim();
  if (!q) return showError("Type what the image should show, e.g. 'a red seven'.");
  showError("");
  try {
    const params = new URLSearchParams({ q, k: $("k").value });
    render(await call(`/api/search?${params}`), `“${q}”`);
  } catch (err) {
    showError(err.message);
  }
}

async function searchImage(file) {
  if (!file) return;
  showError("");
  const form = new FormData();
  form.append("file", file);
  try {
    render(await call(`/api/search/image?k=${$("k").value}`, { method: "POST", body: form }), file.name);
  } catch (err) {
    showError(err.message);
  }
}

async function indexFolder(event) {
  event.preventDefault();
  const button = event.submitter;
  button.disabled = true;
  $("index-result").textContent = "indexing…";
  showError("");
  try {
    const r = await call("/api/index", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ folder: $("folder").value }),
    });
    $("index-result").textContent =
      `${r.images} images in ${r.folder}: ${r.added} new, ${r.count} indexed in all (${r.took_s} s)`;
    refreshStats();
  } catch (err) {
    $("index-result").textContent = "";
    showError(err.message);
  } finally {
    button.disabled = false;
  }
}

const drop = $("drop");
drop.addEventListener("click", () => $("file").click());
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
$("file").addEventListener("change", (e) => searchImage(e.target.files[0]));
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  searchImage(e.dataTransfer.files[0]);
});
function showTab(name) {
  for (const tab of ["search", "generate"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`${tab}-panel`).hidden = tab !== name;
  }
  showError("");
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
}

function imageRow(label, urls, className) {
  const row = document.createElement("div");
  row.className = `stage ${className}`;
  const title = document.createElement("h3");
  title.textContent = label;
  row.append(title, ...urls.map((url, i) => {
    const img = document.createElement("img");
    img.src = url;
    img.alt = `${label} ${i + 1}`;
    return img;
  }));
  return row;
}

async function generate(event) {
  event.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt) return showError("Describe a digit, e.g. 'a seven' or 'the digit 3, written in blue'.");
  showError("");
  const button = event.submitter;
  button.disabled = true;
  $("generate-summary").textContent = "generating…";
  try {
    const r = await call("/api/generate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prompt, num_images: Number($("num-images").value), seed: Number($("seed").value),
                             temperature: Number($("temperature").value),
                             // empty: the guidance the model was saved with (chosen on validation prompts)
                             guidance: $("guidance").value === "" ? null : Number($("guidance").value) }),
    });
    const t = r.timings_ms;
    const head = `${r.num_images} images for “${r.prompt}” (seed ${r.seed}) in ${t.total} ms: `;
    if (r.generator === "caption_diffusion") {  // the caption world's model reads the prompt itself: one stage
      $("generate-summary").textContent = head + `caption DDPM (token encoder + U-Net) ${t.generator} ms`;
      $("generated").replaceChildren(imageRow("caption DDPM, 32x32 RGB", r.images, "refined"));
    } else if (r.generator === "diffusion") {  // a text-conditioned DDPM: one stage after the text encoder, no raw row
      $("generate-summary").textContent = head + `text encoder ${t.text_encoder}, DDPM ${t.generator} ms`;
      $("generated").replaceChildren(imageRow("DDPM", r.images, "refined"));
    } else {
      $("generate-summary").textContent = head +
        `text encoder ${t.text_encoder}, prior ${t.prior}, decoder + refiner ${t.generator} ms`;
      $("generated").replaceChildren(imageRow("VAE decode", r.raw, "raw"), imageRow("refined", r.images, "refined"));
    }
  } catch (err) {
    $("generate-summary").textContent = "";
    showError(err.message);
  } finally {
    button.disabled = false;
  }
}

async function checkGenerate() {
  try {
    const h = await call("/api/health");
    if (!h.generate) {
      $("generate-form").querySelector("button[type=submit]").disabled = true;
      $("generate-summary").textContent = "Text-to-image is not deployed here: start the app with " +
        "`python jobs/serve_generate.py` to use this tab.";
    }
  } catch (err) { /* the search tab reports an unreachable server */ }
}

$("tab-search").addEventListener("click", () => showTab("search"));
$("tab-generate").addEventListener("click", () => showTab("generate"));
$("new-seed").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 2147483647); });
$("generate-form").addEventListener("submit", generate);
showTab(location.hash === "#generate" ? "generate" : "search");
checkGenerate();
$("search-form").addEventListener("submit", searchText);
$("index-form").addEventListener("submit", indexFolder);
refreshStats();
