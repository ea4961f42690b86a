"use strict";
// The page of `edgec serve`: plain JS, no libraries. It reads /edgec/info, then classifies an
// uploaded or example image with every version (POST /v2/models/{name}/classify), or, for other
// models, runs every version on the same random inputs (POST .../versions/{v}/infer).
(function () {
  const $ = (id) => document.getElementById(id);
  let info = null;
  let upload = null;

  function status(text, error) {
    const s = $("status");
    s.textContent = text || "";
    s.className = error ? "error" : "";
  }

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    });
    (children || []).forEach((c) => e.appendChild(c));
    return e;
  }

  async function json(resp) {
    const body = await resp.json();
    if (!resp.ok) {
      const exp = body.expected !== undefined ? " (expected: " + JSON.stringify(body.expected) + ")" : "";
      throw new Error(resp.status + ": " + (body.error || resp.statusText) + exp);
    }
    return body;
  }

  function showIO() {
    const box = $("io");
    box.textContent = "";
    info.versions.forEach((v) => {
      const rows = [];
      [["input", v.inputs], ["output", v.outputs]].forEach(([kind, ts]) => ts.forEach((t) => {
        const q = t.parameters && t.parameters.quantization;
        rows.push(el("tr", {}, [el("td", { text: kind }), el("td", { text: t.name }), el("td", { text: t.datatype }),
          el("td", { text: JSON.stringify(t.shape) }),
          el("td", { text: q ? "scale " + q.scale.toPrecision(4) + ", zero " + q.zero_point : "" })]));
      }));
      box.appendChild(el("h3", { text: "version " + v.name + " (" + v.file + ")" }));
      box.appendChild(el("table", { class: "io" }, [el("tr", {}, ["", "name", "datatype", "shape", "quantization"]
        .map((h) => el("th", { text: h })))].concat(rows)));
    });
  }

  function agreementText(r, k) {
    const a = r.agreement;
    const overlap = a["top" + k + "_overlap"];
    return (a.top1_same ? "same top-1" : "different top-1") + " as " + r.agreement_with +
      ", top-" + k + " overlap " + Math.round(overlap * 100) + "%";
  }

  function showClassify(res) {
    const box = $("results");
    box.textContent = "";
    res.results.forEach((r) => {
      const k = r.top.length;
      const rows = r.top.map((t) => el("tr", {}, [
        el("td", { text: t.label }),
        el("td", { text: (t.score * 100).toFixed(1) + "%" }),
        el("td", { style: "width:90px" }, [el("div", { class: "bar", style: "width:" + Math.max(2, t.score * 90) + "px" })]),
      ]));
      const same = r.agreement.top1_same;
      box.appendChild(el("div", { class: "card", "data-version": r.version }, [
        el("h3", { text: r.version }),
        el("p", { class: "latency muted", text: "latency " + r.latency_ms.model.toFixed(2) + " ms in the interpreter, " +
          r.latency_ms.round_trip.toFixed(2) + " ms through its worker" }),
        el("p", { class: "agree " + (same ? "ok" : "bad"), text: r.version === r.agreement_with ? "reference" :
          agreementText(r, k) }),
        el("table", { class: "top" }, rows),
      ]));
    });
    status("classified " + res.image.source + " (" + res.image.width + "x" + res.image.height + ") with " +
      res.results.length + " version(s); scores: " + res.results[0].scores);
  }

  async function classify() {
    const base = "/v2/models/" + encodeURIComponent(info.name) + "/classify?top_k=5";
    status("classifying…");
    $("run").disabled = true;
    try {
      let resp;
      if (upload) {
        const form = new FormData();
        form.append("file", upload, upload.name);
        resp = await fetch(base, { method: "POST", body: form });
      } else {
        resp = await fetch(base + "&example=" + encodeURIComponent($("example").value), { method: "POST" });
      }
      showClassify(await json(resp));
    } catch (e) {
      status("classify failed: " + e.message, true);
    } finally {
      $("run").disabled = false;
    }
  }

  function randomData(t, seed) {
    let s = seed;
    const n = t.shape.reduce((a, b) => a * Math.max(1, b), 1);
    const out = new Array(n);
    for (let i = 0; i < n; i++) {
      s = (s * 1103515245 + 12345) % 2147483648;
      const u = s / 2147483648;
      out[i] = t.datatype.startsWith("FP") ? u * 2 - 1 : t.datatype === "BOOL" ? u > 0.5 : Math.floor(u * 100);
    }
    return out;
  }

  async function runRandom() {
    const box = $("random-results");
    box.textContent = "";
    status("running…");
    try {
      for (const v of info.versions) {
        const inputs = v.inputs.map((t, i) => ({ name: t.name, shape: t.shape.map((d) => Math.max(1, d)),
          datatype: t.datatype, data: randomData(t, 7 + i) }));
        const t0 = performance.now();
        const res = await json(await fetch("/v2/models/" + encodeURIComponent(info.name) + "/versions/" +
          encodeURIComponent(v.name) + "/infer", { method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ inputs: inputs }) }));
        const ms = performance.now() - t0;
        box.appendChild(el("div", { class: "card", "data-version": v.name }, [el("h3", { text: v.name }),
          el("p", { class: "latency muted", text: "round trip " + ms.toFixed(1) + " ms" })].concat(
          res.outputs.map((o) => el("p", { text: o.name + " " + o.datatype + " " + JSON.stringify(o.shape) + ": " +
            o.data.slice(0, 6).map((x) => (typeof x === "number" ? x.toPrecision(4) : String(x))).join(", ") +
            (o.data.length > 6 ? ", …" : "") })))));
      }
      status("ran " + info.versions.length + " version(s) on the same random inputs");
    } catch (e) {
      status("infer failed: " + e.message, true);
    }
  }

  function pickedChanged() {
    const f = $("file").files[0];
    const prev = $("preview");
    if (f) {
      upload = f;
      $("example").value = "";
      prev.src = URL.createObjectURL(f);
      $("picked-name").textContent = "upload: " + f.name;
    } else if ($("example").value) {
      upload = null;
      prev.src = "/edgec/examples/" + encodeURIComponent($("example").value);
      $("picked-name").textContent = "example: " + $("example").value;
    }
    prev.hidden = !(upload || $("example").value);
    $("run").disabled = prev.hidden;
  }

  async function start() {
    try {
      info = await json(await fetch("/edgec/info"));
    } catch (e) {
      status("cannot read /edgec/info: " + e.message, true);
      return;
    }
    $("model-name").textContent = "— " + info.name;
    $("model-summary").textContent = info.kind + " " + info.source + "; versions " +
      info.versions.map((v) => v.name).join(", ") + "; " + info.task.replace("_", " ") +
      (info.labels ? " with " + info.labels + " labels" : "");
    showIO();
    if (info.task === "image_classifier") {
      $("classify").hidden = false;
      info.examples.forEach((n) => $("example").appendChild(el("option", { value: n, text: n })));
      $("file").addEventListener("change", pickedChanged);
      $("example").addEventListener("change", () => { $("file").value = ""; upload = null; pickedChanged(); });
      $("run").addEventListener("click", classify);
    } else {
      $("random").hidden = false;
      $("run-random").addEventListener("click", runRandom);
      info.notes.forEach((n) => status(n));
    }
    document.body.setAttribute("data-ready", "1");
  }

  start();
})();
