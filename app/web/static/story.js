// Presenter story banner: arrow keys step Back/Next; the banner's command button presses the meter page's.
(function () {
  var banner = document.getElementById("story-banner");
  if (!banner) { return; }

  function typing(el) {
    var tag = el.tagName;
    return tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || el.isContentEditable;
  }

  // The arrows are the story's only when nothing else may want them: focus on the page
  // itself or inside the banner, never in a field, a scrolling region or a focusable widget
  // (← in a scrolling table went back a step), and never with a modifier (Alt+← is the
  // browser's Back).
  function forStory(e) {
    if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) { return false; }
    var el = e.target;
    if (!el || el === document.body || el === document.documentElement) { return true; }
    if (!banner.contains(el) || typing(el)) { return false; }
    return !el.closest("[role=region], [tabindex], .scroll");
  }

  document.addEventListener("keydown", function (e) {
    if (!forStory(e)) { return; }
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
