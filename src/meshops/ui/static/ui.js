// The UI's only script (the CSP allows no inline script): a <select data-autosubmit>
// submits its form when it changes.
document.addEventListener("change", function (event) {
  var target = event.target;
  if (target && target.matches && target.matches("[data-autosubmit]") && target.form) {
    target.form.submit();
  }
});
