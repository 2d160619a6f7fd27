// One thing only: a form sent once stays sent. A second click on "Send request" would
// otherwise become a repeat search that a supervisor has to approve.
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form.method.toLowerCase() !== "post" || form.dataset.sent === "yes") {
    if (form.dataset.sent === "yes") { event.preventDefault(); }
    return;
  }
  form.dataset.sent = "yes";
  form.setAttribute("aria-busy", "true");
});
