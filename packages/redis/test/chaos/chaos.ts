/**
 * A chaos run against a real Redis, shared by the chaos test (`RedisChaos.test.ts`, CI size) and the soak
 * (`pnpm soak`, large): worker processes (`worker.ts`) consume one queue while this process produces at a steady rate;
 * meanwhile redis-server (append-only file, fsync always) is really stopped and restarted on the same port and
 * directory (`shutdown`: SIGTERM; `kill`: SIGKILL, a crash), and workers are SIGKILLed (each replaced by a new one).
 * Then the run waits until every message sent is done, SIGTERMs the workers and reports.
 *
 * **What counts**
 *
 * - sent: messages whose enqueue succeeded. The producer retries a failed enqueue (with backoff) with the same
 *   messages and ids; a failure that may have been applied (the connection dropped after the call was sent) makes
 *   their ids *ambiguous*: they may be in Redis twice.
 * - completed / lost: sent messages some worker printed `done` for / never did.
 * - duplicated: messages done more than once. Each is *explained* when it was in flight (leased) at a kill, worker or
 *   Redis (the run snapshots the in-flight hash then), or ambiguous; otherwise it is *unexplained*: a bug.
 * - recovery: after a Redis restart, until the first message sent after it is done; after a worker kill, until every
 *   message in flight at the kill is done (the killed worker's after their lease lapses: about one lease).
 *
 * @internal
 */
import { Actor, Broker, type Message } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Clock, Context, Deferred, Effect, Fiber, Layer, Schedule, type Scope } from "effect"
import { Redis } from "ioredis"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { type RedisServer, startRedisServer } from "../utils/redisServer.ts"
import { chaosActor } from "./actor.ts"

/** One Redis outage: how the server is stopped, and for how long it stays down. */
export interface Outage {
  readonly how: "shutdown" | "kill"
  readonly downMs: number
}

/** The size and shape of a run. */
export interface ChaosOptions {
  readonly jobs: number
  /** Messages sent per second. */
  readonly rate: number
  readonly workers: number
  /** Redis outages, spread over the production time with the worker kills (outage, kill, outage, …). */
  readonly outages: ReadonlyArray<Outage>
  /** How many workers are SIGKILLed (each replaced by a new one at once). */
  readonly kills: number
  /** Lease of the workers: keep it above the longest outage, or leases lapse while Redis is down. */
  readonly leaseMs: number
  /** Handlers per worker. */
  readonly concurrency: number
  /** How long each job works. */
  readonly workMs: number
  /** How long the run waits, after the producer is done, for every message to be done. */
  readonly drainTimeoutMs: number
  /** The workers' `shutdownTimeout`; each must exit within it (plus a grace) after SIGTERM. */
  readonly shutdownTimeoutMs: number
  /** Progress lines. */
  readonly log: (line: string) => void
}

/** A worker's exit after the final SIGTERM (`code` null and `timedOut` when it had to be SIGKILLed). */
export interface WorkerExit {
  readonly worker: string
  readonly code: number | null
  readonly signal: string | null
  readonly stopMs: number
  readonly timedOut: boolean
}

/** What a run measured. */
export interface ChaosReport {
  readonly sent: number
  readonly completed: number
  readonly lost: ReadonlyArray<string>
  readonly duplicated: ReadonlyArray<string>
  readonly unexplained: ReadonlyArray<string>
  /** Messages in flight at a kill (worker or Redis). */
  readonly inFlightAtKills: number
  readonly ambiguous: number
  readonly outages: ReadonlyArray<Outage & { readonly inFlight: number; readonly recoveryMs: number | undefined }>
  readonly kills: ReadonlyArray<{ readonly worker: string; readonly inFlight: number; readonly recoveryMs: number }>
  readonly exits: ReadonlyArray<WorkerExit>
  readonly stats: Broker.QueueStats | undefined
  /** From the first message sent to the last one done. */
  readonly processingMs: number
  readonly drained: boolean
  /** What the run knows of a message: when it was sent and done, whether it was at risk. */
  readonly explain: (id: string) => string
}

const workerPath = fileURLToPath(new URL("./worker.ts", import.meta.url))
const prefix = "chaos"
const queue = "chaos"
/** Time a worker may take to exit after SIGTERM, beyond its `shutdownTimeout` (release call, closing Redis). */
const stopGrace = 5_000

