/**
 * `pnpm --filter @errand/bench bench [--quick] [--n N] [--reps R] [--contenders a,b] [--scenarios a,b] ...`
 *
 * Starts a private redis-server, runs every scenario × contender in a fresh child process (FLUSHALL before each),
 * repeats everything `reps` times with the contender order rotated, and prints one table. Exits 1 if any run failed
 * its checks (a job lost, duplicated or left behind), after printing the failures. Speed is never asserted.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { writeFileSync } from "node:fs"
import { cpus } from "node:os"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { type Column, columns } from "./contenders/index.ts"
import type { PrivateRedis } from "./redis-server.ts"
import { startRedis } from "./redis-server.ts"
import { type Outcome, READY, RESULT, type Spec } from "./spec.ts"
import { addSample, render, rows, type Samples, type ScenarioId } from "./table.ts"
import type { Metrics } from "./types.ts"

const allScenarios: ReadonlyArray<ScenarioId> = [
  "enqueue-one",
  "enqueue-awaited",
  "enqueue-bulk",
  "drain-1",
  "drain-50",
  "latency",
  "in-process",
  "in-process-latency"
]

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    n: { type: "string" },
    "in-process-n": { type: "string" },
    "in-process-latency-n": { type: "string" },
    "latency-n": { type: "string" },
    reps: { type: "string" },
    contenders: { type: "string" },
    scenarios: { type: "string" },
    "latency-concurrency": { type: "string" },
    json: { type: "string" },
    help: { type: "boolean", short: "h", default: false }
  }
})

if (flags.help) {
  process.stdout.write(`usage: pnpm --filter @errand/bench bench [options]
  --quick                 small N, 1 rep: checks counts only (CI)
  --n N                   jobs per Redis scenario (default 20000; quick 1000)
  --in-process-n N        jobs in the in-process scenario (default 100000; quick 10000)
  --in-process-latency-n N  measured jobs in the in-process steady-rate scenario, after 10% warm-up
                          (default 30000 = 3 s at 10,000 jobs/s; quick 1000)
  --latency-n N           measured jobs in the latency scenario, after 10% warm-up (default 5000; quick 200)
  --latency-concurrency C worker concurrency in the latency scenario (default 10)
  --reps R                repetitions (default 3; quick 1)
  --contenders a,b        columns: ${columns.map((c) => c.key).join(",")}
  --scenarios a,b         ${allScenarios.join(",")}
  --json FILE             also write every sample and failure to FILE
`)
  process.exit(0)
}

const int = (name: string, value: string | undefined, fallback: number): number => {
  if (value === undefined) return fallback
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`--${name} must be a positive integer, got ${value}`)
  return parsed
}

const list = <A extends string>(name: string, value: string | undefined, known: ReadonlyArray<A>): ReadonlyArray<A> => {
  if (value === undefined) return known
  const picked = value.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
  const unknown = picked.filter((s) => !(known as ReadonlyArray<string>).includes(s))
  if (unknown.length > 0) throw new Error(`--${name}: unknown ${unknown.join(", ")}; known: ${known.join(", ")}`)
  return picked as Array<A>
}

const config = {
  n: int("n", flags.n, flags.quick ? 1_000 : 20_000),
  inProcessN: int("in-process-n", flags["in-process-n"], flags.quick ? 10_000 : 100_000),
  inProcessLatencyN: int("in-process-latency-n", flags["in-process-latency-n"], flags.quick ? 1_000 : 30_000),
  latencyN: int("latency-n", flags["latency-n"], flags.quick ? 200 : 5_000),
  latencyConcurrency: int("latency-concurrency", flags["latency-concurrency"], 10),
  reps: int("reps", flags.reps, flags.quick ? 1 : 3),
  columns: list("contenders", flags.contenders, columns.map((c) => c.key)),
  scenarios: list("scenarios", flags.scenarios, allScenarios)
}
const LATENCY_RATE = 1_000
const IN_PROCESS_CONCURRENCY = 50
/** Jobs per second added in the in-process steady-rate scenario. */
const IN_PROCESS_RATE = 10_000
/** A child that runs longer than this is killed and its run failed. */
const CHILD_TIMEOUT_MS = 10 * 60_000

