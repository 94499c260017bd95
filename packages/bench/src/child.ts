/**
 * One scenario run, in its own process: `node src/child.ts '<Spec as JSON>'`. Prints one `RESULT {...}` line and
 * exits 0, or prints `RESULT {"ok":false,...}` and exits 1. Every scenario checks that no job was lost, duplicated or
 * left behind, and fails otherwise.
 */
import { Redis } from "ioredis"
import { now, sleep } from "./clock.ts"
import { inProcessContenders, redisContenders } from "./contenders/index.ts"
import { type Outcome, READY, RESULT, type Spec } from "./spec.ts"
import { Tally } from "./tally.ts"
import type { Job, Metrics, Producer, RedisContender, RedisTarget } from "./types.ts"

/** Every Redis scenario uses this queue name on the (flushed) private server. */
const QUEUE = "bench"
/** Jobs added concurrently by `enqueue-one`, and the size of one `enqueue-bulk` call. */
const WINDOW = 1_000
/** How long a scenario waits for its jobs before failing. */
const HANDLE_TIMEOUT_MS = 300_000

const fail = (message: string): never => {
  throw new Error(message)
}

/** Adds jobs `0..n-1` one call at a time, with `WINDOW` calls in flight. */
const addOneByOne = async (producer: Producer, n: number): Promise<void> => {
  let next = 0
  const lane = async () => {
    while (next < n) await producer.add({ i: next++, t: 0 })
  }
  await Promise.all(Array.from({ length: Math.min(WINDOW, n) }, lane))
}

/** Adds jobs `0..n-1` one call at a time, each awaited before the next (a web request's send). */
const addAwaited = async (producer: Producer, n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await producer.add({ i, t: 0 })
}

/** CPU (user + system) of this process since `from`, in µs. */
const cpuSince = (from: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(from)
  return used.user + used.system
}

const addInBulk = async (producer: Producer, n: number): Promise<void> => {
  const addBulk = producer.addBulk ?? fail("no bulk add")
  for (let start = 0; start < n; start += WINDOW) {
    const jobs: Array<Job> = []
    for (let i = start; i < Math.min(start + WINDOW, n); i++) jobs.push({ i, t: 0 })
    await addBulk(jobs)
  }
}

const expectLeftover = async (producer: Producer, pending: number, what: string): Promise<void> => {
  const left = await producer.leftover()
  if (left.pending !== pending || left.failed !== 0) {
    fail(`${what}: expected ${pending} pending and 0 failed jobs in Redis, found ${left.pending} and ${left.failed}`)
  }
}

const info = async (admin: Redis, section: string): Promise<Map<string, string>> => {
  const text = await admin.info(section)
  const fields = new Map<string, string>()
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":")
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1))
  }
  return fields
}

const usedMemory = async (admin: Redis): Promise<number> => Number((await info(admin, "memory")).get("used_memory"))

/** The Redis server's CPU time so far (`used_cpu_user` + `used_cpu_sys`), µs. */
const redisCpu = async (admin: Redis): Promise<number> => {
  const cpu = await info(admin, "cpu")
  return (Number(cpu.get("used_cpu_user")) + Number(cpu.get("used_cpu_sys"))) * 1e6
}

/** Commands run since `CONFIG RESETSTAT`, Lua's `redis.call`s included, the harness's own `INFO`/`CONFIG` excluded. */
const commandCount = async (admin: Redis): Promise<number> => {
  let total = 0
  const breakdown: Array<string> = []
  for (const [key, value] of await info(admin, "commandstats")) {
    const name = key.replace(/^cmdstat_/, "")
    if (name === "info" || name.startsWith("config")) continue
    const calls = Number(/calls=(\d+)/.exec(value)?.[1] ?? fail(`unreadable commandstats line ${key}:${value}`))
    total += calls
    breakdown.push(`${name}=${calls}`)
  }
  if (process.env["BENCH_DEBUG"] !== undefined) process.stderr.write(`commandstats: ${breakdown.join(" ")}\n`)
  return total
}

