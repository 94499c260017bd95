/**
 * Tracing: the send span's trace context travels in `options.traceparent` (added by `beforeEnqueue`), and the worker
 * parents each attempt's span on it.
 */
import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Effect, Option, Ref, Schema, Tracer } from "effect"
import { Actor, Middleware, Tracing, Worker } from "../src/index.ts"

const Job = Schema.Struct({ n: Schema.Number })

describe("Tracing", () => {
  it.effect("beforeEnqueue's options travel in the envelope, next to the sender's own", () => {
    const job = Actor.make("tr_options", { queue: "tr", payload: Job })
    return Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<unknown>>([])
      const handler = job.handle((_, message) => Ref.update(seen, (all) => [...all, message.options]))
      const sent = yield* job.send({ n: 1 }, { options: { tenant: "a" } })
      assert.deepStrictEqual(Object.keys(sent.options).sort(), ["tenant", "traceparent"])
      yield* Effect.gen(function*() {
        yield* MemoryBroker.join("tr")
        assert.deepStrictEqual(yield* Ref.get(seen), [sent.options])
      }).pipe(Effect.provide(Worker.layer({ handlers: [handler] })))
    }).pipe(
      Effect.provide(Tracing.layer),
      Effect.provide(MemoryBroker.layer)
    )
  })

  it.effect("an attempt's span is the child of the send span; a message without a valid traceparent has none", () => {
    const job = Actor.make("tr_parent", { queue: "tr2", payload: Job })
    const spans: Array<Tracer.NativeSpan> = []
    const tracer = Tracer.make({
      span: (options) => {
        const span = new Tracer.NativeSpan(options)
        spans.push(span)
        return span
      }
    })
    // after the tracing middleware: replaces the trace context by an invalid one
    const forged = Middleware.layer({
      name: "forged",
      beforeEnqueue: () => Effect.succeed({ options: { traceparent: "00-zz-zz-01" } })
    })
    return Effect.gen(function*() {
      yield* job.send({ n: 1 })
      yield* job.send({ n: 2 }).pipe(Effect.provide(forged))
      yield* MemoryBroker.join("tr2").pipe(Effect.provide(Worker.layer({ handlers: [job.handle(() => Effect.void)] })))
      const send = spans.find((span) => span.name === "errand.send tr_parent")!
      const runs = spans.filter((span) => span.name === "errand.run tr_parent")
      assert.strictEqual(runs.length, 2)
      const parents = runs.map((span) => Option.getOrUndefined(span.parent)?.spanId)
      assert.include(parents, send.spanId)
      assert.include(parents, undefined)
    }).pipe(
      Effect.provide(Tracing.layer),
      Effect.provide(MemoryBroker.layer),
      Effect.provideService(Tracer.Tracer, tracer)
    )
  })
})
