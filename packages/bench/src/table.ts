/**
 * The one results table: a row per measured quantity, a column per contender, each cell the median of the reps and
 * their min–max, and a last column with Errand's median divided by the best peer's.
 */
import { type Column, columns } from "./contenders/index.ts"

export type ScenarioId =
  | "enqueue-one"
  | "enqueue-awaited"
  | "enqueue-bulk"
  | "drain-1"
  | "drain-50"
  | "latency"
  | "in-process"
  | "in-process-latency"

export interface Row {
  /** `<scenario>.<metric key in the child's Metrics>` */
  readonly id: string
  readonly scenario: ScenarioId
  readonly label: string
  readonly better: "higher" | "lower"
  readonly format: (value: number) => string
}

const rate = (v: number): string =>
  v >= 1e6 ? `${(v / 1e6).toFixed(2)}M` : v >= 1e3 ? `${(v / 1e3).toFixed(v >= 1e5 ? 0 : 1)}k` : v.toFixed(0)
const ms = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2))
const count = (v: number): string => (v >= 100 ? v.toFixed(0) : v.toFixed(1))
const bytes = (v: number): string => v.toFixed(0)
const micros = (v: number): string => (v >= 10 ? v.toFixed(1) : v.toFixed(2))

export const rows = (
  n: { readonly redis: number; readonly inProcess: number; readonly inProcessRate: number }
): ReadonlyArray<Row> => [
  {
    id: "enqueue-one.jobsPerSec",
    scenario: "enqueue-one",
    label: "enqueue one by one (1,000 in flight), jobs/s",
    better: "higher",
    format: rate
  },
  {
    id: "enqueue-awaited.jobsPerSec",
    scenario: "enqueue-awaited",
    label: "enqueue one awaited send at a time (a web request's send), jobs/s",
    better: "higher",
    format: rate
  },
  {
    id: "enqueue-bulk.jobsPerSec",
    scenario: "enqueue-bulk",
    label: "enqueue bulk (1,000 per call), jobs/s",
    better: "higher",
    format: rate
  },
  {
    id: "drain-1.jobsPerSec",
    scenario: "drain-1",
    label: `drain ${rate(n.redis)} queued, concurrency 1, jobs/s`,
    better: "higher",
    format: rate
  },
  {
    id: "drain-50.jobsPerSec",
    scenario: "drain-50",
    label: `drain ${rate(n.redis)} queued, concurrency 50, jobs/s`,
    better: "higher",
    format: rate
  },
  {
    id: "latency.p50",
    scenario: "latency",
    label: "add → handler start at 1,000 jobs/s, other process, p50 ms",
    better: "lower",
    format: ms
  },
  {
    id: "latency.p99",
    scenario: "latency",
    label: "add → handler start at 1,000 jobs/s, other process, p99 ms",
    better: "lower",
    format: ms
  },
  {
    id: "latency.workerCpuUs",
    scenario: "latency",
    label: "at 1,000 jobs/s: worker process CPU µs per job",
    better: "lower",
    format: micros
  },
  {
    id: "latency.producerCpuUs",
    scenario: "latency",
    label: "at 1,000 jobs/s: producer process CPU µs per job",
    better: "lower",
    format: micros
  },
  {
    id: "latency.cmdsPerJob",
    scenario: "latency",
    label: "at 1,000 jobs/s: Redis commands per job (incl. inside Lua)",
    better: "lower",
    format: count
  },
  {
    id: "latency.redisCpuUs",
    scenario: "latency",
    label: "at 1,000 jobs/s: Redis server CPU µs per job",
    better: "lower",
    format: micros
  },
  {
    id: "drain-50.cmdsPerJob",
    scenario: "drain-50",
    label: "Redis commands per job, enqueue + drain (incl. inside Lua)",
    better: "lower",
    format: count
  },
  {
    id: "enqueue-one.bytesPerJob",
    scenario: "enqueue-one",
    label: "Redis memory per queued job, B",
    better: "lower",
    format: bytes
  },
  {
    id: "in-process.jobsPerSec",
    scenario: "in-process",
    label: `in process: drain ${rate(n.inProcess)} no-op jobs, concurrency 50, jobs/s`,
    better: "higher",
    format: rate
  },
  {
    id: "in-process.cpuUsPerJob",
    scenario: "in-process",
    label: "in process: CPU µs per job",
    better: "lower",
    format: micros
  },
  {
    id: "in-process.heapBytesPerJob",
    scenario: "in-process",
    label: "in process: heap kept per completed job, B",
    better: "lower",
    format: bytes
  },
  {
    id: "in-process-latency.p50",
    scenario: "in-process-latency",
    label: `in process: add → handler start at ${n.inProcessRate.toLocaleString("en-US")} jobs/s, p50 µs`,
    better: "lower",
    format: micros
  },
  {
    id: "in-process-latency.p99",
    scenario: "in-process-latency",
    label: `in process: add → handler start at ${n.inProcessRate.toLocaleString("en-US")} jobs/s, p99 µs`,
    better: "lower",
    format: micros
  },
  {
    id: "in-process-latency.cpuUs",
    scenario: "in-process-latency",
    label: `in process at ${n.inProcessRate.toLocaleString("en-US")} jobs/s: CPU µs per job (adding and handling)`,
    better: "lower",
    format: micros
  }
]

