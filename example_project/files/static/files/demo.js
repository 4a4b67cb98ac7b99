/* The demo's home page: the direct upload's tier and visibility, progress for the plain upload, delete confirmations.
 *
 * Without JavaScript every form still works: the plain one posts as usual, the direct one sends its
 * file through Django, and delete asks nothing.
 */
(function () {
  "use strict";

  var UNITS = ["KiB", "MiB", "GiB", "TiB", "PiB"];

  // As the page's binary_size filter writes sizes: "512 bytes", "20.0 MiB".
  function humanSize(bytes) {
    if (bytes < 1024) return bytes + (bytes === 1 ? " byte" : " bytes");
    var value = bytes / 1024, unit = 0;
    while (value >= 1024 && unit < UNITS.length - 1) { value /= 1024; unit += 1; }
    return value.toFixed(1) + " " + UNITS[unit];
  }

  // The direct upload goes where its signed policy says: one policy per tier and visibility pair.
  var direct = document.getElementById("direct-upload");
  var policies = document.getElementById("direct-policies");
  if (direct && policies) {
    policies = JSON.parse(policies.textContent);
    direct.addEventListener("change", function (event) {
      if (event.target.name !== "direct-tier" && event.target.name !== "direct-visibility") return;
      var box = direct.querySelector(".s3strata-direct");
      var policy = policies[direct.elements["direct-tier"].value + " " + direct.elements["direct-visibility"].value];
      if (!box || !policy || box.dataset.policy === policy) return;
      box.dataset.policy = policy;
      if (box.querySelector(".s3strata-direct-ref").value) {
        box.dispatchEvent(new CustomEvent("s3strata:reset", { bubbles: true }));
        box.querySelector(".s3strata-direct-status").textContent = "Tier or visibility changed: choose the file again.";
      }
    });
  }

  // The plain upload through XMLHttpRequest, for its progress events; the view answers with JSON.
  var plain = document.getElementById("upload");
  if (plain && window.FormData) {
    plain.addEventListener("submit", function (event) {
      var input = plain.elements.file;
      if (!input.files || !input.files.length) return;
      event.preventDefault();
      var file = input.files[0];
      var bar = document.getElementById("upload-progress");
      var status = document.getElementById("upload-status");
      var button = plain.querySelector("button[type=submit]");
      function fail(message) {
        button.disabled = false;
        bar.hidden = true;
        status.className = "error";
        status.textContent = message;
      }
      button.disabled = true;
      bar.hidden = false;
      bar.value = 0;
      status.className = "";
      status.textContent = "Uploading " + file.name + "…";
      var xhr = new XMLHttpRequest();
      xhr.open("POST", plain.action || window.location.href);
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      xhr.upload.onprogress = function (progress) {
        if (!progress.lengthComputable) return;
        var share = progress.loaded / progress.total;
        bar.value = 100 * share;
        status.textContent = "Uploading " + file.name + ": " + humanSize(Math.round(share * file.size)) + " of " +
          humanSize(file.size) + " (" + Math.floor(100 * share) + "%)";
      };
      xhr.upload.onload = function () {
        bar.removeAttribute("value");  // indeterminate: Django is passing the file on to S3
        status.textContent = "Storing " + file.name + " (" + humanSize(file.size) + ") in S3…";
      };
      xhr.onload = function () {
        var answer = {};
        try { answer = JSON.parse(xhr.responseText); } catch (ignored) { /* not JSON: an error page */ }
        if (answer.location) window.location.assign(answer.location);
        else fail("Not stored: " + (answer.errors || "the server answered HTTP " + xhr.status) + ".");
      };
      xhr.onerror = function () { fail("Not stored: the server could not be reached."); };
      xhr.send(new FormData(plain));
    });
  }

  // Deleting removes the object from the bucket and the row: ask first.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });
})();
