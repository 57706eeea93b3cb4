// Start execution: choosing an input from events/ fills the textarea; the input is checked as JSON
// before it is sent (the server checks it again).
(function () {
  "use strict";
  var form = document.getElementById("start-form");
  if (!form) return;
  var textarea = document.getElementById("input");
  var error = document.getElementById("input-error");
  var select = document.getElementById("example");
  var chosen = document.getElementById("example-field");
  var load = document.getElementById("load-example");
  var examples = JSON.parse(document.getElementById("examples-data").textContent || "{}");

  function clear() {
    error.textContent = "";
    textarea.removeAttribute("aria-invalid");
  }

  function problem() {
    var text = textarea.value;
    if (!text.trim()) return "The input is empty: write a JSON document, for example {\"bucket\": \"…\", \"key\": \"…\"}.";
    try {
      JSON.parse(text);
      return null;
    } catch (e) {
      return "The input is not valid JSON: " + e.message + ".";
    }
  }

  if (select) {
    if (load) load.hidden = true;
    select.addEventListener("change", function () {
      textarea.value = examples[select.value] || "";
      chosen.value = select.value;
      clear();
    });
  }
  textarea.addEventListener("input", clear);
  form.addEventListener("submit", function (event) {
    var found = problem();
    if (found) {
      event.preventDefault();
      error.textContent = found;
      textarea.setAttribute("aria-invalid", "true");
      textarea.focus();
    }
  });
})();
