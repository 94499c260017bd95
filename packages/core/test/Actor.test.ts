import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Effect, Layer, Ref, Result, Schema } from "effect"
import { TestClock } from "effect/testing"
import { Actor, Broker, ErrandError } from "../src/index.ts"

const Order = Schema.Struct({
  orderId: Schema.String,
  items: Schema.Array(Schema.Struct({ sku: Schema.String, quantity: Schema.Int })),
  placedAt: Schema.Date
})

const processOrder = Actor.make("process_order", { queue: "processing", payload: Order, priority: 5 })

describe("Actor", () => {
  it.effect("builds a message whose envelope carries the encoded payload", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_000)
      const placedAt = new Date("2026-11-25T10:00:00.000Z")
      const message = yield* processOrder.message({ orderId: "o-1", items: [{ sku: "A", quantity: 2 }], placedAt })

      assert.strictEqual(message.actor, "process_order")
      assert.strictEqual(message.queue, "processing")
      assert.strictEqual(message.enqueuedAt, 1_000)
      assert.strictEqual(message.eta, 1_000)
      assert.strictEqual(message.priority, 5)
      assert.strictEqual(message.attempts, 0)
      assert.strictEqual(message.payload.placedAt, placedAt) // the typed payload, as given
      assert.strictEqual(message.id.length, 21)
    }))

  it.effect("sets the eta from a delay and lets a message override the priority", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(5_000)
      const message = yield* processOrder.message(
        { orderId: "o-2", items: [], placedAt: new Date(0) },
        { delay: "2 seconds", priority: 1 }
      )
      assert.strictEqual(message.eta, 7_000)
      assert.strictEqual(message.priority, 1)
    }))

  it.effect("gives every message its own id", () =>
    Effect.gen(function*() {
      const ids = new Set<string>()
      for (let i = 0; i < 1_000; i++) {
        ids.add((yield* processOrder.message({ orderId: `o-${i}`, items: [], placedAt: new Date(0) })).id)
      }
      assert.strictEqual(ids.size, 1_000)
    }))

  it.effect("rejects a payload that fails its schema with InvalidPayload naming the field", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        // a value that escaped the type system, e.g. from JSON
        processOrder.message(
          { orderId: "o-3", items: [{ sku: "A", quantity: 1.5 }], placedAt: new Date(0) }
        )
      )
      assert(error._tag === "InvalidPayload")
      assert.strictEqual(error.actor, "process_order")
      assert.strictEqual(error.path, "items.0.quantity")
      assert.include(error.message, `at "items.0.quantity"`)
    }))

  it.effect("names a missing field", () =>
    Effect.gen(function*() {
      const sendWelcome = Actor.make("send_welcome", { payload: Schema.Struct({ userId: Schema.Number }) })
      const error = yield* Effect.flip(sendWelcome.message({} as { userId: number }))
      assert(error._tag === "InvalidPayload")
      assert.strictEqual(error.path, "userId")
    }))

  it("rejects an invalid actor or queue name when it is defined", () => {
    assert.throws(
      () => Actor.make("send email!", { payload: Schema.Void }),
      ErrandError.InvalidName
    )
    try {
      Actor.make("ok", { payload: Schema.Void, queue: "bad queue" })
      assert.fail("expected InvalidName")
    } catch (error) {
      assert.instanceOf(error, ErrandError.InvalidName)
      assert.strictEqual((error as ErrandError.InvalidName).kind, "queue")
    }
  })

  it("has Dramatiq's defaults", () => {
    const actor = Actor.make("defaults", { payload: Schema.Void })
    assert.strictEqual(actor.queue, "default")
    assert.strictEqual(actor.priority, 0)
    assert.strictEqual(actor.retryPolicy.maxRetries, 20)
    assert.strictEqual(actor.timeLimitMillis, 600_000)
    assert.strictEqual(actor.maxAgeMillis, Infinity)
  })

  it.effect("sends a lone send at once, and coalesces the sends made while a call is in flight", () => {
    const job = Actor.make("coalesced", { queue: "q", payload: Schema.Struct({ n: Schema.Number }) })
    return Effect.gen(function*() {
      const calls = yield* Ref.make<ReadonlyArray<number>>([])
      yield* Effect.gen(function*() {
        const sent = yield* Effect.forEach(Array.from({ length: 250 }, (_, n) => n), (n) => job.send({ n }), {
          concurrency: "unbounded"
        })
        assert.strictEqual(sent.length, 250)
        assert.strictEqual(yield* MemoryBroker.size("q"), 250)
        const batches = yield* Ref.get(calls)
        assert.strictEqual(batches.reduce((a, b) => a + b, 0), 250)
        // the first goes alone, at once; the others join the batches sent while a call is in flight
        assert.strictEqual(batches[0], 1)
        assert.isBelow(batches.length, 5) // not one call per message
        // awaited one at a time, each send is its own call: nothing waits for company
        yield* Ref.set(calls, [])
        for (let n = 0; n < 3; n++) yield* job.send({ n })
        assert.deepStrictEqual(yield* Ref.get(calls), [1, 1, 1])
      }).pipe(
        // a broker call takes a scheduler turn, as a network round trip does
        Effect.provide(
          countingBroker(calls, (inner, messages) => Effect.andThen(Effect.yieldNow, inner.enqueue(messages)))
        )
      )
    })
  })

  it.effect("coalesced sends all see a failed broker call; batches hold at most 1,000", () => {
    const job = Actor.make("coalescedFail", { queue: "q", payload: Schema.Struct({ n: Schema.Number }) })
    return Effect.gen(function*() {
      const calls = yield* Ref.make<ReadonlyArray<number>>([])
      const down = new ErrandError.BrokerError({ broker: "test", operation: "enqueue", message: "down" })
      yield* Effect.gen(function*() {
        const results = yield* Effect.forEach(
          Array.from({ length: 2_500 }, (_, n) => n),
          (n) => Effect.result(job.send({ n })),
          { concurrency: "unbounded" }
        )
        assert.isTrue(results.every((r) => Result.isFailure(r) && r.failure._tag === "BrokerError"))
        const batches = yield* Ref.get(calls)
        assert.strictEqual(batches.reduce((a, b) => a + b, 0), 2_500)
        assert.isTrue(batches.every((size) => size <= 1_000))
      }).pipe(Effect.provide(countingBroker(calls, () => Effect.fail(down))))
    })
  })

  it.effect("coalesced sends to several queues: each send gets its own queue's outcome", () => {
    const payload = Schema.Struct({ n: Schema.Number })
    const jobs = ["qa", "qb", "qc"].map((queue) => Actor.make(`perQueue_${queue}`, { queue, payload }))
    return Effect.gen(function*() {
      const calls = yield* Ref.make<ReadonlyArray<number>>([])
      // qb's part fails as a Cluster node that closed its connection after the command was written would
      const lost = new ErrandError.BrokerError({
        broker: "test",
        operation: "enqueue",
        message: "closed",
        applied: "unknown"
      })
      yield* Effect.gen(function*() {
        const results = yield* Effect.forEach(
          Array.from({ length: 90 }, (_, n) => n),
          (n) => Effect.result(jobs[n % 3]!.send({ n })),
          { concurrency: "unbounded" }
        )
        for (const [n, result] of results.entries()) {
          if (n % 3 === 1) {
            assert.isTrue(
              Result.isFailure(result) && result.failure._tag === "BrokerError" &&
                result.failure.applied === "unknown",
              `send ${n} to qb fails`
            )
          } else {
            assert.isTrue(Result.isSuccess(result), `send ${n} succeeds`)
          }
        }
        assert.strictEqual(yield* MemoryBroker.size("qa"), 30)
        assert.strictEqual(yield* MemoryBroker.size("qb"), 0)
        assert.strictEqual(yield* MemoryBroker.size("qc"), 30)
        // one call per queue (not one per message)
        assert.isBelow((yield* Ref.get(calls)).length, 15)
      }).pipe(
        // a broker call takes a scheduler turn, as a network round trip does: sends coalesce while one is in flight
        Effect.provide(countingBroker(calls, (inner, messages) =>
          Effect.andThen(
            Effect.yieldNow,
            messages.some((m) => m.queue !== messages[0]!.queue)
              ? Effect.die("a coalesced call spans queues")
              : messages[0]!.queue === "qb"
              ? Effect.fail(lost)
              : inner.enqueue(messages)
          )))
      )
    })
  })
})

/** A memory broker whose `enqueue` records each call's batch size, then does `enqueue`. */
const countingBroker = (
  calls: Ref.Ref<ReadonlyArray<number>>,
  enqueue: (
    inner: Broker.Broker["Service"],
    messages: ReadonlyArray<Broker.Outgoing>
  ) => Effect.Effect<Broker.Enqueued, ErrandError.BrokerError>
) =>
  Layer.effect(
    Broker.Broker,
    Effect.gen(function*() {
      const inner = (yield* MemoryBroker.MemoryBroker).broker
      return Broker.Broker.of({
        ...inner,
        enqueue: (messages) =>
          Effect.andThen(Ref.update(calls, (all) => [...all, messages.length]), enqueue(inner, messages))
      })
    })
  ).pipe(Layer.provideMerge(MemoryBroker.layer))
