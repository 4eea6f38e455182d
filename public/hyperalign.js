// hyperalign's page scripts: Chainlit loads one custom script (custom_js in .chainlit/config.toml), from our
// own origin; each part below is independent.

// --- Sign-in page ---------------------------------------------------------------------------------
// The sign-in page's help. Loaded on every page (`custom_js` in .chainlit/config.toml); acts on /login only.
//
// - Chainlit's login page shows a refused sign-in as "Unable to sign in" (it reads the HTTP status
//   text, not the answer) and toasts the raw "Unauthorized: <code>". Our POST /login answers with a
//   code that is a key of the page's own texts (auth.login.errors in .chainlit/translations), so a
//   refused sign-in is handed to the page as an error whose message is that code: the page shows
//   the matching sentence in place, and no toast (Chainlit toasts only its own ClientError).
// - Before the first try, the page says whether a new name creates an account and the rules it
//   must meet (GET /api/signin), and after "Forget me" (/login?erased=1) that the erasure is done.
//   Both are fixed texts, set as text, never as HTML: a crafted link can only show what we wrote.
(function () {
  "use strict";
  const realFetch = window.fetch.bind(window);
  const onLoginPage = () => /\/login\/?$/.test(window.location.pathname);
  const ERASED =
    "Done: your account and everything about you (conversations, profile, style card, recall vectors " +
    "and index files) were erased, and you were signed out. The audit keeps only anonymous counts; " +
    "signing up again starts empty.";

  function isSignIn(input, init) {
    const method = ((init && init.method) || (input && input.method) || "GET").toUpperCase();
    const url = new URL(String(input instanceof Request ? input.url : input), window.location.href);
    return method === "POST" && url.origin === window.location.origin && /\/login$/.test(url.pathname);
  }

  window.fetch = async function (input, init) {
    const response = await realFetch(input, init);
    if (response.ok || !isSignIn(input, init)) return response;
    const detail = await response.clone().json().then((body) => body && body.detail, () => null);
    // Only a code shaped like a text key; anything else (a validation list) takes Chainlit's own path.
    if (typeof detail !== "string" || !/^[a-z]{1,40}$/.test(detail)) return response;
    throw new Error(detail);
  };

  function note(id, text, role) {
    const element = document.createElement("p");
    element.id = id;
    element.className = "hyperalign-signin-note";
    element.setAttribute("role", role);
    element.textContent = text;
    return element;
  }

  let rules = null;
  realFetch("/api/signin")
    .then((response) => (response.ok ? response.json() : null))
    .then((body) => { rules = body && typeof body.rules === "string" ? body.rules : null; place(); })
    .catch(() => {});

  // Next to the form, outside what React renders inside it, and again if React replaces the form.
  function place() {
    const form = onLoginPage() && document.querySelector("form:has(#email)");
    if (!form) return;
    if (rules && !document.getElementById("signin-rules")) form.after(note("signin-rules", rules, "note"));
    const erased = new URLSearchParams(window.location.search).get("erased") === "1";
    if (erased && !document.getElementById("erased-notice")) form.before(note("erased-notice", ERASED, "status"));
  }

  new MutationObserver(place).observe(document.documentElement, { childList: true, subtree: true });
})();

// --- Console button --------------------------------------------------------------------------------
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

// --- Profile panel ---------------------------------------------------------------------------------
// The profile opens beside the chat (Chainlit's side view), never as a chat message: the composer's
// Profile button, "/profile" typed and sent with one Enter (or the send button), and the first screen's
// profile starter all ask the server for the panel over the socket, as a window message (Chainlit
// forwards those to @cl.on_window_message in assistant/ui/app.py, OPEN_PROFILE), and nothing is sent
// to the chat. Chainlit's own handling would select the command on the first Enter and send a message
// on the second.
(function () {
  "use strict";
  const OPEN_PROFILE = { hyperalign: "open-profile" };
  const STARTER = "#starter-show-what-you-have-learned-about-me";  // the label in app.py's _starters
  // A window message sent while the chat's socket is (re)connecting (just after sign-in, "New chat" or
  // opening another thread) is lost, so it waits until Chainlit enables its composer buttons again,
  // which it does once the socket is up (and a reply has finished).
  function openProfile(deadline = Date.now() + 15000) {
    const ready = document.querySelector("#command-Profile:not([disabled])");
    if (!ready && Date.now() < deadline) {
      setTimeout(() => openProfile(deadline), 100);
      return;
    }
    window.postMessage(OPEN_PROFILE, window.location.origin);
  }
  const composer = () => document.getElementById("chat-input");
  const typedProfile = () => {
    const input = composer();
    return !!input && typeof input.value === "string" && input.value.trim().toLowerCase() === "/profile";
  };

  // Empties the composer the way typing would, so React (which owns its value) sees it and closes the
  // command menu that "/profile" opened.
  function emptyComposer() {
    const input = composer();
    const setter = Object.getOwnPropertyDescriptor(window.HTMLTextAreaElement.prototype, "value").set;
    setter.call(input, "");
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function instead(event) {
    event.preventDefault();
    event.stopPropagation();  // capturing on window: before React sees it
  }

  let unselecting = false;  // our own click on Chainlit's toggle, let through below

  window.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target || unselecting) return;
    if (target.closest(`#command-Profile, ${STARTER}`) || (target.closest("#chat-submit") && typedProfile())) {
      instead(event);
      if (typedProfile()) emptyComposer();
      openProfile();
    }
  }, true);

  window.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    if (event.target !== composer() || !typedProfile()) return;
    instead(event);
    emptyComposer();
    openProfile();
  }, true);

  // Picked from the "/" menu some other way ("/pro" and Enter, or a click in the menu), Chainlit only
  // selects the command for the next message (its button shows it by its colour class): the panel opens
  // at once instead, and the command is unselected by Chainlit's own toggle.
  new MutationObserver(() => {
    const selected = document.querySelector("#command-Profile.text-command");
    if (!selected || unselecting) return;
    unselecting = true;
    try {
      selected.click();
    } finally {
      unselecting = false;
    }
    openProfile();
  }).observe(document.documentElement, { subtree: true, attributes: true, attributeFilter: ["class"] });
})();
