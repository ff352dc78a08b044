// Shared by the storefront and the dashboard: the API key and small fetch helpers.
"use strict";

const Currents = (() => {
  const config = window.CURRENTS_CONFIG || {};

  function keyFor(slot) {
    // The storefront uses the demo key the server handed out (read+ingest), else one the
    // visitor pasted; the dashboard's admin key lives only in sessionStorage.
    if (slot === "store" && config.apiKey) return config.apiKey;
    return sessionStorage.getItem("currents." + slot + ".key") || "";
  }

  function setKey(slot, value) {
    if (value) sessionStorage.setItem("currents." + slot + ".key", value);
    else sessionStorage.removeItem("currents." + slot + ".key");
  }

  async function get(path, key) {
    const response = await fetch(path, { headers: key ? { "X-API-Key": key } : {} });
    if (response.status === 404) return null;
    if (!response.ok) {
      const error = new Error(path + " answered " + response.status);
      error.status = response.status;
      throw error;
    }
    const type = response.headers.get("content-type") || "";
    return type.includes("json") ? response.json() : response.text();
  }

  async function post(path, key, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "X-API-Key": key, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      const error = new Error(path + " answered " + response.status);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  function uid(prefix) {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value);
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  return { config, keyFor, setKey, get, post, uid, el };
})();