interface WorkerProcess {
  readonly name: string
  readonly child: ChildProcess
  readonly ready: Deferred.Deferred<void, Error>
  readonly exited: Promise<{ readonly code: number | null; readonly signal: string | null }>
}

/** Runs the chaos scenario on a private redis-server, and reports. */
export const run = (options: ChaosOptions): Effect.Effect<ChaosReport, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const log = options.log
    const server: RedisServer = yield* Effect.acquireRelease(
      Effect.promise(() => startRedisServer({ persistence: true })),
      (server) => Effect.promise(() => server.dispose())
    )
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()

    // What the workers report: every `done` of every message, with its time
    const doneAt = new Map<string, Array<number>>()
    const sentAt = new Map<string, number>()
    const ambiguous = new Set<string>()
    const inFlightAtKills = new Set<string>()

    const admin = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const client = new Redis(server.url, { maxRetriesPerRequest: 1 })
        client.on("error", () => {}) // down during outages; it is only used while Redis is up
        return client
      }),
      (client) => Effect.sync(() => client.disconnect())
    )
    const leasedIds = Effect.promise(() => admin.hkeys(`{${prefix}:${queue}}:f`))

    let spawned = 0
    const spawnWorker = Effect.fnUntraced(function*() {
      const name = `worker-${++spawned}`
      const child = spawn(process.execPath, [workerPath], {
        env: {
          ...process.env,
          REDIS_URL: server.url,
          CHAOS_PREFIX: prefix,
          CHAOS_QUEUE: queue,
          CHAOS_LEASE_MS: String(options.leaseMs),
          CHAOS_CONCURRENCY: String(options.concurrency),
          CHAOS_WORK_MS: String(options.workMs),
          CHAOS_SHUTDOWN_TIMEOUT_MS: String(options.shutdownTimeoutMs)
        },
        stdio: ["ignore", "pipe", "inherit"]
      })
      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
        child.once("exit", (code, signal) => resolve({ code, signal }))
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
      const ready = yield* Deferred.make<void, Error>()
      let partial = ""
      child.stdout!.on("data", (chunk: Buffer) => {
        const lines = (partial + chunk.toString()).split("\n")
        partial = lines.pop()!
        const at = now()
        for (const line of lines) {
          if (line.startsWith("done ")) {
            const id = line.slice(5)
            const times = doneAt.get(id)
            if (times === undefined) doneAt.set(id, [at])
            else times.push(at)
          } else if (line === "ready") Deferred.doneUnsafe(ready, Effect.void)
        }
      })
      void exited.then(({ code, signal }) =>
        Deferred.doneUnsafe(ready, Effect.fail(new Error(`${name} exited (${code ?? signal}) before it was ready`)))
      )
      return { name, child, ready, exited } satisfies WorkerProcess
    })
    const awaitReady = (worker: WorkerProcess) =>
      Deferred.await(worker.ready).pipe(
        Effect.timeoutOrElse({
          duration: "60 seconds",
          orElse: () => Effect.fail(new Error(`${worker.name} was not ready within 60 s`))
        })
      )

    const live: Array<WorkerProcess> = []
    for (let i = 0; i < options.workers; i++) live.push(yield* spawnWorker())
    yield* Effect.forEach(live, awaitReady, { discard: true, concurrency: "unbounded" })
    log(`${options.workers} workers ready on redis-server :${server.port} (append-only, fsync always)`)

    // The producer: this process, sending at `rate`, retrying a failed batch with backoff (same messages, same ids)
    const brokerContext = yield* Layer.build(
      RedisBroker.layer({ url: server.url, prefix, commandTimeout: 1_000 })
    )
    const broker = Context.get(brokerContext, Broker.Broker)
    const actor = chaosActor(queue)
    const backoff = Schedule.min([Schedule.exponential("20 millis"), Schedule.spaced("500 millis")]).pipe(
      Schedule.jittered
    )
    const send = (batch: ReadonlyArray<Message.Message>) =>
      Actor.enqueue(batch).pipe(
        Effect.provideContext(brokerContext),
        Effect.tapError((error) =>
          Effect.sync(() => {
            // "not connected": the call never left; any other failure may have been applied
            if (!error.message.includes("not connected")) { for (const message of batch) ambiguous.add(message.id) }
          })
        ),
        Effect.retry(backoff),
        Effect.andThen(Effect.sync(() => {
          const at = now()
          for (const message of batch) sentAt.set(message.id, at)
        }))
      )
    const productionMs = (options.jobs / options.rate) * 1000
    const started = now()
    const producer = yield* Effect.forkChild(Effect.gen(function*() {
      let next = 0
      while (next < options.jobs) {
        const due = Math.min(options.jobs, Math.floor(((now() - started) * options.rate) / 1000) + 1)
        while (next < due) {
          const size = Math.min(due - next, 1_000)
          const batch = yield* Effect.forEach(
            Array.from({ length: size }, (_, i) => next + i),
            (n) => Effect.orDie(actor.message({ n }))
          )
          next += size
          yield* send(batch)
        }
        yield* Effect.sleep(10)
      }
    }))

    // Outages and kills, interleaved and spread over the production time
    type Event = { readonly _tag: "Outage"; readonly outage: Outage } | { readonly _tag: "Kill" }
    const events: Array<Event> = []
    for (let i = 0; i < Math.max(options.outages.length, options.kills); i++) {
      if (i < options.outages.length) events.push({ _tag: "Outage", outage: options.outages[i]! })
      if (i < options.kills) events.push({ _tag: "Kill" })
    }
    const outages: Array<Outage & { inFlight: number; restartedAt: number }> = []
    const kills: Array<{ worker: string; inFlight: ReadonlyArray<string>; at: number }> = []
    for (let i = 0; i < events.length; i++) {
      const at = started + (productionMs * (i + 1)) / (events.length + 1)
      yield* Effect.sleep(Math.max(0, at - now()))
      const event = events[i]!
      if (event._tag === "Outage") {
        const { downMs, how } = event.outage
        const leased = yield* leasedIds
        for (const id of leased) inFlightAtKills.add(id)
        yield* Effect.promise(() => how === "kill" ? server.kill() : server.stop())
        log(
          `redis-server ${
            how === "kill" ? "SIGKILLed" : "shut down"
          } with ${leased.length} in flight; down ${downMs} ms`
        )
        yield* Effect.sleep(downMs)
        yield* Effect.promise(() => server.start())
        outages.push({ how, downMs, inFlight: leased.length, restartedAt: now() })
        log("redis-server restarted")
      } else {
        const victim = live.shift()!
        victim.child.kill("SIGKILL")
        yield* Effect.promise(() => victim.exited)
        const killedAt = now()
        const leased = yield* leasedIds
        for (const id of leased) inFlightAtKills.add(id)
        kills.push({ worker: victim.name, inFlight: leased, at: killedAt })
        const replacement = yield* spawnWorker()
        live.push(replacement)
        log(`${victim.name} SIGKILLed with ${leased.length} messages in flight; ${replacement.name} replaces it`)
        yield* awaitReady(replacement)
      }
    }
    yield* Fiber.join(producer)
    log(`producer done: ${sentAt.size} sent, ${ambiguous.size} ambiguous`)

    // Drain: every message sent is done, and the queue is empty
    const drainedAt = now() + options.drainTimeoutMs
    let drained = false
    while (now() < drainedAt) {
      let allDone = true
      for (const id of sentAt.keys()) {
        if (!doneAt.has(id)) {
          allDone = false
          break
        }
      }
      if (allDone) {
        const stats = yield* Effect.option(broker.stats(queue))
        if (stats._tag === "Some" && stats.value.ready + stats.value.delayed + stats.value.inFlight === 0) {
          drained = true
          break
        }
      }
      yield* Effect.sleep(100)
    }
    log(drained ? "all sent messages done" : `not drained within ${options.drainTimeoutMs} ms`)

    // Every worker stops on SIGTERM, within its shutdown timeout plus a grace
    const exits = yield* Effect.forEach(live, (worker) =>
      Effect.promise(async (): Promise<WorkerExit> => {
        const from = Date.now()
        worker.child.kill("SIGTERM")
        const limit = options.shutdownTimeoutMs + stopGrace
        let timer: ReturnType<typeof setTimeout> | undefined
        const timeout = new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), limit)
        })
        const exit = await Promise.race([worker.exited, timeout])
        clearTimeout(timer)
        if (exit !== undefined) return { worker: worker.name, ...exit, stopMs: Date.now() - from, timedOut: false }
        worker.child.kill("SIGKILL")
        return { worker: worker.name, code: null, signal: "SIGKILL", stopMs: limit, timedOut: true }
      }), { concurrency: "unbounded" })
    const stats = yield* Effect.option(broker.stats(queue))

    const sent = [...sentAt.keys()]
    const lost = sent.filter((id) => !doneAt.has(id))
    const duplicated = sent.filter((id) => (doneAt.get(id)?.length ?? 0) > 1)
    const unexplained = duplicated.filter((id) => !inFlightAtKills.has(id) && !ambiguous.has(id))
    let lastDone = started
    for (const times of doneAt.values()) for (const t of times) if (t > lastDone) lastDone = t
    const firstDoneAfter = (id: string, after: number) => doneAt.get(id)?.find((t) => t > after)
    return {
      sent: sent.length,
      completed: sent.length - lost.length,
      lost,
      duplicated,
      unexplained,
      inFlightAtKills: inFlightAtKills.size,
      ambiguous: ambiguous.size,
      outages: outages.map(({ downMs, how, inFlight, restartedAt }) => {
        let first: number | undefined
        for (const [id, at] of sentAt) {
          if (at < restartedAt) continue
          const done = doneAt.get(id)?.[0]
          if (done !== undefined && (first === undefined || done < first)) first = done
        }
        return { how, downMs, inFlight, recoveryMs: first === undefined ? undefined : first - restartedAt }
      }),
      kills: kills.map(({ at, inFlight, worker }) => ({
        worker,
        inFlight: inFlight.length,
        // The leases of every worker are in the snapshot: those done before the kill and not after were acked by
        // their (live) worker; the others, the killed worker's, are done again once their lease lapsed
        recoveryMs: Math.max(
          0,
          ...inFlight.map((id) => {
            const after = firstDoneAfter(id, at)
            return after !== undefined ? after - at : (doneAt.get(id)?.[0] ?? Infinity) <= at ? 0 : Infinity
          })
        )
      })),
      exits,
      stats: stats._tag === "Some" ? stats.value : undefined,
      processingMs: lastDone - started,
      drained,
      explain: (id) => {
        const at = (t: number | undefined) => t === undefined ? "never" : `at ${((t - started) / 1000).toFixed(3)} s`
        return `sent ${at(sentAt.get(id))}, done ${(doneAt.get(id) ?? []).map(at).join(" and ") || "never"}` +
          `${ambiguous.has(id) ? ", ambiguous send" : ""}${inFlightAtKills.has(id) ? ", in flight at a kill" : ""}; ` +
          `kills at ${kills.map((k) => at(k.at)).join(", ") || "-"}, Redis restarts at ${
            outages.map((o) => at(o.restartedAt)).join(", ") || "-"
          }`
      }
    }
  })