const withRedis = async <A>(
  spec: { readonly contender: keyof typeof redisContenders; readonly redis: { host: string; port: number } },
  f: (contender: RedisContender, target: RedisTarget, admin: Redis) => Promise<A>
): Promise<A> => {
  const contender = await redisContenders[spec.contender]()
  const { host, port } = spec.redis
  const admin = new Redis({ host, port, lazyConnect: true })
  await admin.connect()
  try {
    return await f(contender, { host, port, url: `redis://${host}:${port}`, queue: QUEUE }, admin)
  } finally {
    admin.disconnect()
  }
}

const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN

const run = (spec: Spec): Promise<Metrics> => {
  switch (spec.kind) {
    case "enqueue-one":
    case "enqueue-awaited":
    case "enqueue-bulk":
      return withRedis(spec, async (contender, target, admin) => {
        const producer = await contender.producer(target)
        if (spec.kind === "enqueue-bulk" && producer.addBulk === undefined) {
          await producer.close()
          return {} // the library has no bulk add: the table shows "–"
        }
        const before = await usedMemory(admin)
        const start = now()
        await (spec.kind === "enqueue-one"
          ? addOneByOne(producer, spec.n)
          : spec.kind === "enqueue-awaited"
          ? addAwaited(producer, spec.n)
          : addInBulk(producer, spec.n))
        const elapsed = now() - start
        const after = await usedMemory(admin)
        await expectLeftover(producer, spec.n, spec.kind)
        await producer.close()
        return { jobsPerSec: (spec.n / elapsed) * 1000, bytesPerJob: (after - before) / spec.n }
      })
    case "drain":
      return withRedis(spec, async (contender, target, admin) => {
        await admin.config("RESETSTAT")
        const producer = await contender.producer(target)
        await addOneByOne(producer, spec.n)
        const tally = new Tally(spec.n)
        const start = now()
        const worker = await contender.worker(target, {
          concurrency: spec.concurrency,
          onJob: (job) => tally.mark(job.i)
        })
        await tally.complete(HANDLE_TIMEOUT_MS)
        const elapsed = now() - start
        await worker.close()
        const commands = await commandCount(admin)
        tally.verify("drain")
        await expectLeftover(producer, 0, "drain")
        await producer.close()
        return { jobsPerSec: (spec.n / elapsed) * 1000, cmdsPerJob: commands / spec.n }
      })
    case "latency-worker":
      return withRedis(spec, async (contender, target, admin) => {
        const total = spec.warmup + spec.n
        const tally = new Tally(total)
        const latencies: Array<number> = []
        const worker = await contender.worker(target, {
          concurrency: spec.concurrency,
          onJob: (job) => {
            if (job.i >= spec.warmup) latencies.push(now() - job.t)
            tally.mark(job.i)
          }
        })
        // from here on Redis serves only this run's jobs (the producer starts after READY): count its commands and CPU
        await admin.config("RESETSTAT")
        const redisCpuBefore = await redisCpu(admin)
        process.stdout.write(`${READY}\n`)
        const cpu = process.cpuUsage()
        await tally.complete(HANDLE_TIMEOUT_MS)
        const workerCpuUs = cpuSince(cpu) / total
        const redisCpuUs = (await redisCpu(admin) - redisCpuBefore) / total
        const cmdsPerJob = (await commandCount(admin)) / total
        await worker.close()
        tally.verify("latency")
        const producer = await contender.producer(target)
        await expectLeftover(producer, 0, "latency")
        await producer.close()
        latencies.sort((a, b) => a - b)
        return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), workerCpuUs, redisCpuUs, cmdsPerJob }
      })
    case "latency-producer":
      return withRedis(spec, async (contender, target) => {
        const producer = await contender.producer(target)
        const cpu = process.cpuUsage()
        const start = now()
        await addAtRate(spec.total, spec.rate, (i) => producer.add({ i, t: now() }))
        const achieved = (spec.total / (now() - start)) * 1000
        const cpuUs = cpuSince(cpu) / spec.total
        await producer.close()
        return { rate: achieved, cpuUs }
      })
    case "in-process":
      return inProcess(spec)
    case "in-process-latency":
      return inProcessLatency(spec)
  }
}

