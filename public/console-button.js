// The Console button by the message box goes straight to the audit console, in this tab.
// Chainlit's command buttons only select a command for the next message; this one is a link instead.
// The server sends the button to operators only (assistant/ui/app.py, CONSOLE_COMMAND), and /console/
// checks the role again, so this script decides nothing about who may see the console.
document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("#command-Console") : null;
  if (!button) return;
  event.preventDefault();
  event.stopPropagation();  // before React sees it: the command is not selected
  window.location.assign("/console/");
}, true);
