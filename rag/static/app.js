// ragkit web chat: streams answers from /v1/chat/completions (server-sent events over fetch) and shows
// the passages they cite. No build step, no dependencies; all text goes into the page as text, never HTML.
"use strict";

const KEY_STORAGE = "ragkit.apiKey";
const $ = (selector) => document.querySelector(selector);
const conversation = [];

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setStatus(text) {
  $("#status").textContent = text;
}

function headers() {
  const result = { "Content-Type": "application/json" };
  const key = $("#api-key").value.trim();
  if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return (body.error && body.error.message) || response.statusText;
  } catch (_) {
    return `${response.status} ${response.statusText}`;
  }
}

async function loadModels() {
  const select = $("#model");
  const response = await fetch("/v1/models", { headers: headers() });
  if (!response.ok) {
    setStatus(response.status === 401 ? "enter a valid API key" : await errorMessage(response));
    return;
  }
  const previous = select.value;
  select.replaceChildren();
  for (const model of (await response.json()).data) {
    select.append(new Option(model.id, model.id));
  }
  if (previous) select.value = previous;
  setStatus(select.options.length ? "ready" : "no collections yet: upload documents first");
}

function addMessage(role, text) {
  const item = el("li", `message ${role}`);
  item.append(el("div", "text", text));
  $("#messages").append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function showPassage(source) {
  $("#passage-title").textContent = `[${source.number}] ${source.title || source.source}`;
  $("#passage-meta").textContent =
    `${source.source} · chunk ${source.chunk_id} · characters ${source.start}-${source.end} · score ${source.score.toFixed(3)}`;
  const body = $("#passage-text");
  body.replaceChildren();
  const h = source.highlight;
  if (h && h.end > h.start) {
    body.append(source.text.slice(0, h.start), el("mark", "", source.text.slice(h.start, h.end)), source.text.slice(h.end));
  } else {
    body.append(source.text);
  }
  $("#passage").hidden = false;
  const mark = body.querySelector("mark");
  if (mark) mark.scrollIntoView({ block: "center" });
}

function renderSources(item, sources) {
  const cited = sources.filter((s) => s.highlight);
  if (cited.length) {
    const cites = el("div", "cites", "Cited: ");
    for (const source of cited) {
      const button = el("button", "citation", `[${source.number}] ${source.title || source.source}`);
      button.type = "button";
      button.addEventListener("click", () => showPassage(source));
      cites.append(button);
    }
    item.append(cites);
  }
  if (sources.length) {
    const list = el("div", "sources", "Sources: ");
    for (const source of sources) {
      const button = el("button", "source", `[${source.number}]`);
      button.type = "button";
      button.title = `${source.source} (score ${source.score.toFixed(3)})`;
      button.addEventListener("click", () => showPassage(source));
      list.append(button);
    }
    item.append(list);
  }
}

// Reads `data:` events from the response body, calling onEvent with each parsed JSON payload.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        const data = line.startsWith("data:") ? line.slice(5).trim() : "";
        if (data && data !== "[DONE]") onEvent(JSON.parse(data));
      }
    }
  }
}

async function ask(question) {
  addMessage("user", question);
  const item = addMessage("assistant", "…");
  const text = item.querySelector(".text");
  if (!$("#model").value) await loadModels();
  const model = $("#model").value;
  conversation.push({ role: "user", content: question });
  $("#send").disabled = true;
  setStatus("answering…");
  let answer = "";
  let sources = [];
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ model, messages: conversation, stream: true }),
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    await readEvents(response, (chunk) => {
      if (chunk.error) throw new Error(chunk.error.message);
      const choice = chunk.choices && chunk.choices[0];
      if (choice && choice.delta && choice.delta.content) {
        answer += choice.delta.content;
        text.textContent = answer;
      }
      if (chunk.sources) sources = chunk.sources;
    });
    conversation.push({ role: "assistant", content: answer });
    text.textContent = answer.trim() || "(no answer)";
    renderSources(item, sources);
    setStatus("ready");
  } catch (error) {
    conversation.pop();
    item.className = "message error";
    text.textContent = `Error: ${error.message}`;
    setStatus("error");
  } finally {
    $("#send").disabled = false;
    item.scrollIntoView({ block: "end" });
  }
}

function newConversation() {
  conversation.length = 0;
  $("#messages").replaceChildren();
  $("#passage").hidden = true;
  $("#question").focus();
}

$("#api-key").value = localStorage.getItem(KEY_STORAGE) || "";
$("#api-key").addEventListener("input", () => localStorage.setItem(KEY_STORAGE, $("#api-key").value.trim()));
$("#api-key").addEventListener("change", loadModels);
$("#new-chat").addEventListener("click", newConversation);
$("#close-passage").addEventListener("click", () => ($("#passage").hidden = true));
$("#ask").addEventListener("submit", (event) => {
  event.preventDefault();
  const question = $("#question").value.trim();
  if (!question) return;
  $("#question").value = "";
  ask(question);
});
$("#question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("#ask").requestSubmit();
  }
});
loadModels();
