// Channel workspace helpers: fill the registration form from a prospect; copy a suggested answer.
(function () {
  var prospect = document.getElementById("prospect");
  if (prospect) {
    prospect.addEventListener("change", function () {
      var opt = prospect.options[prospect.selectedIndex];
      if (!opt || !opt.value) { return; }
      document.getElementById("utility").value = opt.dataset.name;
      document.getElementById("segment").value = opt.dataset.segment;
      document.getElementById("region").value = opt.dataset.region;
      var endpoints = document.getElementById("endpoints");
      if (endpoints && !endpoints.value) { endpoints.value = opt.dataset.endpoints; }
    });
  }
  document.querySelectorAll("[data-use-answer]").forEach(function (button) {
    button.addEventListener("click", function () {
      var form = document.getElementById(button.dataset.useAnswer);
      if (!form) { return; }
      form.querySelector("textarea[name=answer]").value = button.dataset.answer;
      form.querySelector("select[name=compliance]").value = button.dataset.compliance;
    });
  });
})();