/** The report as lines, for the soak and the test's output. */
export const render = (report: ChaosReport): Array<string> => [
  ...report.lost.slice(0, 10).map((id) => `LOST ${id}: ${report.explain(id)}`),
  ...report.unexplained.slice(0, 10).map((id) => `UNEXPLAINED DUPLICATE ${id}: ${report.explain(id)}`),
  `sent ${report.sent} · completed ${report.completed} · lost ${report.lost.length} · duplicated ${report.duplicated.length} ` +
  `(unexplained ${report.unexplained.length}; ${report.inFlightAtKills} were in flight at a kill, ${report.ambiguous} ` +
  `ambiguous sends) · processed in ${(report.processingMs / 1000).toFixed(1)} s`,
  ...report.outages.map((o, i) =>
    `redis outage ${i + 1} (${o.how}, down ${o.downMs} ms, ${o.inFlight} in flight): first new message done ` +
    `${o.recoveryMs === undefined ? "never" : `${o.recoveryMs} ms`} after the restart`
  ),
  ...report.kills.map((k) =>
    `${k.worker} SIGKILLed with ${k.inFlight} in flight (all workers'): the last of them done ` +
    `${Number.isFinite(k.recoveryMs) ? `${k.recoveryMs} ms` : "never"} after the kill (0: all were done before it)`
  ),
  `workers on SIGTERM: ${
    report.exits.map((e) =>
      `${e.worker} ${e.timedOut ? "did not exit" : `exit ${e.code ?? e.signal}`} in ${e.stopMs} ms`
    )
      .join(", ")
  }`,
  `queue at the end: ${report.stats === undefined ? "unknown" : JSON.stringify(report.stats)}`
]
