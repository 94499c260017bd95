// Errand dashboard page. Plain JavaScript served by @errand/dashboard (no build step, no CDN).
// Rule: data from the API is only ever put in the page as text (textContent, attribute values), never as HTML.

const $ = (selector) => document.querySelector(selector)
const state = {
  info: { pollMillis: 2000, readOnly: false, tokenRequired: false, requestHeader: "x-errand-dashboard" },
  queues: [],
  deadQueue: sessionStorage.getItem("errand.deadQueue") ?? "",
  offset: 0,
  limit: 50,
  selected: new Set(),
  busy: false
}

/** An element with text content and attributes; children appended in order. */
const el = (tag, attributes = {}, ...children) => {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue
    if (name === "text") node.textContent = String(value)
    else if (name === "className") node.className = value
    else node.setAttribute(name, value === true ? "" : String(value))
  }
  for (const child of children) node.append(child)
  return node
}

const td = (text, className) => el("td", { text, className })
const formatTime = (ms) => new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z")
const formatNumber = (n) => (n === null || n === undefined ? "–" : n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2))
const ago = (ms) => {
  const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000))
  return seconds < 60 ? `${seconds}s ago` : seconds < 3600 ? `${Math.floor(seconds / 60)}m ago` : `${Math.floor(seconds / 3600)}h ago`
}
const until = (ms) => {
  const seconds = Math.round((ms - Date.now()) / 1000)
  if (seconds <= 0) return "due"
  return seconds < 60 ? `in ${seconds}s` : seconds < 3600 ? `in ${Math.floor(seconds / 60)}m` : `in ${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`
}

const setStatus = (text, isError = false) => {
  const status = $("#status")
  status.textContent = text
  status.classList.toggle("error", isError)
}

const getJson = async (path) => {
  const response = await fetch(path, { headers: { accept: "application/json" } })
  const body = await response.json()
  if (!response.ok) throw new Error(body.message ?? `HTTP ${response.status}`)
  return body
}

const postJson = async (path, body) => {
  const headers = { "content-type": "application/json", [state.info.requestHeader]: "1" }
  const token = $("#token").value
  if (token !== "") headers.authorization = `Bearer ${token}`
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) })
  const answer = await response.json()
  if (response.status === 401) {
    $("#token-label").hidden = false
    $("#token").focus()
  }
  if (!response.ok) throw new Error(answer.message ?? `HTTP ${response.status}`)
  return answer
}

const fill = (tbody, rows) => {
  tbody.replaceChildren(...rows)
}

// ---- queues ----

const renderQueues = (queues) => {
  state.queues = queues
  fill($("#queues tbody"), queues.map((q) => {
    const row = el("tr", { "data-queue": q.queue, className: "clickable", title: "Show its dead letters" },
      td(q.queue),
      td(q.ready, "num ready"),
      td(q.delayed, "num delayed"),
      td(q.inFlight, "num in-flight"),
      td(q.dead, "num dead"))
    row.addEventListener("click", () => chooseDeadQueue(q.queue))
    return row
  }))
  $("#queues-empty").hidden = queues.length > 0
  const select = $("#dead-queue")
  const names = queues.map((q) => q.queue)
  if (state.deadQueue === "" || !names.includes(state.deadQueue)) {
    const withDead = queues.find((q) => q.dead > 0)
    if (state.deadQueue === "" && names.length > 0) state.deadQueue = (withDead ?? queues[0]).queue
  }
  const current = [...select.options].map((option) => option.value)
  if (current.join("\u0000") !== names.join("\u0000")) {
    select.replaceChildren(...names.map((name) => el("option", { value: name, text: name })))
  }
  select.value = state.deadQueue
}

const chooseDeadQueue = (queue) => {
  if (queue !== state.deadQueue) {
    state.deadQueue = queue
    state.offset = 0
    state.selected.clear()
    sessionStorage.setItem("errand.deadQueue", queue)
  }
  $("#dead-queue").value = queue
  refreshDead().catch((error) => setStatus(error.message, true))
}

// ---- throughput ----