const childPath = fileURLToPath(new URL("./child.ts", import.meta.url))

interface Child {
  readonly process: ChildProcess
  /** Resolves when the child printed `line` on stdout. */
  readonly printed: (line: string) => Promise<void>
  readonly outcome: Promise<Outcome>
}

/** Children still running, killed if the bench exits early (Ctrl-C, a crash). */
const running = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL")
})

const startChild = (spec: Spec): Child => {
  const args = spec.kind === "in-process" ? ["--expose-gc", childPath] : [childPath]
  const child = spawn(process.execPath, [...args, JSON.stringify(spec)], { stdio: ["ignore", "pipe", "pipe"] })
  running.add(child)
  let stdout = ""
  let stderr = ""
  const watchers: Array<{ line: string; resolve: () => void }> = []
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString()
    for (const w of watchers.splice(0)) {
      if (stdout.split("\n").includes(w.line)) w.resolve()
      else watchers.push(w)
    }
  })
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
  const timer = setTimeout(() => child.kill("SIGKILL"), CHILD_TIMEOUT_MS)
  const outcome = new Promise<Outcome>((resolve) => {
    child.on("close", (code, signal) => {
      running.delete(child)
      clearTimeout(timer)
      const line = stdout.split("\n").find((l) => l.startsWith(RESULT))
      if (line !== undefined) {
        const parsed = JSON.parse(line.slice(RESULT.length)) as Outcome
        if (parsed.ok && code === 0) return resolve(parsed)
        if (!parsed.ok) return resolve({ ok: false, error: `${parsed.error}\n${stderr}`.trim() })
      }
      resolve({ ok: false, error: `child exited with ${signal ?? code} and no result\n${stdout}\n${stderr}`.trim() })
    })
  })
  const printed = (line: string) =>
    new Promise<void>((resolve, reject) => {
      if (stdout.split("\n").includes(line)) return resolve()
      watchers.push({ line, resolve })
      void outcome.then(() => reject(new Error(`child ended before printing ${line}`)))
    })
  return { process: child, printed, outcome }
}

const runRedisScenario = async (
  redis: PrivateRedis,
  scenario: Exclude<ScenarioId, "in-process" | "in-process-latency">,
  contender: NonNullable<Column["redis"]>
): Promise<Outcome> => {
  await redis.admin.flushall()
  const endpoint = { host: redis.host, port: redis.port }
  switch (scenario) {
    case "enqueue-one":
    case "enqueue-awaited":
    case "enqueue-bulk":
      return startChild({ kind: scenario, contender, redis: endpoint, n: config.n }).outcome
    case "drain-1":
    case "drain-50":
      return startChild({
        kind: "drain",
        contender,
        redis: endpoint,
        n: config.n,
        concurrency: scenario === "drain-1" ? 1 : 50
      }).outcome
    case "latency": {
      const warmup = Math.ceil(config.latencyN / 10)
      const worker = startChild({
        kind: "latency-worker",
        contender,
        redis: endpoint,
        warmup,
        n: config.latencyN,
        concurrency: config.latencyConcurrency
      })
      try {
        await worker.printed(READY)
      } catch {
        return worker.outcome
      }
      const producer = startChild({
        kind: "latency-producer",
        contender,
        redis: endpoint,
        total: warmup + config.latencyN,
        rate: LATENCY_RATE
      })
      const produced = await producer.outcome
      if (!produced.ok) {
        worker.process.kill("SIGKILL")
        await worker.outcome
        return { ok: false, error: `producer: ${produced.error}` }
      }
      const achieved = produced.metrics["rate"] ?? 0
      if (achieved < LATENCY_RATE * 0.9) {
        process.stderr.write(`  warning: ${contender} producer reached only ${achieved.toFixed(0)} adds/s\n`)
      }
      const worked = await worker.outcome
      return worked.ok
        ? { ok: true, metrics: { ...worked.metrics, producerCpuUs: produced.metrics["cpuUs"] ?? Number.NaN } }
        : worked
    }
  }
}

