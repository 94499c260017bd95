/**
 * Follow-up messages (callbacks, pipeline steps, group callbacks) are sent by the worker before it acks the message
 * that sends them. A worker that dies in between runs the message again, and sends them again: under idempotency keys
 * derived from the message (or the group), so the broker leaves the second copy out.
 */
import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Effect, Layer, Ref, Schema } from "effect"
import { TestClock } from "effect/testing"
import { Actor, Broker, Group, Pipeline, Worker } from "../src/index.ts"
import { followUpKey, groupCallbackKey, keyPart } from "../src/internal/worker/followUpKeys.ts"

/**
 * The memory broker, but the first ack of a message of `queue` is lost, as if the worker had died right before it:
 * the message's lease lapses and it runs again.
 */
const loseFirstAck = (queue: string) =>
  Layer.effect(
    Broker.Broker,
    Effect.map(Broker.Broker, (inner) => {
      let lost = false
      const drop = (settlements: ReadonlyArray<Broker.Settlement>) =>
        settlements.filter((settlement) => {
          if (lost || settlement._tag !== "Ack" || settlement.delivery.queue !== queue) return true
          lost = true
          return false
        })
      return Broker.Broker.of({
        ...inner,
        take: (request) =>
          inner.take(request.settle === undefined ? request : { ...request, settle: drop(request.settle) }),
        settle: (settlements) => inner.settle(drop(settlements))
      })
    })
  ).pipe(Layer.provideMerge(MemoryBroker.layer))

const report = Actor.make("report", {
  queue: "reports",
  payload: Schema.Struct({ total: Schema.Number }),
  success: Schema.Number
})
const onReport = Actor.make("on_report", { queue: "callbacks", payload: Actor.successPayload(Schema.Number) })
const double = Actor.make("double", { queue: "steps", payload: Schema.Number, success: Schema.Number })

describe("Follow-up messages after a crash before the ack", () => {
  it.effect("a message run twice sends its onSuccess callback once, keyed <message id>:ok", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const seen = yield* Ref.make<ReadonlyArray<string | undefined>>([])
      const handlers = [
        report.handle(({ total }) => Effect.as(Ref.update(runs, (n) => n + 1), total)),
        onReport.handle((_, message) => Ref.update(seen, (all) => [...all, message.key]))
      ] as const
      yield* Effect.gen(function*() {
        const sent = yield* report.send({ total: 7 }, { onSuccess: onReport })
        yield* TestClock.adjust("2 minutes") // the lost ack's lease lapses: the report runs again
        yield* MemoryBroker.join("reports")
        yield* MemoryBroker.join("callbacks")
        assert.strictEqual(yield* Ref.get(runs), 2)
        // the handler sees the key it was sent with
        assert.deepStrictEqual(yield* Ref.get(seen), [`${sent.id}:ok`])
      }).pipe(Effect.provide(Worker.layer({ handlers }).pipe(Layer.provideMerge(loseFirstAck("reports")))))
    }))

  it.effect("a pipeline step run twice sends the next step once, keyed <message id>:next", () =>
    Effect.gen(function*() {
      const results = yield* Ref.make<ReadonlyArray<number>>([])
      const handlers = [
        report.handle(({ total }) => Effect.succeed(total)),
        double.handle((n) => Effect.as(Ref.update(results, (all) => [...all, n * 2]), n * 2))
      ] as const
      yield* Effect.gen(function*() {
        yield* Pipeline.run(yield* report.message({ total: 21 }), [double])
        yield* TestClock.adjust("2 minutes")
        yield* MemoryBroker.join("reports")
        yield* MemoryBroker.join("steps")
        assert.deepStrictEqual(yield* Ref.get(results), [42])
      }).pipe(Effect.provide(Worker.layer({ handlers }).pipe(Layer.provideMerge(loseFirstAck("reports")))))
    }))

  it.effect("a group's completing member run twice sends onComplete once, keyed group:<group id>:complete", () =>
    Effect.gen(function*() {
      const summaries = yield* Ref.make<ReadonlyArray<string | undefined>>([])
      const notify = Actor.make("notify_one", { queue: "notify", payload: Schema.Number })
      const summarize = Actor.make("summarize_one", { queue: "summary", payload: Schema.String })
      const handlers = [
        notify.handle(() => Effect.void),
        summarize.handle((_, message) => Ref.update(summaries, (all) => [...all, message.key]))
      ] as const
      yield* Effect.gen(function*() {
        const group = yield* Group.run([yield* notify.message(1), yield* notify.message(2)], {
          onComplete: yield* summarize.message("done")
        })
        yield* TestClock.adjust("2 minutes")
        yield* MemoryBroker.join("notify")
        yield* MemoryBroker.join("summary")
        assert.deepStrictEqual(yield* Ref.get(summaries), [groupCallbackKey(group.id, "complete")])
      }).pipe(Effect.provide(Worker.layer({ handlers }).pipe(Layer.provideMerge(loseFirstAck("notify")))))
    }))
})

describe("Follow-up keys", () => {
  it("keeps ids of key characters as they are", () => {
    assert.strictEqual(followUpKey("V1StGXR8_Z5jdHi6B-myT", "ok"), "V1StGXR8_Z5jdHi6B-myT:ok")
    assert.strictEqual(groupCallbackKey("g-1", "failure"), "group:g-1:failure")
  })

  it("writes any valid message id as a valid key, one-to-one", () => {
    // printable ASCII but " and \ (the id grammar), an escape character, and the longest id
    const ids = ["order 42", "a=b", "a=3Db", "a#b?c", "x".repeat(255), "y".repeat(240) + " ", "~!$%^&*()[]{}<>,;'`|"]
    const keys = ids.map((id) => followUpKey(id, "fail"))
    for (const key of keys) assert.isTrue(Broker.isValidKey(key), key)
    assert.strictEqual(new Set(keys).size, ids.length)
    assert.strictEqual(keyPart("order 42"), "order=2042")
    assert.strictEqual(keyPart("a=b"), "a=3Db")
    // too long once escaped: hashed
    assert.match(keyPart("y".repeat(240) + " "), /^=h[A-Za-z0-9_-]{43}$/)
  })
})
