/**
 * What the broker costs Redis, measured on a private redis-server of each test (so nothing else runs there):
 * commands per job as `INFO commandstats` counts them (commands inside Lua included), memory per queued job, and
 * what an idle blocking take sends. Also: how fast a blocked take wakes on an enqueue from another client.
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Clock, Context, Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { Redis } from "ioredis"
import { randomBytes } from "node:crypto"
import { makeBlockingPool } from "../src/internal/connection.ts"
import { startRedisServer, untilBlocked } from "./utils/redisServer.ts"
import { ack, describeWithRedisServer } from "./utils/testing.ts"

const privateServer = Effect.acquireRelease(
  Effect.promise(() => startRedisServer()),
  (server) => Effect.promise(() => server.dispose())
)

const brokerOn = (url: string) =>
  Effect.map(Layer.build(RedisBroker.layer({ url, prefix: "cost" })), (context) => Context.get(context, Broker.Broker))

/** Commands run since the last reset, by name, without the measuring commands themselves. */
const commandStats = (cli: (...args: ReadonlyArray<string>) => string): Record<string, number> => {
  const stats: Record<string, number> = {}
  for (const line of cli("INFO", "commandstats").split(/\r?\n/)) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line)
    if (match === null || match[1] === "info" || match[1]!.startsWith("config")) continue
    stats[match[1]!] = Number(match[2])
  }
  return stats
}

const total = (stats: Record<string, number>) => Object.values(stats).reduce((a, b) => a + b, 0)

/** A 21-character id like core's, and an Errand envelope of about 100 bytes of JSON. */
const noop = (i: number): Broker.Outgoing => {
  const id = randomBytes(16).toString("base64url").slice(0, 21)
  return {
    id,
    queue: "jobs",
    priority: 0,
    eta: 0,
    body: { id, actor: "noop", queue: "jobs", payload: { n: i % 10 }, enqueuedAt: 1764079200000 + i }
  }
}

const log = (line: string) => Effect.sync(() => process.stdout.write(`[redis cost] ${line}\n`))