const SVG = "http://www.w3.org/2000/svg"
const svg = (tag, attributes) => {
  const node = document.createElementNS(SVG, tag)
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value))
  return node
}

/** A line chart of `lines` ({ values, className }) over the points' times, drawn as SVG. */
const drawChart = (container, times, lines) => {
  const width = 600, height = 140, left = 40, bottom = 18, top = 8
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img" })
  const all = lines.flatMap((line) => line.values.filter((v) => v !== null))
  const max = Math.max(1, ...all) * 1.1
  const t0 = times[0] ?? 0, t1 = times.at(-1) ?? 1
  const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * (width - left - 4)
  const y = (v) => top + (1 - v / max) * (height - top - bottom)
  root.append(svg("line", { x1: left, y1: y(0), x2: width, y2: y(0), class: "axis" }))
  for (const fraction of [0.5, 1]) {
    const value = (max / 1.1) * fraction
    root.append(svg("line", { x1: left, y1: y(value), x2: width, y2: y(value), class: "axis", "stroke-dasharray": "2 3" }))
    const label = svg("text", { x: left - 4, y: y(value) + 3, "text-anchor": "end" })
    label.textContent = formatNumber(value)
    root.append(label)
  }
  if (times.length > 1) {
    for (const [i, t] of [[0, t0], [1, t1]]) {
      const label = svg("text", { x: i === 0 ? left : width - 2, y: height - 4, "text-anchor": i === 0 ? "start" : "end" })
      label.textContent = new Date(t).toISOString().slice(11, 19)
      root.append(label)
    }
  }
  for (const line of lines) {
    let d = ""
    line.values.forEach((v, i) => {
      if (v === null) return
      d += `${d === "" ? "M" : "L"}${x(times[i]).toFixed(1)},${y(v).toFixed(1)} `
    })
    if (d !== "") root.append(svg("path", { d, fill: "none", stroke: line.color, "stroke-width": 2, "vector-effect": "non-scaling-stroke" }))
  }
  if (times.length === 0) {
    const label = svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle" })
    label.textContent = "Waiting for heartbeats…"
    root.append(label)
  }
  container.replaceChildren(root)
}

const renderThroughput = (data) => {
  const times = data.series.map((p) => p.at)
  drawChart($("#chart-rate"), times, [
    { values: data.series.map((p) => p.processed), color: "#2f7de1" },
    { values: data.series.map((p) => p.failed), color: "#d64545" }
  ])
  drawChart($("#chart-latency"), times, [{ values: data.series.map((p) => p.meanMillis), color: "#6a4fc8" }])
  fill($("#actors tbody"), data.actors.map((a) =>
    el("tr", { "data-actor": a.actor },
      td(a.actor), td(a.queue), td(a.processed, "num"), td(a.failed, "num"), td(formatNumber(a.perSecond), "num"),
      td(formatNumber(a.meanMillis), "num"))
  ))
}

// ---- workers and schedules ----

const renderWorkers = (data) => {
  fill($("#workers tbody"), data.workers.map((w) =>
    el("tr", { "data-worker": w.id },
      td(w.id, "id"), td(w.host), td(w.pid, "num"), td(w.queues.join(", ")), td(w.inFlight, "num in-flight"),
      td(formatTime(w.startedAt)), td(ago(w.at)))
  ))
  $("#workers-empty").hidden = data.workers.length > 0
}

const renderSchedules = (data) => {
  fill($("#schedules tbody"), data.schedules.map((s) =>
    el("tr", { "data-schedule": s.name },
      td(s.name), td(s.actor), td(s.queue), td(s.cron, "id"), td(s.tz),
      el("td", { title: formatTime(s.nextRun), text: `${formatTime(s.nextRun)} (${until(s.nextRun)})` }),
      td(s.schedulers, "num"))
  ))
  $("#schedules-empty").hidden = data.schedules.length > 0
}

// ---- dead letters ----

const deadPath = (suffix = "") => `api/queues/${encodeURIComponent(state.deadQueue)}/dead-letters${suffix}`

