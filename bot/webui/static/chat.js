// The web chat's glue around htmx: Enter sends, a sent message clears its box, new
// messages scroll into view, the connection's state shows, a thread opens beside,
// times show in the tab's own timezone.
(function () {
  function atBottom(box) { return box.scrollHeight - box.scrollTop - box.clientHeight < 80; }
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (box.tagName === "TEXTAREA" && event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      if (box.value.trim()) { box.form.requestSubmit(); }
    }
  });
  document.addEventListener("htmx:wsAfterSend", function (event) {
    var form = event.detail.elt;
    if (form && form.querySelector) {
      var box = form.querySelector("textarea");
      if (box) { box.value = ""; box.focus(); }
    }
  });
  var follow = true;
  document.addEventListener("htmx:oobBeforeSwap", function () {
    var box = document.getElementById("messages");
    follow = !box || atBottom(box);
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var target = event.detail.target;
    var box = target && target.closest ? target.closest("#messages, .thread-messages") : null;
    if (box && (follow || box.classList.contains("thread-messages"))) { box.scrollTop = box.scrollHeight; }
  });
  function status(text) { var s = document.getElementById("status"); if (s) { s.textContent = text; } }
  document.addEventListener("htmx:wsOpen", function () { status("connected"); });
  document.addEventListener("htmx:wsClose", function () { status("reconnecting…"); });
  document.addEventListener("htmx:afterSwap", function () {
    var thread = document.getElementById("thread"), chat = document.getElementById("chat");
    if (thread && chat) { chat.classList.toggle("with-thread", !thread.hidden); }
  });
  // Times come as UTC; each tab shows them in its own timezone.
  function localTime(time) {
    var moment = new Date(time.getAttribute("datetime"));
    if (!isNaN(moment)) {
      time.textContent = moment.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    }
  }
  htmx.onLoad(function (element) {
    if (element.querySelectorAll) { element.querySelectorAll("time[datetime]").forEach(localTime); }
  });
  window.addEventListener("load", function () {
    var box = document.getElementById("messages");
    if (box) { box.scrollTop = box.scrollHeight; }
  });
})();
