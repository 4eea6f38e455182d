import { useEffect, useState } from "react"
import { Button } from "@/components/ui/button"
import { Input } from "@/components/ui/input"

// The memory panel: everything the assistant holds about the signed-in user, why, and the controls to
// change it. It is shown beside the chat, in Chainlit's side view (a sheet over the chat on a phone),
// never as a message (assistant/ui/app.py, _open_profile_panel). All data comes from /api/me/... (scoped
// to the signed-in user on the server), loaded fresh every time the panel is opened, so it is never
// stale props. Its one prop, `threadId`, is the chat on screen (for "Don't remember this chat"); the
// panel closes when another chat is opened (Chainlit clears the side view with the chat).

const FACETS = {
  communication: "How you communicate",
  personality: "Personality",
  style: "How you write",
  preference: "What you told me",
}

async function call(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  })
  const data = await response.json().catch(() => ({}))
  if (!response.ok) throw new Error(data.detail || `The request failed (${response.status}).`)
  return data
}

// Opens a message of one of the user's chats inside the app, the way the sidebar's links do: Chainlit's
// router (react-router) follows the history, so a pushState with a popstate event opens /thread/<id>
// without reloading the page. Chainlit has no anchor for a message, so the message (its element is
// `step-<id>`) is scrolled to and outlined once it is on the page, by timers that outlive this panel
// (opening another chat closes the panel).
function showMessage(threadId, stepId) {
  closeSheet()
  const path = `/thread/${encodeURIComponent(threadId)}`
  if (window.location.pathname !== path) {
    const index = (window.history.state && window.history.state.idx) || 0
    window.history.pushState({ usr: null, key: Math.random().toString(36).slice(2, 10), idx: index + 1 }, "", path)
    window.dispatchEvent(new PopStateEvent("popstate", { state: window.history.state }))
  }
  if (stepId) scrollToMessage(stepId, Date.now() + 15000)
}

// On a phone the panel is a sheet over the chat: it is closed (by its own Close button) so that the
// message shown is not hidden under it. Beside the chat on a wider screen it stays open.
function closeSheet() {
  const sheet = document.getElementById("profile-panel")?.closest('[role="dialog"]')
  const close = sheet && [...sheet.querySelectorAll("button")].find((b) => b.textContent.trim() === "Close")
  if (close) close.click()
}

function scrollToMessage(stepId, deadline) {
  const found = document.getElementById(`step-${stepId}`)
  if (!found) {
    if (Date.now() < deadline) setTimeout(() => scrollToMessage(stepId, deadline), 200)
    return
  }
  // Chainlit scrolls a thread it has just opened to its end once the messages are in: scroll after it.
  setTimeout(() => {
    const message = document.getElementById(`step-${stepId}`) || found
    message.scrollIntoView({ block: "center" })
    message.setAttribute("data-evidence-shown", "true")
    message.style.outline = "2px solid hsl(var(--primary))"
    message.style.borderRadius = "0.5rem"
    setTimeout(() => { message.style.outline = "" }, 6000)
  }, 500)
}

// A plain left click opens the message in place; a middle click or ctrl-click keeps the browser's way.
function openInPlace(event, threadId, stepId) {
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
  event.preventDefault()
  showMessage(threadId, stepId)
}

function Evidence({ message }) {
  const quote = message.text.length > 240 ? message.text.slice(0, 239) + "…" : message.text
  // The title is often the start of this very message: name the chat only when it says something new.
  const title = (message.thread_name || "").replace(/…$/, "")
  const named = title && !message.text.startsWith(title) ? ` in “${message.thread_name}”` : ""
  return (
    <li id={`evidence-message-${message.message_id}`} className="my-1">
      <div>«{quote}»</div>
      <div className="text-xs opacity-70">
        You wrote this on {new Date(message.at).toLocaleDateString()}{named}.{" "}
        <a id={`evidence-link-${message.message_id}`} className="underline" style={{ textDecoration: "underline" }}
           href={`/thread/${encodeURIComponent(message.thread_id)}`}
           onClick={(e) => openInPlace(e, message.thread_id, message.step_id)}>Show it in the chat</a>
      </div>
    </li>
  )
}