const updateSelectionButtons = () => {
  const none = state.selected.size === 0
  $("#requeue-selected").disabled = none || state.info.readOnly
  $("#delete-selected").disabled = none || state.info.readOnly
  $("#requeue-selected").textContent = none ? "Requeue selected" : `Requeue ${state.selected.size} selected`
  $("#delete-selected").textContent = none ? "Delete selected" : `Delete ${state.selected.size} selected`
}

const renderDead = (data) => {
  $("#dead-total").textContent = `${data.total} in ${data.queue}`
  const ids = new Set(data.deadLetters.map((letter) => letter.id))
  for (const id of state.selected) if (!ids.has(id)) state.selected.delete(id)
  fill($("#dead tbody"), data.deadLetters.map((letter) => {
    const box = el("input", { type: "checkbox", "aria-label": `Select ${letter.id}` })
    box.checked = state.selected.has(letter.id)
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(letter.id)
      else state.selected.delete(letter.id)
      updateSelectionButtons()
    })
    const requeue = el("button", { className: "requeue action", text: "Requeue", disabled: state.info.readOnly })
    requeue.addEventListener("click", () => act("requeue", { ids: [letter.id] }))
    const remove = el("button", { className: "delete action danger", text: "Delete", disabled: state.info.readOnly })
    remove.addEventListener("click", () => act("delete", { ids: [letter.id] }))
    const view = el("button", { className: "view", text: "View" })
    view.addEventListener("click", () => showDetail(letter.id))
    return el("tr", { "data-id": letter.id },
      el("td", {}, box),
      td(letter.id, "id"),
      td(letter.actor ?? "?"),
      td(letter.attempts, "num"),
      td(formatTime(letter.deadAt)),
      td(`[${letter.reason.tag}] ${letter.reason.message}`, "error"),
      el("td", { className: "row-actions" }, view, " ", requeue, " ", remove))
  }))
  $("#dead-empty").hidden = data.deadLetters.length > 0
  $("#select-all").checked = data.deadLetters.length > 0 && data.deadLetters.every((l) => state.selected.has(l.id))
  $("#prev").disabled = state.offset === 0
  $("#next").disabled = state.offset + data.deadLetters.length >= data.total
  const last = state.offset + data.deadLetters.length
  $("#page").textContent = data.total === 0 ? "" : `${state.offset + 1}–${last} of ${data.total} (oldest first)`
  updateSelectionButtons()
}

const refreshDead = async () => {
  if (state.deadQueue === "") {
    renderDead({ queue: "", total: 0, deadLetters: [] })
    $("#dead-total").textContent = ""
    return
  }
  renderDead(await getJson(`${deadPath()}?offset=${state.offset}&limit=${state.limit}`))
}

const act = async (action, selection) => {
  if (state.busy) return
  state.busy = true
  try {
    const answer = await postJson(deadPath(`/${action}`), selection)
    const count = action === "requeue" ? answer.requeued : answer.deleted
    setStatus(`${action === "requeue" ? "Requeued" : "Deleted"} ${count} dead letter(s) of ${answer.queue}.`)
    if (selection.ids) for (const id of selection.ids) state.selected.delete(id)
    else state.selected.clear()
    $("#detail").hidden = true
    await Promise.all([refreshDead(), refreshQueues()])
  } catch (error) {
    setStatus(`${action} failed: ${error.message}`, true)
  } finally {
    state.busy = false
  }
}