describeWithRedisServer("RedisBroker cost (private redis-server)", () => {
  it.live("enqueue + take + ack costs at most 6 Redis commands per job, with batched takes", () =>
    Effect.gen(function*() {
      const server = yield* privateServer
      const broker = yield* brokerOn(server.url)
      const jobs = 1_000
      const run = Effect.fnUntraced(function*(max: number) {
        server.cli("CONFIG", "RESETSTAT")
        for (let i = 0; i < jobs; i++) yield* broker.enqueue([noop(i)])
        const enqueueStats = total(commandStats(server.cli))
        server.cli("CONFIG", "RESETSTAT")
        let settle: ReadonlyArray<Broker.Settlement> = []
        let seen = 0
        for (;;) {
          const taken = yield* broker.take({ queue: "jobs", max, lease: "30 seconds", settle })
          seen += taken.deliveries.length
          settle = taken.deliveries.map(ack)
          if (taken.deliveries.length === 0) break
        }
        const workerStats = commandStats(server.cli)
        assert.strictEqual(seen, jobs)
        return { enqueue: enqueueStats / jobs, worker: total(workerStats) / jobs, workerStats }
      })
      const one = yield* run(1)
      const ten = yield* run(10)
      yield* log(`enqueue (one message per call): ${one.enqueue} commands/job`)
      yield* log(
        `take max=1 + piggy-backed ack: ${one.worker.toFixed(2)} commands/job ${JSON.stringify(one.workerStats)}`
      )
      yield* log(
        `take max=10 + piggy-backed acks: ${ten.worker.toFixed(2)} commands/job ${JSON.stringify(ten.workerStats)}`
      )
      yield* log(
        `total per job: ${(one.enqueue + one.worker).toFixed(2)} (max=1), ${
          (ten.enqueue + ten.worker).toFixed(2)
        } (max=10)`
      )
      assert.isAtMost(one.enqueue, 3.01)
      assert.isAtMost(ten.enqueue + ten.worker, 6)
      const stats = yield* broker.stats("jobs")
      assert.deepStrictEqual(stats, { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
    }))

  it.live("enqueue of delayed messages costs 5 Redis commands per call, for one message as for 500", () =>
    Effect.gen(function*() {
      const server = yield* privateServer
      const broker = yield* brokerOn(server.url)
      const now = yield* Clock.currentTimeMillis
      const later = (i: number): Broker.Outgoing => ({ ...noop(i), eta: now + 600_000 })
      // Loads the script, so that the counts below hold only EVALSHA
      yield* broker.enqueue([later(0)])
      server.cli("CONFIG", "RESETSTAT")
      yield* broker.enqueue([later(1)])
      const one = commandStats(server.cli)
      server.cli("CONFIG", "RESETSTAT")
      yield* broker.enqueue(Array.from({ length: 500 }, (_, i) => later(i + 2)))
      const batch = commandStats(server.cli)
      // EVALSHA, the sweep (a look at the first timer: none is due), one INCRBY sequencing the timers (FIFO among
      // equal etas), ZADD timers, ZADD marker
      assert.deepStrictEqual(one, { evalsha: 1, zrange: 1, incrby: 1, zadd: 2 })
      assert.deepStrictEqual(batch, one)
      assert.strictEqual((yield* broker.stats("jobs")).delayed, 502)
    }))

  it.live("keeps a queued no-op job of about 100 bytes of JSON in at most 110 bytes of Redis memory (its queue implied)", () =>
    Effect.gen(function*() {
      const server = yield* privateServer
      const broker = yield* brokerOn(server.url)
      const jobs = 20_000
      const messages = Array.from({ length: jobs }, (_, i) => noop(i))
      const bodyBytes = messages.reduce((sum, m) => sum + JSON.stringify(m.body).length, 0) / jobs
      const usedMemory = () => Number(/used_memory:(\d+)/.exec(server.cli("INFO", "memory"))![1])
      const before = usedMemory()
      for (let i = 0; i < jobs; i += 500) yield* broker.enqueue(messages.slice(i, i + 500))
      const after = usedMemory()
      const perJob = (after - before) / jobs
      const listBytes = Number(server.cli("MEMORY", "USAGE", "{cost:jobs}:r", "SAMPLES", "0").trim()) / jobs
      yield* log(
        `memory per queued job: ${perJob.toFixed(1)} B (used_memory delta), ${listBytes.toFixed(1)} B ` +
          `(MEMORY USAGE of the ready list); body ${bodyBytes.toFixed(1)} B of JSON`
      )
      assert.isAtMost(perJob, 110)
      assert.strictEqual((yield* broker.stats("jobs")).ready, jobs)
    }))

  it.live("an idle blocking take sends almost no commands while it waits", () =>
    Effect.gen(function*() {
      const server = yield* privateServer
      const broker = yield* brokerOn(server.url)
      // Warm up: the blocking connection is opened once and kept
      yield* broker.take({ queue: "idle", max: 1, lease: "30 seconds", wait: 20 })
      server.cli("CONFIG", "RESETSTAT")
      const taken = yield* broker.take({ queue: "idle", max: 1, lease: "30 seconds", wait: "2 seconds" })
      const stats = commandStats(server.cli)
      yield* log(`a 2 s idle blocking take sent ${total(stats)} commands: ${JSON.stringify(stats)}`)
      assert.deepStrictEqual(taken.deliveries, [])
      assert.isAtMost(total(stats), 20)
      assert.strictEqual(stats["bzpopmin"], 1)
    }))

  it.live("interrupting waiting takes at any moment neither hangs nor leaks connections", () =>
    Effect.gen(function*() {
      const server = yield* privateServer
      const broker = yield* brokerOn(server.url)
      let slowest = 0
      for (let i = 0; i < 40; i++) {
        const waiting = yield* Effect.forkChild(
          broker.take({ queue: "int", max: 1, lease: "30 seconds", wait: "30 seconds" })
        )
        yield* Effect.sleep(i % 4)
        const start = yield* Clock.currentTimeMillis
        yield* Fiber.interrupt(waiting)
        slowest = Math.max(slowest, (yield* Clock.currentTimeMillis) - start)
      }
      const clients = server.cli("CLIENT", "LIST").trim().split("\n").length
      yield* log(`40 interrupted waits: slowest interruption ${slowest} ms, ${clients} client connections afterwards`)
      // Ended by the interruption, not by the 30 s wait (a few ms idle; generous for a loaded machine)
      assert.isBelow(slowest, 5_000)
      assert.isAtMost(clients, 4)
      // And the broker still wakes a waiting take
      const waiting = yield* Effect.forkChild(
        broker.take({ queue: "int", max: 1, lease: "30 seconds", wait: "5 seconds" })
      )
      yield* Effect.promise(() => untilBlocked(server.cli))
      yield* broker.enqueue([{ ...noop(0), queue: "int" }])
      assert.strictEqual((yield* Fiber.join(waiting)).deliveries.length, 1)
    }))

  it.effect("a wait ended by Clock releases what the take pipelined behind it leased", () =>
    Effect.gen(function*() {
      const server = yield* privateServer
      const broker = yield* brokerOn(server.url)
      const waiting = yield* Effect.forkChild(
        broker.take({ queue: "clock", max: 10, lease: "30 seconds", wait: "10 seconds" })
      )
      yield* Effect.promise(() => untilBlocked(server.cli))
      // A ready message that bypasses the wake-up marker: only the take behind the wait will see it
      server.cli("RPUSH", "{cost:clock}:r", JSON.stringify({ id: "raw-1", actor: "a", queue: "clock" }))
      // Clock ends the wait (long before Redis's own 10 s timeout); the pipelined take runs when it is unblocked
      yield* TestClock.adjust("11 seconds")
      // Released at once (not leased for 30 s), so the take's last look finds it
      const taken = yield* Fiber.join(waiting)
      assert.deepStrictEqual(taken.deliveries.map((delivery) => delivery.id), ["raw-1"])
      assert.deepStrictEqual(yield* broker.settle(taken.deliveries.map(ack)), [])
      assert.deepStrictEqual(yield* broker.stats("clock"), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
      yield* broker.flush("clock")
    }))

  it.live("on the live clock, a timer ends a wait whose reply does not come, and hands the reply to orphan", () =>
    Effect.gen(function*() {
      const server = yield* privateServer
      const client = new Redis(server.url, { lazyConnect: true })
      yield* Effect.acquireRelease(Effect.promise(() => client.connect()), () => Effect.sync(() => client.disconnect()))
      const pool = makeBlockingPool(client, server.url, 2_000)
      yield* Effect.addFinalizer(() => pool.close)
      const orphans: Array<unknown> = []
      // A marker: the BZPOPMIN pops it at once (no race with Redis's own 100 ms timeout on a loaded machine), but the
      // command behind it blocks for good: only the timer ends the wait
      yield* Effect.promise(() => client.zadd("{cost:guard}:w", 0, "1"))
      const start = yield* Clock.currentTimeMillis
      const got = yield* pool.waitThen(
        "{cost:guard}:w",
        100,
        (conn) => conn.blpop("{cost:guard}:never", 0),
        (reply) => orphans.push(reply)
      )
      const elapsed = (yield* Clock.currentTimeMillis) - start
      assert.isUndefined(got)
      assert.isAtLeast(elapsed, 300) // 100 ms + the 250 ms grace, give or take a timer tick
      assert.isBelow(elapsed, 10_000) // the timer ended it: without it, it would never end
      assert.deepStrictEqual(orphans, [null]) // the unblocked BLPOP's reply
      // The popped marker is put back for another waiter
      assert.strictEqual(yield* Effect.promise(() => client.zcard("{cost:guard}:w")), 1)
    }))

  it.live("a take blocked on one connection is woken by an enqueue from another client (latency logged)", () =>
    Effect.gen(function*() {
      const server = yield* privateServer
      const consumer = yield* brokerOn(server.url)
      const producer = yield* brokerOn(server.url)
      const latencies: Array<number> = []
      for (let i = 0; i < 5; i++) {
        const waiting = yield* Effect.forkChild(
          Effect.flatMap(
            consumer.take({ queue: "wake", max: 1, lease: "30 seconds", wait: "10 seconds" }),
            (taken) => Effect.map(Clock.currentTimeMillis, (at) => ({ taken, at }))
          )
        )
        yield* Effect.promise(() => untilBlocked(server.cli))
        const sent = yield* Clock.currentTimeMillis
        yield* producer.enqueue([noop(i)].map((m) => ({ ...m, queue: "wake" })))
        const { at, taken } = yield* Fiber.join(waiting)
        assert.strictEqual(taken.deliveries.length, 1)
        yield* consumer.settle(taken.deliveries.map(ack))
        latencies.push(at - sent)
      }
      yield* log(`wake-up latency after an enqueue from another client: ${latencies.join(", ")} ms`)
      // Woken by the enqueue, not when the 10 s wait ran out. The latency itself (1–5 ms idle) is measured by the
      // benchmark (`pnpm bench`), not asserted here: a loaded machine may not schedule the process for a second.
      assert.isBelow(Math.max(...latencies), 5_000)
    }))
})
