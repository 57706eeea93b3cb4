// Uploads: each dropped or chosen file goes through the upload API (POST /uploads) and then straight
// to S3 with the presigned form's fields, as an app does; the list below refreshes (htmx) until each
// upload has ended.
(function () {
  "use strict";
  var zone = document.getElementById("dropzone");
  if (!zone) return;
  var input = document.getElementById("files");
  var progress = document.getElementById("progress");
  var api = zone.dataset.apiUrl;
  var token = zone.dataset.token;
  var base = zone.dataset.uploadBase;
  var TYPES = {
    jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp", gif: "image/gif",
    tif: "image/tiff", tiff: "image/tiff", avif: "image/avif", bmp: "image/bmp", heic: "image/heic", heif: "image/heif",
  };

  function typeOf(file) {
    if (file.type) return file.type;
    var extension = file.name.split(".").pop().toLowerCase();
    return TYPES[extension] || "application/octet-stream";
  }

  function row(name) {
    var li = document.createElement("li");
    var label = document.createElement("span");
    label.className = "file";
    label.textContent = name;
    var state = document.createElement("span");
    li.append(label, " ", state);
    progress.prepend(li);
    return function (text, kind, link) {
      li.className = kind;
      li.dataset.state = kind;
      state.textContent = "";
      if (link) {
        var a = document.createElement("a");
        a.href = link;
        a.textContent = text;
        state.append(a);
      } else {
        state.textContent = text;
      }
    };
  }

  function s3Message(text) {
    var found = /<Message>([^<]*)<\/Message>/.exec(text);
    return found ? found[1] : text.slice(0, 200);
  }

  function refresh() {
    var list = document.getElementById("uploads-list");
    if (list && window.htmx) window.htmx.trigger(list, "refresh");
  }

  async function send(file) {
    var set = row(file.name);
    set("requesting an upload URL…", "busy");
    try {
      var headers = { "content-type": "application/json" };
      if (token) headers.authorization = "Bearer " + token;
      var request = { filename: file.name, contentType: typeOf(file), size: file.size };
      var created = await fetch(api + "/uploads", { method: "POST", headers: headers, body: JSON.stringify(request) });
      var body = await created.json().catch(function () { return {}; });
      if (created.status !== 201) {
        throw new Error("the upload API refused it (" + created.status + "): " + (body.message || body.error || ""));
      }
      set("uploading to S3…", "busy");
      var form = new FormData();
      Object.keys(body.upload.fields).forEach(function (key) { form.append(key, body.upload.fields[key]); });
      form.append("file", file, file.name);
      var posted = await fetch(body.upload.url, { method: "POST", body: form });
      if (!posted.ok) throw new Error("S3 refused the upload (" + posted.status + "): " + s3Message(await posted.text()));
      set("uploaded, processing: see upload " + body.id, "ok", base + "/" + body.id);
      refresh();
    } catch (e) {
      var reason = e instanceof TypeError ? "the request failed (network, or CORS: is this console's origin allowed?): " + e.message : e.message;
      set(reason, "error");
    }
  }

  function sendAll(files) {
    Array.prototype.forEach.call(files, send);
  }

  input.addEventListener("change", function () {
    var files = Array.prototype.slice.call(input.files);
    input.value = "";
    sendAll(files);
  });
  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) {
      event.preventDefault();
      zone.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function () { zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    sendAll(event.dataTransfer.files);
  });
})();