const showDetail = async (id) => {
  try {
    const letter = await getJson(deadPath(`/${encodeURIComponent(id)}`))
    $("#detail-id").textContent = letter.id
    const body = letter.body && typeof letter.body === "object" ? letter.body : {}
    const fields = [
      ["Queue", letter.queue],
      ["Actor", letter.actor ?? "?"],
      ["Attempts", `${letter.attempts} handler run(s), every one failed`],
      ["Error", `[${letter.reason.tag}] ${letter.reason.message}`],
      ["Dead at", formatTime(letter.deadAt)],
      ["Enqueued at", typeof body.enqueuedAt === "number" ? formatTime(body.enqueuedAt) : "–"],
      ["Due at", typeof body.eta === "number" ? formatTime(body.eta) : "at once"]
    ]
    $("#detail-fields").replaceChildren(...fields.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: value })]))
    // Attempt numbers count back from the last entry: a history keeps only the last 10 failures
    const history = Array.isArray(letter.history) ? letter.history : []
    const total = Math.max(letter.attempts, history.length)
    $("#detail-history tbody").replaceChildren(...history.map((entry, i) =>
      el("tr", {},
        td(total - (history.length - 1 - i), "num"),
        td(formatTime(entry.at)),
        td(entry.tag),
        td(entry.message, "error"))))
    $("#detail-history-empty").hidden = history.length > 0
    $("#detail-body").textContent = JSON.stringify(letter.body, null, 2)
    $("#detail").hidden = false
    $("#detail").scrollIntoView({ block: "nearest" })
    setStatus("")
  } catch (error) {
    setStatus(`${id}: ${error.message}`, true)
  }
}

// ---- polling ----

const refreshQueues = async () => {
  const data = await getJson("api/queues")
  renderQueues(data.queues)
  $("#updated").textContent = `updated ${new Date(data.at).toISOString().slice(11, 19)}Z`
}

let tick = 0
const poll = async () => {
  if (!document.hidden) {
    try {
      const slow = tick % 3 === 0
      await Promise.all([
        refreshQueues(),
        getJson("api/throughput").then(renderThroughput),
        slow ? getJson("api/workers").then(renderWorkers) : undefined,
        slow ? getJson("api/schedules").then(renderSchedules) : undefined
      ])
      await refreshDead()
      tick++
    } catch (error) {
      $("#updated").textContent = `update failed: ${error.message}`
    }
  }
  setTimeout(poll, state.info.pollMillis)
}

const start = async () => {
  state.info = await getJson("api/info")
  $("#broker").textContent = `broker: ${state.info.broker}`
  const mode = $("#mode")
  mode.textContent = state.info.readOnly ? "read-only" : state.info.tokenRequired ? "actions need a token" : "actions allowed"
  mode.classList.toggle("readonly", state.info.readOnly)
  $("#token-label").hidden = !state.info.tokenRequired || state.info.readOnly
  for (const button of document.querySelectorAll(".toolbar .action")) button.disabled = state.info.readOnly
  $("#dead-queue").addEventListener("change", (event) => chooseDeadQueue(event.target.value))
  $("#select-all").addEventListener("change", (event) => {
    for (const row of document.querySelectorAll("#dead tbody tr")) {
      if (event.target.checked) state.selected.add(row.dataset.id)
      else state.selected.delete(row.dataset.id)
      row.querySelector("input").checked = event.target.checked
    }
    updateSelectionButtons()
  })
  $("#requeue-selected").addEventListener("click", () => act("requeue", { ids: [...state.selected] }))
  $("#delete-selected").addEventListener("click", () => {
    if (confirm(`Delete ${state.selected.size} dead letter(s) for good?`)) act("delete", { ids: [...state.selected] })
  })
  $("#requeue-all").addEventListener("click", () => {
    if (confirm(`Requeue every dead letter of ${state.deadQueue}?`)) act("requeue", { all: true })
  })
  $("#delete-all").addEventListener("click", () => {
    if (confirm(`Delete every dead letter of ${state.deadQueue} for good?`)) act("delete", { all: true })
  })
  $("#prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit)
    refreshDead().catch((error) => setStatus(error.message, true))
  })
  $("#next").addEventListener("click", () => {
    state.offset += state.limit
    refreshDead().catch((error) => setStatus(error.message, true))
  })
  $("#find").addEventListener("submit", (event) => {
    event.preventDefault()
    const id = $("#find-id").value.trim()
    if (id !== "") showDetail(id)
  })
  $("#detail-close").addEventListener("click", () => {
    $("#detail").hidden = true
  })
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) tick = 0
  })
  await poll()
}

start().catch((error) => setStatus(`The dashboard could not start: ${error.message}`, true))