function HistoryLine({ group }) {
  const one = group.events[0]
  const when = new Date(group.at).toLocaleString()
  if (group.count === 1) {
    return (
      <li>{when}: {one.by} {one.what} “{one.after || one.before}”{one.before && one.after && one.before !== one.after ? ` (was “${one.before}”)` : ""}</li>
    )
  }
  return (
    <li>
      <details>
        <summary className="cursor-pointer">{when}: {group.by} {group.what} {group.count} entries</summary>
        <ul className="pl-3">
          {group.events.map((e) => <li key={e.id}>“{e.after || e.before}”</li>)}
        </ul>
      </details>
    </li>
  )
}

// Rows of controls wrap at phone width instead of squeezing a text field down to a few letters.
const ROW = { display: "flex", flexWrap: "wrap", gap: "0.5rem", alignItems: "center" }
const FIELD = { flex: "1 1 16rem", minWidth: 0 }

function Entry({ entry, onChange, onError }) {
  const [editing, setEditing] = useState(false)
  const [draft, setDraft] = useState(entry.text)
  const [evidence, setEvidence] = useState(null)

  const change = async (body, done) => {
    try {
      await onChange(() => call("PATCH", `/api/me/profile/entries/${entry.id}`, { version: entry.version, ...body }), done)
    } catch (e) {
      onError(e.message)
    }
  }
  const why = async () => {
    if (evidence) return setEvidence(null)
    try {
      setEvidence((await call("GET", `/api/me/profile/entries/${entry.id}/evidence`)).messages)
    } catch (e) {
      onError(e.message)
    }
  }
  return (
    <li id={`entry-${entry.id}`} className="border rounded-md p-2 my-1">
      {editing ? (
        <div className="flex gap-2">
          <Input id={`edit-input-${entry.id}`} value={draft} onChange={(e) => setDraft(e.target.value)} />
          <Button id={`save-${entry.id}`} size="sm" onClick={() => change({ text: draft }, () => setEditing(false))}>Save</Button>
          <Button size="sm" variant="ghost" onClick={() => setEditing(false)}>Cancel</Button>
        </div>
      ) : (
        <div id={`entry-text-${entry.id}`}>{entry.text}</div>
      )}
      <div className="text-xs opacity-70 mt-1">
        {entry.source === "user" ? "written by you" : `inferred, confidence ${Math.round(entry.confidence * 100)}%, seen ${entry.support}×`}
        {entry.pinned ? " · pinned" : ""}{entry.sensitive ? " · sensitive" : ""}
      </div>
      <div className="flex flex-wrap gap-1 mt-1">
        {entry.evidence > 0 && <Button id={`why-${entry.id}`} size="sm" variant="outline" onClick={why}>Why?</Button>}
        <Button id={`edit-${entry.id}`} size="sm" variant="outline" onClick={() => { setDraft(entry.text); setEditing(true) }}>Edit</Button>
        <Button id={`pin-${entry.id}`} size="sm" variant="outline" onClick={() => change({ pinned: !entry.pinned })}>{entry.pinned ? "Unpin" : "Pin"}</Button>
        <Button id={`reject-${entry.id}`} size="sm" variant="outline" onClick={() => change({ status: "rejected" })}>Not true: reject</Button>
      </div>
      {evidence && (
        <ul id={`evidence-${entry.id}`} className="text-sm mt-2 pl-3 border-l">
          {evidence.length === 0 && <li>The messages behind this are no longer kept.</li>}
          {evidence.map((m) => <Evidence key={m.message_id} message={m} />)}
        </ul>
      )}
    </li>
  )
}

// --- Import: bring a history from elsewhere (assistant/ui/imports.py) ------------------------------

const ACCEPTED = ".zip,.json,.txt,.md,.markdown,.eml,.mbox"
const count = (n, one, many) => `${n} ${n === 1 ? one : many || one + "s"}`
const STAGES = {
  uploading: (c) => `Receiving ${c.file_name}…`,
  reading: (c) => `Reading ${c.file_name}: ${count(c.conversations, "conversation")}, ${count(c.messages, "message")}, ` +
                  `${count(c.texts, "text")} so far…`,
  learning: (c) => `${c.summary}. Learning your profile from a sample of your own words…`,
  undoing: (c) => `Undoing the import of ${c.file_name}…`,
}
const FINISHED = ["done", "undone"]  // the profile may have changed: it is loaded again

