// The curator pages' only script: keyboard shortcuts on the audit review.
// c = confirm, m = move to the suspected artist, s = skip (the first suspect on the page);
// nothing here is needed to use the pages, which work as plain forms without it.
"use strict";
document.addEventListener("keydown", function (event) {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey ||
      (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA"))) {
    return;
  }
  const buttons = { c: "button.confirm", m: "button.move", s: "button.skip" };
  const selector = buttons[event.key];
  if (!selector) {
    return;
  }
  const button = document.querySelector("article.suspect " + selector);
  if (button) {
    event.preventDefault();
    button.click();
  }
});
