/**
 * Middleware: beforeEnqueue in producers, aroundHandler and afterSettle in workers.
 */
import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Context, Effect, Layer, Ref, Schema } from "effect"
import { TestClock } from "effect/testing"
import { Actor, ErrandError, Middleware, Worker } from "../src/index.ts"

const Job = Schema.Struct({ n: Schema.Number })

/** A service the error-notification middleware calls (a webhook client in production). */
class Notifier extends Context.Service<Notifier, {
  readonly alert: (text: string) => Effect.Effect<void>
}>()("test/Notifier") {}

describe("Middleware", () => {
  it.effect("beforeEnqueue may change a message's priority or delay, or refuse it (nothing of the batch is sent)", () => {
    const job = Actor.make("mw_enqueue", { queue: "mw", payload: Job })
    const policy = Middleware.layer({
      name: "policy",
      beforeEnqueue: (message) => {
        const { n } = message.payload as { readonly n: number }
        if (n < 0) {
          return Effect.fail(
            new ErrandError.EnqueueVetoed({ middleware: "policy", messageId: message.id, reason: "negative" })
          )
        }
        return Effect.succeed(n > 100 ? { priority: -1, delay: "1 minute" } : undefined)
      }
    })
    return Effect.gen(function*() {
      const plain = yield* job.send({ n: 1 })
      const urgent = yield* job.send({ n: 500 })
      assert.deepStrictEqual([plain.priority, urgent.priority], [0, -1])
      assert.strictEqual(urgent.eta - urgent.enqueuedAt, 60_000)
      assert.deepStrictEqual(yield* MemoryBroker.stats("mw"), { ready: 1, delayed: 1, inFlight: 0, dead: 0 })
      const vetoed = yield* Effect.flip(job.sendBatch([{ n: 2 }, { n: -1 }]))
      assert(vetoed._tag === "EnqueueVetoed")
      assert.strictEqual(vetoed.reason, "negative")
      assert.deepStrictEqual(yield* MemoryBroker.stats("mw"), { ready: 1, delayed: 1, inFlight: 0, dead: 0 })
    }).pipe(Effect.provide(policy), Effect.provide(MemoryBroker.layer))
  })

  it.effect("aroundHandler wraps each run in the handler's context, and gives back its outcome", () => {
    const job = Actor.make("mw_around", { queue: "mw2", payload: Job, success: Schema.Number })
    return Effect.gen(function*() {
      const log = yield* Ref.make<ReadonlyArray<string>>([])
      const timing = Middleware.layer({
        name: "timing",
        aroundHandler: (message, run) =>
          Effect.gen(function*() {
            const current = yield* Worker.CurrentMessage
            yield* Ref.update(log, (all) => [...all, `before ${message.id === current.id}`])
            const result = yield* run
            yield* Ref.update(log, (all) => [...all, `after ${String(result)}`])
            return result
          })
      })
      const handler = job.handle(({ n }) => Effect.succeed(n * 2))
      yield* Effect.gen(function*() {
        yield* job.send({ n: 21 })
        yield* MemoryBroker.join("mw2")
        assert.deepStrictEqual(yield* Ref.get(log), ["before true", "after 42"])
      }).pipe(Effect.provide(Worker.layer({ handlers: [handler] }).pipe(Layer.provide(timing))))
    }).pipe(Effect.provide(MemoryBroker.layer))
  })

  it.effect("the error-notification recipe: one alert per dead letter, and a failing alert never stops the worker", () => {
    const critical = Actor.make("critical_task", {
      queue: "critical",
      payload: Job,
      error: Schema.String,
      maxRetries: 1
    })
    return Effect.gen(function*() {
      const alerts = yield* Ref.make<ReadonlyArray<string>>([])
      const NotifierLive = Layer.succeed(Notifier)({
        alert: (text) =>
          Effect.andThen(
            Ref.update(alerts, (all) => [...all, text]),
            text.includes("boom-2") ? Effect.die("webhook down") : Effect.void
          )
      })
      const AlertOnDeadLetter = Middleware.layer(Effect.gen(function*() {
        const notifier = yield* Notifier
        return {
          name: "alert-on-dead-letter",
          afterSettle: (outcome: Middleware.Outcome) =>
            outcome._tag === "DeadLettered" && outcome.actor === "critical_task"
              ? notifier.alert(`${outcome.messageId} ${outcome.reason.message}`)
              : Effect.void
        }
      })).pipe(Layer.provide(NotifierLive))
      const handler = critical.handle(({ n }) => n > 0 ? Effect.fail(`boom-${n}`) : Effect.void)
      yield* Effect.gen(function*() {
        yield* critical.sendBatch([{ n: 1 }, { n: 2 }, { n: 0 }, { n: 3 }])
        yield* TestClock.adjust("1 hour")
        yield* MemoryBroker.join("critical")
        const sent = yield* Ref.get(alerts)
        assert.strictEqual(sent.length, 3)
        assert.sameMembers(sent.map((text) => /boom-\d/.exec(text)?.[0]), ["boom-1", "boom-2", "boom-3"])
        assert.strictEqual((yield* MemoryBroker.deadLetters("critical")).length, 3)
      }).pipe(Effect.provide(Worker.layer({ handlers: [handler] }).pipe(Layer.provide(AlertOnDeadLetter))))
    }).pipe(Effect.provide(MemoryBroker.layer))
  })
})