/** Samples per row id, then per column key. */
export type Samples = Map<string, Map<string, Array<number>>>

export const addSample = (samples: Samples, rowId: string, column: string, value: number): void => {
  let byColumn = samples.get(rowId)
  if (byColumn === undefined) samples.set(rowId, byColumn = new Map())
  const values = byColumn.get(column)
  if (values === undefined) byColumn.set(column, [value])
  else values.push(value)
}

export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const cell = (row: Row, values: ReadonlyArray<number> | undefined): string => {
  if (values === undefined || values.length === 0) return "–"
  const m = row.format(median(values))
  if (values.length === 1) return m
  return `${m} (${row.format(Math.min(...values))}–${row.format(Math.max(...values))})`
}

const ratio = (row: Row, byColumn: Map<string, Array<number>> | undefined, shown: ReadonlyArray<Column>): string => {
  const errand = byColumn?.get("errand")
  if (byColumn === undefined || errand === undefined || errand.length === 0) return "–"
  const peers = shown.filter((c) => !c.key.startsWith("errand")).map((c) => byColumn.get(c.key)).filter((v) =>
    v !== undefined && v.length > 0
  ).map((v) => median(v!))
  if (peers.length === 0) return "–"
  const best = row.better === "higher" ? Math.max(...peers) : Math.min(...peers)
  const r = median(errand) / best
  const wins = row.better === "higher" ? r >= 1 : r <= 1
  return `${r >= 10 || r < 0.1 ? r.toPrecision(2) : r.toFixed(2)}× ${wins ? "✓" : "✗"}`
}

/** Renders the table as GitHub-flavoured Markdown (readable as plain text too). */
export const render = (
  allRows: ReadonlyArray<Row>,
  samples: Samples,
  shownColumns: ReadonlyArray<string>
): string => {
  const shown = columns.filter((c) => shownColumns.includes(c.key))
  const header = ["scenario", ...shown.map((c) => c.title), "Errand ÷ best peer"]
  const body = allRows.filter((row) => samples.has(row.id)).map((row) => {
    const byColumn = samples.get(row.id)
    return [
      `${row.label} ${row.better === "higher" ? "↑" : "↓"}`,
      ...shown.map((c) => cell(row, byColumn?.get(c.key))),
      ratio(row, byColumn, shown)
    ]
  })
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`
  const rule = `|${widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`
  return [line(header), rule, ...body.map(line)].join("\n")
}