const rotate = <A>(items: ReadonlyArray<A>, by: number): Array<A> =>
  items.length === 0 ? [] : items.map((_, i) => items[(i + by) % items.length]!)

const main = async (): Promise<number> => {
  const started = Date.now()
  const shown = columns.filter((c) => config.columns.includes(c.key))
  const needsRedis = config.scenarios.some((s) => !s.startsWith("in-process")) &&
    shown.some((c) => c.redis !== undefined)
  const redis = needsRedis ? await startRedis() : undefined
  const samples: Samples = new Map()
  const failures: Array<string> = []
  const allRows = rows({ redis: config.n, inProcess: config.inProcessN, inProcessRate: IN_PROCESS_RATE })
  process.stderr.write(
    `errand bench: node ${process.version}, ${cpus().length} CPUs, `
      + `${redis ? `redis-server ${redis.version} on port ${redis.port}` : "no Redis"}, `
      + `N=${config.n}, in-process N=${config.inProcessN}, latency N=${config.latencyN}, `
      + `in-process latency N=${config.inProcessLatencyN}, reps=${config.reps}\n`
  )
  try {
    for (let rep = 0; rep < config.reps; rep++) {
      for (const scenario of config.scenarios) {
        for (const column of rotate(shown, rep)) {
          const label = `rep ${rep + 1}/${config.reps} ${scenario} ${column.key}`
          let outcome: Outcome
          const t0 = Date.now()
          if (scenario === "in-process") {
            if (column.inProcess === undefined) continue
            outcome = await startChild({
              kind: "in-process",
              contender: column.inProcess,
              n: config.inProcessN,
              concurrency: IN_PROCESS_CONCURRENCY
            }).outcome
          } else if (scenario === "in-process-latency") {
            if (column.inProcess === undefined) continue
            outcome = await startChild({
              kind: "in-process-latency",
              contender: column.inProcess,
              warmup: Math.ceil(config.inProcessLatencyN / 10),
              n: config.inProcessLatencyN,
              rate: IN_PROCESS_RATE,
              concurrency: IN_PROCESS_CONCURRENCY
            }).outcome
          } else {
            if (column.redis === undefined || redis === undefined) continue
            outcome = await runRedisScenario(redis, scenario, column.redis)
          }
          if (outcome.ok) {
            record(samples, allRows, scenario, column.key, outcome.metrics)
            process.stderr.write(`  ${label}: ok (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`)
          } else {
            failures.push(`${label}: ${outcome.error}`)
            process.stderr.write(`  ${label}: FAILED\n`)
          }
        }
      }
    }
  } finally {
    await redis?.stop()
  }
  process.stdout.write(`\n${render(allRows, samples, config.columns)}\n\n`)
  process.stdout.write(
    `cells: median (min–max) of ${config.reps} rep(s); ↑ higher is better, ↓ lower is better; `
      + `✓ Errand at least as good as the best peer. Took ${((Date.now() - started) / 1000).toFixed(1)} s.\n`
  )
  if (flags.json !== undefined) {
    const raw = {
      config,
      redis: redis?.version,
      node: process.version,
      samples: Object.fromEntries([...samples].map(([row, byColumn]) => [row, Object.fromEntries(byColumn)])),
      failures
    }
    writeFileSync(flags.json, `${JSON.stringify(raw, null, 2)}\n`)
  }
  if (failures.length > 0) {
    process.stdout.write(`\n${failures.length} run(s) FAILED:\n${failures.map((f) => `- ${f}`).join("\n")}\n`)
    return 1
  }
  return 0
}

const record = (
  samples: Samples,
  allRows: ReturnType<typeof rows>,
  scenario: ScenarioId,
  column: string,
  metrics: Metrics
): void => {
  for (const row of allRows) {
    if (row.scenario !== scenario) continue
    const key = row.id.slice(row.id.indexOf(".") + 1)
    const value = metrics[key]
    if (value !== undefined) addSample(samples, row.id, column, value)
  }
}

main().then((code) => process.exit(code), (error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exit(1)
})
