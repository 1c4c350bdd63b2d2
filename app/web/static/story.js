// Presenter story banner: arrow keys step Back/Next; the banner's command button presses the meter page's.
(function () {
  var banner = document.getElementById("story-banner");
  if (!banner) { return; }

  function typing(el) {
    if (!el) { return false; }
    var tag = el.tagName;
    return tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || el.isContentEditable;
  }

  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey || e.shiftKey || typing(e.target)) { return; }
    var url = e.key === "ArrowRight" ? banner.dataset.next : e.key === "ArrowLeft" ? banner.dataset.back : "";
    if (url) { e.preventDefault(); window.location.assign(url); }
  });

  var send = document.getElementById("story-command");
  if (send) {
    send.addEventListener("click", function () {
      var target = document.querySelector("#commands button[data-command='" + send.dataset.command + "']");
      if (target) {
        target.click();
        var log = document.getElementById("command-log");
        if (log) { log.scrollIntoView({ block: "center" }); }
      }
    });
  }
})();