function held(batch) {
  const what = batch.conversations || batch.source === "chatgpt" || batch.source === "claude"
    ? `${count(batch.conversations, "conversation")} (${count(batch.messages, "message")})` : count(batch.texts, "text")
  const skipped = Object.entries(batch.skipped || {}).map(([why, n]) => `${why} (${n})`).join(", ")
  return what + (skipped ? `; skipped: ${skipped}` : "")
}

// The file goes up as it is, with the browser's own progress events (fetch has none for uploads).
function send(file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest()
    request.open("POST", `/api/me/imports?name=${encodeURIComponent(file.name)}`)
    request.setRequestHeader("Content-Type", "application/octet-stream")
    request.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(Math.round((100 * e.loaded) / e.total)) }
    request.onload = () => {
      let body = {}
      try { body = JSON.parse(request.responseText) } catch (e) { body = {} }
      if (request.status === 202) resolve(body)
      else reject(new Error(body.detail || `The upload was refused (${request.status}).`))
    }
    request.onerror = () => reject(new Error("The upload broke off; nothing was imported."))
    request.send(file)
  })
}

const ADDING = ["uploading", "reading", "undoing"]  // rows still change: no second import, no undo

function Imports({ onProfileChanged }) {
  const [state, setState] = useState(null)
  const [sent, setSent] = useState(null)
  const [error, setError] = useState("")
  const [tries, setTries] = useState(0)
  const refresh = async () => {
    const data = await call("GET", "/api/me/imports")
    setState(data)
    return data
  }
  useEffect(() => { refresh().catch((e) => setError(e.message)) }, [])
  const current = state && state.current
  const working = current && STAGES[current.stage]
  // While an import works, look again every second (a failed look is tried again, more slowly); when it
  // is done, the profile and the style card it made are shown.
  useEffect(() => {
    if (!working) return
    const timer = setTimeout(async () => {
      try {
        const data = await refresh()
        setError("")
        if (data.current && FINISHED.includes(data.current.stage)) onProfileChanged()
      } catch (e) {
        setError(e.message)
        setTries((n) => n + 1)
      }
    }, tries ? 3000 : 1000)
    return () => clearTimeout(timer)
  }, [state, tries])

  const choose = async (event) => {
    const file = event.target.files && event.target.files[0]
    event.target.value = ""  // the same file may be chosen again later
    if (!file) return
    setError("")
    setSent(0)
    try {
      await send(file, setSent)
      const data = await refresh()
      if (data.current && FINISHED.includes(data.current.stage)) onProfileChanged()  // nothing left to wait for
    } catch (e) {
      setError(e.message)
    } finally {
      setSent(null)
    }
  }
  const undo = async (batch) => {
    try {
      await call("DELETE", `/api/me/imports/${batch.id}`)
      setError("")
      const data = await refresh()
      if (data.current && FINISHED.includes(data.current.stage)) onProfileChanged()  // done before the first look
    } catch (e) {
      setError(e.message)
    }
  }
  const busy = sent !== null || Boolean(current && ADDING.includes(current.stage))
  return (
    <section id="imports" className="flex flex-col gap-2">
      <h3 className="font-semibold">Bring your history</h3>
      <p className="text-xs opacity-80">
        A ChatGPT or Claude export (.zip or conversations.json), your own writing (.txt, .md) or e-mail you
        sent (.eml, .mbox). Only your own words teach your profile. You can undo any import entirely.
      </p>
      <input id="import-file" type="file" accept={ACCEPTED} disabled={busy} onChange={choose} />
      {sent !== null && (
        <div id="import-upload">Uploading… {sent}% <progress value={sent} max="100" /></div>
      )}
      {error && <p id="import-error" className="text-red-500">{error}</p>}
      {current && (
        <div id="import-current" data-stage={current.stage}>
          {working ? working(current) : null}
          {current.stage === "done" && <p id="import-summary">{current.summary}</p>}
          {current.stage === "done" && current.profile && <p id="import-profile">{current.profile}</p>}
          {FINISHED.includes(current.stage) && current.conversations > 0 && (
            // Chainlit's chat list loads once per page: a plain link reloads it as it now is.
            <a id="import-open-list" href="/" className="underline" style={{ textDecoration: "underline" }}>
              {current.stage === "done" ? "See the conversations in your chat list" : "Reload your chat list"}</a>
          )}
          {current.stage === "undone" && <p id="import-undone">{current.summary}</p>}
          {current.stage === "failed" && <p id="import-failed" className="text-red-500">{current.error}</p>}
          {current.note && <p id="import-note" className="text-amber-600">{current.note}</p>}
        </div>
      )}
      {state && state.imports.length > 0 && (
        <ul id="import-list" className="text-xs">
          {state.imports.map((batch) => (
            <li key={batch.id} id={`import-${batch.id}`} className="flex flex-wrap gap-2 items-center">
              <span>
                {new Date(batch.created_at).toLocaleDateString()} · {batch.file_name}: {held(batch)} · {batch.status}
                {batch.reason ? ` (${batch.reason})` : ""}
              </span>
              {batch.status === "done" && (
                <Button id={`import-undo-${batch.id}`} size="sm" variant="outline" disabled={busy}
                        onClick={() => undo(batch)}>Undo this import</Button>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  )
}

// The box shows only a clear yes or no from the server; anything else shows no box at all.
const answered = (body) => (body && typeof body.remember === "boolean" ? body.remember : null)

export default function ProfilePanel() {
  const [data, setData] = useState(null)
  const [error, setError] = useState("")
  const [notice, setNotice] = useState("")
  const [facet, setFacet] = useState("preference")
  const [text, setText] = useState("")
  const [remember, setRemember] = useState(null)
  const [confirm, setConfirm] = useState("")
  const [showHistory, setShowHistory] = useState(false)

  const thread = `/api/me/threads/${encodeURIComponent(props.threadId || "")}`
  const load = async () => setData(await call("GET", "/api/me/profile"))
  useEffect(() => {
    load().catch((e) => setError(e.message))
    if (props.threadId) {
      call("GET", thread).then((t) => setRemember(answered(t))).catch(() => setRemember(null))
    }
  }, [])

  // Run a change, then reload; a failure is shown and nothing else changes.
  const act = async (request, done, message) => {
    try {
      await request()
      setError("")
      setNotice(message || "Saved. The next reply uses it.")
      if (done) done()
      await load()
    } catch (e) {
      setNotice("")
      setError(e.message)
    }
  }
  const onChange = (request, done) => act(request, done)
  // The box shows what the server stored, never what the click event said: a controlled checkbox's
  // event is stale once awaited (React has put the box back by then), which once showed the opposite.
  const saveRemember = async (wanted) => {
    try {
      const saved = answered(await call("PUT", `${thread}/remember`, { remember: wanted }))
      if (saved === null) throw new Error("The server's answer did not say whether this chat is remembered.")
      setRemember(saved)
      setError("")
      setNotice(saved ? "This chat is remembered again."
                        : "This chat will not be remembered: never recalled, never learned from.")
    } catch (e) {
      setNotice("")
      setError(e.message)
    }
  }

  if (!data) return <div id="profile-panel">{error ? <p id="profile-error" className="text-red-500">{error}</p> : "Loading your profile…"}</div>
  const empty = Object.values(data.facets).every((list) => list.length === 0)
  return (
    <div id="profile-panel" className="flex flex-col gap-3 p-2 text-sm">
      {error && <p id="profile-error" className="text-red-500">{error}</p>}
      {notice && <p id="profile-notice" className="text-green-600">{notice}</p>}
      {empty && <p>Nothing is held about you yet beyond how you write. Hypotheses appear after a few messages, or once you bring your history (below).</p>}
      {Object.entries(data.facets).filter(([, list]) => list.length).map(([name, list]) => (
        <section key={name} id={`facet-${name}`}>
          <h3 className="font-semibold">{FACETS[name] || name}</h3>
          <ul>{list.map((entry) => <Entry key={`${entry.id}-${entry.version}`} entry={entry} onChange={onChange} onError={setError} />)}</ul>
        </section>
      ))}
      <section id="add-entry">
        <h3 className="font-semibold">Add something about you</h3>
        <div style={ROW}>
          <select id="add-facet" value={facet} onChange={(e) => setFacet(e.target.value)} className="border rounded-md bg-transparent h-9"
                  style={{ flex: "1 1 10rem" }}>
            {Object.entries(FACETS).map(([value, label]) => <option key={value} value={value}>{label}</option>)}
          </select>
          <div style={FIELD}>
            <Input id="add-text" placeholder="e.g. Prefers an example first." value={text} onChange={(e) => setText(e.target.value)} />
          </div>
          <Button id="add-submit" size="sm" onClick={() => act(() => call("POST", "/api/me/profile/entries", { facet, text }), () => setText(""))}>Add</Button>
        </div>
      </section>
      <div className="flex gap-2">
        <Button id="undo" size="sm" variant="outline" disabled={!data.can_undo}
                onClick={() => act(() => call("POST", "/api/me/profile/undo"), null, "Your last change is undone.")}>Undo my last change</Button>
        <Button id="history-toggle" size="sm" variant="outline" onClick={() => setShowHistory(!showHistory)}>History</Button>
      </div>
      {showHistory && (
        <ul id="history" className="text-xs">
          {data.history.map((group) => <HistoryLine key={group.id} group={group} />)}
        </ul>
      )}
      {data.rejected.length > 0 && (
        <section id="rejected">
          <h3 className="font-semibold">Rejected (never suggested again)</h3>
          <ul>{data.rejected.map((entry) => (
            <li key={entry.id} id={`rejected-${entry.id}`} className="flex gap-2 items-center">
              <span className="line-through">{entry.text}</span>
              <Button id={`restore-${entry.id}`} size="sm" variant="ghost"
                      onClick={() => act(() => call("PATCH", `/api/me/profile/entries/${entry.id}`, { version: entry.version, status: "active" }))}>Restore</Button>
            </li>))}</ul>
        </section>
      )}
      <section id="style-card">
        <h3 className="font-semibold">How you write (measured)</h3>
        {data.style.length ? (
          <>
            <ul id="style-plain">{data.style.map((line, i) => <li key={i}>{line.text}</li>)}</ul>
            <details id="style-numbers" className="text-xs opacity-80 mt-1">
              <summary className="cursor-pointer">Show the numbers</summary>
              <ul>{data.style.map((line, i) => <li key={i}>{line.numbers}</li>)}</ul>
            </details>
          </>
        ) : <p>Measured after three messages.</p>}
      </section>
      <Imports onProfileChanged={(message) => {
        load().catch((e) => setError(e.message))
        if (message) setNotice(message)
      }} />
      <section id="privacy" className="flex flex-col gap-2">
        <h3 className="font-semibold">Privacy</h3>
        {remember !== null && (
          <label className="flex gap-2 items-center">
            <input id="remember-toggle" type="checkbox" checked={remember === false}
                   onChange={(e) => saveRemember(!e.target.checked)} />
            Don't remember this chat
          </label>
        )}
        <a id="export-link" href="/api/me/export" download className="underline">Export my data (JSON)</a>
        <div style={ROW}>
          <div style={FIELD}>
            <Input id="forget-confirm" placeholder="Type your username to confirm" value={confirm} onChange={(e) => setConfirm(e.target.value)} />
          </div>
          <Button id="forget-submit" size="sm" variant="destructive" disabled={!confirm}
                  onClick={async () => {
                    try {
                      await call("POST", "/api/me/forget", { confirm })
                      window.location.href = "/login?erased=1"  // the login page says what was erased (public/hyperalign.js)
                    } catch (e) {
                      setError(e.message)
                    }
                  }}>Forget me</Button>
        </div>
      </section>
    </div>
  )
}
