/* django-s3strata: upload a file input's file straight to S3, then submit only a signed reference.
 *
 * A widget is a <div class="s3strata-direct"> with the start and finalize URLs and a signed policy.
 * On a file choice: ask the start URL for a grant, send the file to S3 (one POST, one PUT with the
 * grant's signed headers for providers without POST Object, or parts with PUT;
 * the grant signs the first batch of part URLs and the parts URL signs the next batches as they are
 * needed), ask the finalize URL to record it, put the returned ref in the hidden input and empty the file
 * input, so the form carries no file. If anything fails, the file stays in the input and goes
 * through Django with the form, as without JavaScript.
 *
 * A required file input stops being required while the hidden ref holds an upload (the ref is the
 * field's value then; the browser would otherwise refuse the form for an empty file input), and is
 * required again whenever the ref is emptied. The server checks the field either way.
 *
 * A page that changes a widget's data-policy after an upload dispatches "s3strata:reset" on the
 * widget's box: the ref is dropped (the form would refuse a file uploaded under another policy).
 */
(function () {
  "use strict";

  var PART_CONCURRENCY = 3;

  function csrfToken(form) {
    var input = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function postJSON(url, body, token) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) throw new Error(data.error || "HTTP " + response.status);
        return data;
      });
    });
  }

  function send(method, url, body, onProgress, headers) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open(method, url);
      // A presigned PUT signs these headers: S3 refuses the upload unless they are sent as granted.
      Object.keys(headers || {}).forEach(function (name) { xhr.setRequestHeader(name, headers[name]); });
      xhr.upload.onprogress = function (event) { onProgress(event.loaded); };
      xhr.onload = function () {
        if (xhr.status >= 200 && xhr.status < 300) resolve(xhr);
        else reject(new Error("the storage refused the upload (HTTP " + xhr.status + ")"));
      };
      xhr.onerror = function () { reject(new Error("the storage could not be reached")); };
      xhr.send(body);
    });
  }

  function sendParts(grant, file, progress, partsUrl, token) {
    var count = grant.part_count || grant.parts.length;
    var parts = {};  // part number -> {size, url}, filled a batch at a time
    var pending = {};  // first part number of a batch being signed -> its promise
    var batch = grant.parts.length || 1;
    var loaded = new Array(count).fill(0);
    var next = 1;
    grant.parts.forEach(function (p) { parts[p.number] = p; });
    function report() {
      var sum = loaded.reduce(function (a, b) { return a + b; }, 0);
      progress(sum);
    }
    function signed(number) {
      if (parts[number]) return Promise.resolve(parts[number]);
      var first = number - ((number - 1) % batch);
      if (!pending[first]) {
        var last = Math.min(count, first + batch - 1);
        pending[first] = postJSON(partsUrl, { ticket: grant.ticket, first: first, last: last }, token).then(function (more) {
          more.parts.forEach(function (p) { parts[p.number] = p; });
        });
      }
      return pending[first].then(function () { return parts[number]; });
    }
    function worker() {
      if (next > count) return Promise.resolve();
      var number = next++;
      return signed(number).then(function (part) {
        var start = (number - 1) * grant.part_size;
        return send("PUT", part.url, file.slice(start, start + part.size), function (n) {
          loaded[number - 1] = n;
          report();
        });
      }).then(function () {
        delete parts[number];  // a URL is used once: keep memory flat on 10,000-part uploads
        return worker();
      });
    }
    var workers = [];
    for (var i = 0; i < Math.min(PART_CONCURRENCY, count); i++) workers.push(worker());
    return Promise.all(workers);
  }

  // The input's own `required`, remembered so that it can be given back when the ref is emptied.
  function holdRef(input, ref, value) {
    if (!("s3strataRequired" in input.dataset)) input.dataset.s3strataRequired = input.required ? "1" : "";
    ref.value = value;
    input.required = !value && input.dataset.s3strataRequired === "1";
  }

  function upload(box, input, file) {
    var progress = box.querySelector(".s3strata-direct-progress");
    var status = box.querySelector(".s3strata-direct-status");
    var ref = box.querySelector(".s3strata-direct-ref");
    var token = csrfToken(input.form);
    function show(loaded) { progress.value = file.size ? (100 * loaded) / file.size : 100; }
    holdRef(input, ref, "");
    progress.hidden = false;
    progress.value = 0;
    box.dataset.state = "uploading";
    status.textContent = "Uploading " + file.name + "…";
    return postJSON(box.dataset.startUrl, {
      policy: box.dataset.policy,
      filename: file.name,
      size: file.size,
      content_type: file.type || "",
    }, token)
      .then(function (grant) {
        if (grant.method === "multipart") {
          return sendParts(grant, file, show, box.dataset.partsUrl, token).then(function () { return grant; });
        }
        if (grant.method === "put") {
          return send("PUT", grant.url, file, show, grant.headers).then(function () { return grant; });
        }
        var form = new FormData();
        Object.keys(grant.fields).forEach(function (name) { form.append(name, grant.fields[name]); });
        form.append("file", file);
        return send("POST", grant.url, form, show).then(function () { return grant; });
      })
      .then(function (grant) { return postJSON(box.dataset.finalizeUrl, { ticket: grant.ticket }, token); })
      .then(function (result) {
        input.value = "";
        holdRef(input, ref, result.ref);
        progress.value = 100;
        box.dataset.state = "done";
        status.textContent = "Uploaded " + result.filename + ".";
      })
      .catch(function (error) {
        holdRef(input, ref, "");
        progress.hidden = true;
        box.dataset.state = "failed";
        status.textContent = "Direct upload failed (" + error.message + "): the file will be sent with the form.";
      });
  }

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches(".s3strata-direct input[type=file]")) return;
    var box = input.closest(".s3strata-direct");
    if (input.files && input.files.length) upload(box, input, input.files[0]);
  });

  document.addEventListener("s3strata:reset", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches(".s3strata-direct") || box.dataset.state === "uploading") return;
    holdRef(box.querySelector("input[type=file]"), box.querySelector(".s3strata-direct-ref"), "");
    box.querySelector(".s3strata-direct-progress").hidden = true;
    box.querySelector(".s3strata-direct-status").textContent = "";
    delete box.dataset.state;
  });

  document.addEventListener("submit", function (event) {
    var busy = event.target.querySelector(".s3strata-direct[data-state=uploading]");
    if (busy) {
      event.preventDefault();
      busy.querySelector(".s3strata-direct-status").textContent = "Still uploading: save again when the upload is done.";
    }
  }, true);
})();
