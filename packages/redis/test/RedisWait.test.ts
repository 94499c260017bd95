/**
 * A take that leased fewer than it asked for left nothing ready, so the broker's next waiting take goes straight to
 * the blocking wait, timed by the next timer that take reported. These tests pin what that wait must still see: a
 * delayed message coming due, a lapsed lease, a message enqueued by another client, settlements sent with the take.
 * Real clock, real Redis: bounds are generous and each is far below the wait it would otherwise sit out.
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@errand/core"
import { Clock, Effect, Fiber } from "effect"
import { ack, brokerLayer, message } from "./utils/testing.ts"

const elapsedSince = (start: number) => Effect.map(Clock.currentTimeMillis, (now) => now - start)

describe("RedisBroker: a wait after a take that left nothing ready", () => {
  it.live("still wakes when a delayed message comes due", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const now = yield* Clock.currentTimeMillis
      const later = message("wait-delay", { eta: now + 400 })
      yield* broker.enqueue([message("wait-delay"), later])
      // leases the ready one (1 of 5): the broker now knows nothing is ready and when the delayed one is due
      const first = yield* broker.take({ queue: "wait-delay", max: 5, lease: "30 seconds", wait: "5 seconds" })
      assert.strictEqual(first.deliveries.length, 1)
      const start = yield* Clock.currentTimeMillis
      const second = yield* broker.take({ queue: "wait-delay", max: 5, lease: "30 seconds", wait: "20 seconds" })
      assert.deepStrictEqual(second.deliveries.map((d) => d.id), [later.id])
      assert.isBelow(yield* elapsedSince(start), 5_000)
    }).pipe(Effect.provide(brokerLayer())))

  it.live("still returns a message whose lease lapsed", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const sent = message("wait-lease")
      yield* broker.enqueue([sent])
      const first = yield* broker.take({ queue: "wait-lease", max: 5, lease: 500, wait: "5 seconds" })
      assert.strictEqual(first.deliveries.length, 1)
      const start = yield* Clock.currentTimeMillis
      // never settled: its lease lapses after 0.5 s and the waiting take gets it again
      const again = yield* broker.take({ queue: "wait-lease", max: 5, lease: "30 seconds", wait: "20 seconds" })
      assert.deepStrictEqual(again.deliveries.map((d) => [d.id, d.deliveries]), [[sent.id, 2]])
      assert.isBelow(yield* elapsedSince(start), 5_000)
    }).pipe(Effect.provide(brokerLayer())))

  it.live("wakes on a message enqueued meanwhile, and applies the settlements it carries", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      yield* broker.enqueue([message("wait-enq")])
      const first = yield* broker.take({ queue: "wait-enq", max: 5, lease: "30 seconds", wait: "5 seconds" })
      assert.strictEqual(first.deliveries.length, 1)
      // settlements in the request: the take runs first (to apply them), then waits
      const waiting = yield* Effect.forkChild(
        broker.take({
          queue: "wait-enq",
          max: 5,
          lease: "30 seconds",
          wait: "20 seconds",
          settle: first.deliveries.map(ack)
        })
      )
      yield* Effect.sleep(200)
      const next = message("wait-enq")
      const start = yield* Clock.currentTimeMillis
      yield* broker.enqueue([next])
      const taken = yield* Fiber.join(waiting)
      assert.deepStrictEqual(taken.deliveries.map((d) => d.id), [next.id])
      assert.deepStrictEqual(taken.rejected, [])
      assert.isBelow(yield* elapsedSince(start), 5_000)
      // the ack was applied: only the new message is in flight
      assert.deepStrictEqual(yield* broker.stats("wait-enq"), { ready: 0, delayed: 0, inFlight: 1, dead: 0 })
    }).pipe(Effect.provide(brokerLayer())))

  it.live("ends at once when the settlements it carries make a message ready, and reports their rejections", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const sent = message("wait-retry")
      yield* broker.enqueue([sent])
      const first = yield* broker.take({ queue: "wait-retry", max: 5, lease: "30 seconds", wait: "5 seconds" })
      const delivery = first.deliveries[0]!
      const now = yield* Clock.currentTimeMillis
      const start = now
      const again = yield* broker.take({
        queue: "wait-retry",
        max: 5,
        lease: "30 seconds",
        wait: "20 seconds",
        settle: [
          // due at once: ready again, so the wait behind it must not block
          { _tag: "Retry", delivery, eta: now, error: { tag: "Boom", message: "failed" } },
          // a lease that is not current: rejected, and reported as such
          { _tag: "Ack", delivery: { ...delivery, id: "not-in-flight", lease: "x.0.1" } }
        ]
      })
      assert.deepStrictEqual(again.deliveries.map((d) => [d.id, d.attempts]), [[sent.id, 1]])
      assert.deepStrictEqual(again.rejected, ["not-in-flight"])
      assert.isBelow(yield* elapsedSince(start), 5_000)
    }).pipe(Effect.provide(brokerLayer())))
})
