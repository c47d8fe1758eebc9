// The payments queue: every few seconds, ask where the pending payments on this page stand now, and mark the
// ones decided elsewhere (status text, buttons disabled), so two admins never decide one payment twice by
// accident. The page works without it: a decided payment shows as decided on reload, and the server refuses a
// second decision anyway. No inline script (the console's Content-Security-Policy forbids it).
(function () {
  "use strict";
  var list = document.querySelector("[data-poll]");
  if (!list || !window.fetch) return;
  var url = list.getAttribute("data-poll");
  var every = 3000;

  function pending() {
    return Array.prototype.slice.call(document.querySelectorAll("article.payment[data-status='pending']"));
  }

  function mark(card, state) {
    card.setAttribute("data-status", state.status);
    card.classList.remove("status-pending");
    card.classList.add("status-" + state.status, "decided-elsewhere");
    var status = card.querySelector("[data-field='status']");
    if (status) {
      status.textContent = state.status + (state.reviewer ? " by " + state.reviewer : "");
      status.className = "pill status-" + state.status;
    }
    Array.prototype.forEach.call(card.querySelectorAll("button, select, input:not([type=hidden])"), function (control) {
      control.disabled = true;
    });
  }

  function poll() {
    var cards = pending();
    if (!cards.length) return;
    var ids = cards.map(function (card) { return card.getAttribute("data-payment-id"); });
    fetch(url + "?ids=" + ids.join(","), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        var json = (response.headers.get("Content-Type") || "").indexOf("application/json") === 0;
        return response.ok && json ? response.json() : null;
      })
      .then(function (body) {
        if (!body || !body.payments) return;
        cards.forEach(function (card) {
          var state = body.payments[card.getAttribute("data-payment-id")];
          if (state && state.status !== "pending") mark(card, state);
        });
      })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }

  window.setInterval(poll, every);
})();