const gc = (): void => {
  const collect = (globalThis as { gc?: () => void }).gc ?? fail("run with --expose-gc")
  collect()
  collect()
}

const inProcess = async (spec: Extract<Spec, { kind: "in-process" }>): Promise<Metrics> => {
  const contender = await inProcessContenders[spec.contender]()
  const tally = new Tally(spec.n)
  gc()
  const heapBefore = process.memoryUsage().heapUsed
  const loaded = await contender.load(spec.n, { concurrency: spec.concurrency, onJob: (job) => tally.mark(job.i) })
  const cpuBefore = process.cpuUsage()
  const start = now()
  await loaded.run()
  await tally.complete(HANDLE_TIMEOUT_MS)
  const elapsed = now() - start
  const cpu = process.cpuUsage(cpuBefore)
  tally.verify("in-process drain")
  gc()
  const heapAfter = process.memoryUsage().heapUsed
  await loaded.close()
  return {
    jobsPerSec: (spec.n / elapsed) * 1000,
    cpuUsPerJob: (cpu.user + cpu.system) / spec.n,
    heapBytesPerJob: (heapAfter - heapBefore) / spec.n
  }
}

/**
 * Calls `add(i)` for i = 0 … total − 1 at `rate` per second: every millisecond (a timer, as requests arrive) the adds
 * that have come due, without awaiting them one by one; then awaits them all.
 */
const addAtRate = async (total: number, rate: number, add: (i: number) => Promise<unknown>): Promise<void> => {
  const adds: Array<Promise<unknown>> = []
  const start = now()
  let i = 0
  while (i < total) {
    const due = Math.min(total, Math.floor(((now() - start) * rate) / 1000) + 1)
    for (; i < due; i++) adds.push(add(i))
    await sleep(1)
  }
  await Promise.all(adds)
}

/**
 * A steady rate in one process: the contender's consumers wait on an empty queue; every millisecond (a timer, as
 * requests arrive) the jobs that have come due at `rate` are added one `add` each, each carrying its own add time.
 * Measured after the warm-up: add → handler start, and the process's CPU per job (adding and handling both).
 */
const inProcessLatency = async (spec: Extract<Spec, { kind: "in-process-latency" }>): Promise<Metrics> => {
  const contender = await inProcessContenders[spec.contender]()
  const total = spec.warmup + spec.n
  const tally = new Tally(total)
  const latencies: Array<number> = []
  const started = await contender.start({
    concurrency: spec.concurrency,
    onJob: (job) => {
      if (job.i >= spec.warmup) latencies.push(now() - job.t)
      tally.mark(job.i)
    }
  })
  let cpu = process.cpuUsage()
  let measuredFrom = now()
  await addAtRate(total, spec.rate, (i) => {
    if (i === spec.warmup) {
      cpu = process.cpuUsage()
      measuredFrom = now()
    }
    return started.add({ i, t: now() })
  })
  await tally.complete(HANDLE_TIMEOUT_MS)
  const cpuUs = cpuSince(cpu) / spec.n
  const achieved = (spec.n / (now() - measuredFrom)) * 1000
  if (achieved < spec.rate * 0.9) {
    process.stderr.write(`warning: ${spec.contender} reached only ${achieved.toFixed(0)} adds/s\n`)
  }
  await started.close()
  tally.verify("in-process latency")
  latencies.sort((a, b) => a - b)
  // milliseconds on the clock, reported in microseconds
  return { p50: percentile(latencies, 50) * 1000, p99: percentile(latencies, 99) * 1000, cpuUs }
}

const main = async (): Promise<void> => {
  const arg = process.argv[2] ?? fail("usage: node src/child.ts '<spec json>'")
  let outcome: Outcome
  try {
    outcome = { ok: true, metrics: await run(JSON.parse(arg) as Spec) }
  } catch (error) {
    outcome = { ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) }
  }
  process.stdout.write(`${RESULT}${JSON.stringify(outcome)}\n`, () => process.exit(outcome.ok ? 0 : 1))
}

void main()
