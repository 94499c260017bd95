/**
 * Idempotency keys and cancel, end to end: producers send with a key, a worker runs the messages, and the broker
 * holds the key while a message lives and for its window after.
 */
import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Deferred, Effect, Layer, Ref, Schema } from "effect"
import { TestClock } from "effect/testing"
import { Actor, Group, Middleware, Pipeline, Worker } from "../src/index.ts"

const chargeOrder = Actor.make("charge_order", {
  queue: "orders",
  payload: Schema.Struct({ orderId: Schema.String }),
  idempotencyWindow: "10 minutes"
})

/** A worker that counts the runs of `chargeOrder` per order, waiting for `gate` first when given. */
const withWorker =
  (runs: Ref.Ref<ReadonlyArray<string>>, gate?: Deferred.Deferred<void>) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
    self.pipe(
      Effect.provide(
        Worker.layer({
          handlers: [
            chargeOrder.handle(({ orderId }) =>
              Effect.gen(function*() {
                if (gate !== undefined) yield* Deferred.await(gate)
                yield* Ref.update(runs, (all) => [...all, orderId])
              })
            )
          ]
        }).pipe(Layer.provideMerge(MemoryBroker.layer))
      )
    )

describe("Idempotency keys", () => {
  it.effect("an idempotency key suppresses a second send and lets one through after the first finished and its window passed", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make<ReadonlyArray<string>>([])
      const gate = yield* Deferred.make<void>()
      yield* Effect.gen(function*() {
        const first = yield* chargeOrder.send({ orderId: "o-1" }, { key: "order-o-1" })
        assert.strictEqual(first.key, "order-o-1")
        assert.isUndefined(first.duplicate)
        // while the first waits or runs, a second send is suppressed and names the first
        const second = yield* chargeOrder.send({ orderId: "o-1" }, { key: "order-o-1" })
        assert.strictEqual(second.duplicate, true)
        assert.strictEqual(second.id, first.id)
        assert.strictEqual(yield* MemoryBroker.size("orders"), 1)
        // the first runs and is acked: its key is held for the actor's window (10 minutes)
        yield* Deferred.succeed(gate, undefined)
        yield* MemoryBroker.join("orders")
        yield* TestClock.adjust("9 minutes")
        const third = yield* chargeOrder.send({ orderId: "o-1" }, { key: "order-o-1" })
        assert.strictEqual(third.id, first.id)
        assert.strictEqual(third.duplicate, true)
        // once the window has passed, a send with the key goes through and runs
        yield* TestClock.adjust("1 minute")
        const fourth = yield* chargeOrder.send({ orderId: "o-1" }, { key: "order-o-1" })
        assert.notStrictEqual(fourth.id, first.id)
        assert.isUndefined(fourth.duplicate)
        yield* MemoryBroker.join("orders")
        assert.deepStrictEqual(yield* Ref.get(runs), ["o-1", "o-1"])
      }).pipe(withWorker(runs, gate))
    }))

  it.effect("keyTtl overrides the actor's window; concurrent sends with one key enqueue one message", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make<ReadonlyArray<string>>([])
      yield* Effect.gen(function*() {
        const sent = yield* Effect.forEach(
          ["a", "b", "c"],
          (orderId) => chargeOrder.send({ orderId }, { key: "same", keyTtl: 0 }),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(sent.map((message) => message.duplicate === true), [false, true, true])
        assert.deepStrictEqual(new Set(sent.map((message) => message.id)).size, 1)
        yield* MemoryBroker.join("orders")
        // a window of 0: the key is free as soon as the message finished
        const again = yield* chargeOrder.send({ orderId: "d" }, { key: "same", keyTtl: 0 })
        assert.isUndefined(again.duplicate)
        yield* MemoryBroker.join("orders")
        assert.deepStrictEqual(yield* Ref.get(runs), ["a", "d"])
      }).pipe(withWorker(runs))
    }))

  it.effect("sendBatch and Actor.enqueue report suppressed messages", () =>
    Effect.gen(function*() {
      const batch = yield* chargeOrder.sendBatch([{ orderId: "x" }, { orderId: "y" }], { key: "batch" })
      assert.deepStrictEqual(batch.map((message) => message.duplicate === true), [false, true])
      assert.strictEqual(batch[1]!.id, batch[0]!.id)
      const built = yield* chargeOrder.message({ orderId: "z" }, { key: "batch" })
      const enqueued = yield* Actor.enqueue([built])
      assert.strictEqual(enqueued.duplicates.get(built.id), batch[0]!.id)
      assert.strictEqual(yield* MemoryBroker.size("orders"), 1)
      // a message marked duplicate, enqueued again once the key is free, is sent as itself
      assert.strictEqual(yield* chargeOrder.cancel(batch[0]!), "cancelled")
      const resent = yield* Actor.enqueue([batch[1]!])
      assert.strictEqual(resent.duplicates.size, 0)
      const [delivery] = (yield* (yield* MemoryBroker.MemoryBroker).broker.take({ queue: "orders", max: 1, lease: 1 }))
        .deliveries
      assert.notStrictEqual(delivery!.id, batch[0]!.id)
      assert.strictEqual((delivery!.body as { readonly id: string }).id, delivery!.id)
    }).pipe(Effect.provide(MemoryBroker.layer)))

  it.effect("a malformed key or window fails the send with InvalidOption, and sends nothing", () =>
    Effect.gen(function*() {
      for (
        const [options, option] of [
          [{ key: "" }, "key"],
          [{ key: "has space" }, "key"],
          [{ key: "x".repeat(257) }, "key"],
          [{ keyTtl: "1 minute" }, "key"],
          [{ key: "k", keyTtl: -1 }, "keyTtl"],
          [{ key: "k", keyTtl: Infinity }, "keyTtl"]
        ] satisfies ReadonlyArray<readonly [Actor.SendOptions, string]>
      ) {
        const error = yield* Effect.flip(chargeOrder.send({ orderId: "o" }, options))
        assert(error._tag === "InvalidOption", JSON.stringify(options))
        assert.strictEqual(error.of, "send")
        assert.strictEqual(error.option, option, JSON.stringify(options))
      }
      assert.strictEqual(yield* MemoryBroker.size("orders"), 0)
      assert.throws(() => Actor.make("bad_window", { payload: Schema.Void, idempotencyWindow: -1 }))
    }).pipe(Effect.provide(MemoryBroker.layer)))
})

