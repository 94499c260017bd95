/**
 * The dashboard on Redis: a queue of 100,000 messages answers at once (counts come from the broker's stats calls,
 * never a scan), and a dashboard reads and acts on its own broker's prefix only.
 */
import { assert, describe, it } from "@effect/vitest"
import { Actor, Broker } from "@errand/core"
import { Clock, Effect, Schema } from "effect"
import { randomUUID } from "node:crypto"
import { redisBroker, request, serveDashboard } from "./utils.ts"

const bulk = Actor.make("bulk_import", { queue: "bulk", payload: Schema.Struct({ row: Schema.Number }) })

const deadLetter = (queue: string, id: string) =>
  Effect.gen(function*() {
    const broker = yield* Broker.Broker
    const now = yield* Clock.currentTimeMillis
    yield* broker.enqueue([{ id, queue, priority: 0, eta: now, body: { id, actor: "a", queue } }])
    const [delivery] = (yield* broker.take({ queue, max: 1, lease: "1 minute" })).deliveries
    yield* broker.settle([{ _tag: "DeadLetter", delivery: delivery!, reason: { tag: "Boom", message: id } }])
  })

describe("Dashboard on Redis", () => {
  it.live(
    "answers the queues endpoint well under a second with 100,000 messages in a queue",
    () =>
      Effect.gen(function*() {
        const base = yield* serveDashboard()
        const rows = Array.from({ length: 100_000 }, (_, row) => ({ row }))
        for (let i = 0; i < rows.length; i += 10_000) yield* bulk.sendBatch(rows.slice(i, i + 10_000))
        // warm: the first request connects nothing new, but lets the JIT settle
        yield* request(`${base}/api/queues`)
        const timings: Array<number> = []
        for (let i = 0; i < 5; i++) {
          const start = performance.now()
          const answer = yield* request(`${base}/api/queues`)
          timings.push(performance.now() - start)
          assert.deepStrictEqual(answer.body.queues, [{
            queue: "bulk",
            ready: 100_000,
            delayed: 0,
            inFlight: 0,
            dead: 0
          }])
        }
        yield* Effect.logInfo(`/api/queues with 100,000 messages: ${timings.map((t) => t.toFixed(1)).join(", ")} ms`)
        const slowest = Math.max(...timings)
        assert.isBelow(slowest, 1_000, `timings: ${timings.map((t) => t.toFixed(1)).join(", ")} ms`)
        const dead = yield* request(`${base}/api/queues/bulk/dead-letters`)
        assert.deepStrictEqual([dead.status, dead.body.total], [200, 0])
        yield* Broker.Broker.use((broker) => broker.flush("bulk"))
      }).pipe(Effect.scoped, Effect.provide(redisBroker())),
    { timeout: 180_000 }
  )

  it.live("reads and acts on its broker's prefix only", () =>
    Effect.gen(function*() {
      const run = randomUUID().slice(0, 8)
      const mine = redisBroker(`dash-mine-${run}`)
      const theirs = redisBroker(`dash-theirs-${run}`)
      // Given the same queue name under two prefixes, each with a dead letter, and a queue only the other one has
      yield* deadLetter("email", "theirs-1").pipe(Effect.provide(theirs))
      yield* deadLetter("secret", "theirs-2").pipe(Effect.provide(theirs))
      yield* Broker.Broker.use((broker) =>
        broker.heartbeat({ id: "their-worker", expiresAt: Date.now() + 60_000, report: {} })
      )
        .pipe(Effect.provide(theirs))
      yield* Effect.gen(function*() {
        yield* deadLetter("email", "mine-1")
        const base = yield* serveDashboard()
        // When the dashboard of the first prefix lists and requeues everything
        const queues = yield* request(`${base}/api/queues`)
        assert.deepStrictEqual(queues.body.queues.map((q: { queue: string }) => q.queue), ["email"])
        const letters = yield* request(`${base}/api/queues/email/dead-letters`)
        assert.deepStrictEqual(letters.body.deadLetters.map((l: { id: string }) => l.id), ["mine-1"])
        assert.strictEqual((yield* request(`${base}/api/queues/email/dead-letters/theirs-1`)).status, 404)
        assert.strictEqual((yield* request(`${base}/api/queues/secret/dead-letters`)).body.total, 0)
        const requeued = yield* request(`${base}/api/queues/email/dead-letters/requeue`, {
          method: "POST",
          body: { all: true }
        })
        assert.strictEqual(requeued.body.requeued, 1)
        const deleted = yield* request(`${base}/api/queues/secret/dead-letters/delete`, {
          method: "POST",
          body: { all: true }
        })
        assert.strictEqual(deleted.body.deleted, 0)
        // a queue name that would name another hash tag is refused before any Redis call
        const escape = yield* request(
          `${base}/api/queues/${encodeURIComponent(`{dash-theirs-${run}:email}`)}/dead-letters`
        )
        assert.strictEqual(escape.status, 400)
        assert.deepStrictEqual((yield* request(`${base}/api/workers`)).body.workers, [])
      }).pipe(Effect.scoped, Effect.provide(mine))
      // Then the other prefix's dead letters and heartbeat are untouched
      yield* Effect.gen(function*() {
        const broker = yield* Broker.Broker
        assert.deepStrictEqual((yield* broker.deadLetters("email")).map((l) => l.id), ["theirs-1"])
        assert.deepStrictEqual((yield* broker.deadLetters("secret")).map((l) => l.id), ["theirs-2"])
        assert.deepStrictEqual((yield* broker.heartbeats).map((beat) => beat.id), ["their-worker"])
        yield* broker.flush("email")
        yield* broker.flush("secret")
      }).pipe(Effect.provide(theirs))
    }))
})