describe("Cancel", () => {
  it.effect("a cancelled delayed message never runs, and its key is free again", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make<ReadonlyArray<string>>([])
      yield* Effect.gen(function*() {
        const reminder = yield* chargeOrder.send({ orderId: "later" }, { delay: "1 hour", key: "remind" })
        assert.strictEqual(yield* chargeOrder.cancel(reminder), "cancelled")
        assert.strictEqual(yield* chargeOrder.cancel(reminder.id), "notFound")
        yield* TestClock.adjust("2 hours")
        assert.deepStrictEqual(yield* Ref.get(runs), [])
        assert.strictEqual(yield* MemoryBroker.size("orders"), 0)
        const replacement = yield* chargeOrder.send({ orderId: "now" }, { key: "remind" })
        assert.isUndefined(replacement.duplicate)
        yield* MemoryBroker.join("orders")
        assert.deepStrictEqual(yield* Ref.get(runs), ["now"])
      }).pipe(withWorker(runs))
    }))

  it.effect("a running message is not interrupted: cancel answers \"running\" and it finishes", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make<ReadonlyArray<string>>([])
      const gate = yield* Deferred.make<void>()
      yield* Effect.gen(function*() {
        const message = yield* chargeOrder.send({ orderId: "busy" })
        // let the worker take it
        while ((yield* MemoryBroker.stats("orders")).inFlight === 0) yield* Effect.yieldNow
        assert.strictEqual(yield* Actor.cancel(message), "running")
        yield* Deferred.succeed(gate, undefined)
        yield* MemoryBroker.join("orders")
        assert.deepStrictEqual(yield* Ref.get(runs), ["busy"])
      }).pipe(withWorker(runs, gate))
    }))

  it.effect("middleware's beforeEnqueue runs first: a rebuilt keyed message keeps its key and is reported as held", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make<ReadonlyArray<string>>([])
      const delayAll = Middleware.layer(Effect.succeed({
        name: "delay-all",
        beforeEnqueue: () => Effect.succeed({ delay: "1 second" })
      }))
      yield* Effect.gen(function*() {
        const first = yield* chargeOrder.send({ orderId: "mw" }, { key: "order-mw" })
        assert.strictEqual(first.key, "order-mw")
        const second = yield* chargeOrder.send({ orderId: "mw" }, { key: "order-mw" })
        assert.strictEqual(second.duplicate, true)
        assert.strictEqual(second.id, first.id)
        const enqueued = yield* Actor.enqueue([yield* chargeOrder.message({ orderId: "mw" }, { key: "order-mw" })])
        assert.deepStrictEqual([...enqueued.duplicates.values()], [first.id])
        yield* TestClock.adjust("1 second")
        yield* MemoryBroker.join("orders")
        assert.deepStrictEqual(yield* Ref.get(runs), ["mw"])
      }).pipe(withWorker(runs), Effect.provide(delayAll))
    }))

  it.effect("Pipeline.run with a held key enqueues nothing and returns the holder", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make<ReadonlyArray<string>>([])
      yield* Effect.gen(function*() {
        const first = yield* chargeOrder.send({ orderId: "p" }, { key: "order-p" })
        const piped = yield* Pipeline.run(yield* chargeOrder.message({ orderId: "p" }, { key: "order-p" }), [])
        assert.strictEqual(piped.duplicate, true)
        assert.strictEqual(piped.id, first.id)
        yield* MemoryBroker.join("orders")
        assert.deepStrictEqual(yield* Ref.get(runs), ["p"])
      }).pipe(withWorker(runs))
    }))

  it.effect("a group member's key is not used: every member runs", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make<ReadonlyArray<string>>([])
      yield* Effect.gen(function*() {
        yield* Group.run([
          yield* chargeOrder.message({ orderId: "g1" }, { key: "same" }),
          yield* chargeOrder.message({ orderId: "g2" }, { key: "same" })
        ])
        yield* MemoryBroker.join("orders")
        assert.deepStrictEqual(yield* Ref.get(runs), ["g1", "g2"])
      }).pipe(withWorker(runs))
    }))
})
