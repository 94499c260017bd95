/**
 * Tracing across a real Redis round trip: the producer's `send` span is the parent of every attempt's span in the
 * worker, which only sees the trace context the envelope carried through Redis.
 */
import { assert, describe, it } from "@effect/vitest"
import { Actor, Tracing, Worker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Effect, Layer, Option, Queue, Schema, Tracer } from "effect"
import { redisUrl, uniquePrefix } from "./utils/testing.ts"

class Flaky extends Schema.TaggedError<Flaky>()("Flaky", { n: Schema.Number }) {}

const traced = Actor.make("traced_job", {
  queue: "traced",
  payload: Schema.Struct({ n: Schema.Number }),
  error: Flaky,
  minBackoff: "10 millis",
  maxBackoff: "10 millis"
})

/** An in-memory tracer: Effect's native spans, each put on `ended` when it ends. */
const recordingTracer = (ended: Queue.Queue<Tracer.NativeSpan>): Tracer.Tracer =>
  Tracer.make({
    span: (options) => {
      const span = new Tracer.NativeSpan(options)
      const end = span.end.bind(span)
      span.end = (endTime, exit) => {
        end(endTime, exit)
        Queue.offerUnsafe(ended, span)
      }
      return span
    }
  })

const parentId = (span: Tracer.Span) => Option.getOrUndefined(Option.map(span.parent, (parent) => parent.spanId))

describe("Tracing on Redis", () => {
  it.live("each attempt's span is a child of the producer's send span, across the broker", () => {
    const prefix = uniquePrefix()
    return Effect.gen(function*() {
      const producerSpans = yield* Queue.unbounded<Tracer.NativeSpan>()
      const workerSpans = yield* Queue.unbounded<Tracer.NativeSpan>()

      // the producer: its own broker connection and tracer, a send inside a request span
      const message = yield* traced.send({ n: 1 }).pipe(
        Effect.withSpan("http.request"),
        Effect.provide(Layer.mergeAll(RedisBroker.layer({ url: redisUrl, prefix }), Tracing.layer)),
        Effect.provideService(Tracer.Tracer, recordingTracer(producerSpans))
      )
      const [send, request] = [yield* Queue.take(producerSpans), yield* Queue.take(producerSpans)]
      assert.deepStrictEqual([send.name, request.name], ["errand.send traced_job", "http.request"])
      assert.strictEqual(parentId(send), request.spanId)
      assert.strictEqual(send.kind, "producer")
      assert.strictEqual(send.attributes.get("messaging.message.id"), message.id)
      assert.strictEqual(typeof message.options["traceparent"], "string")

      // the worker: another connection and tracer; the first attempt fails, the retry succeeds
      const handler = traced.handle((_, current) =>
        Effect.withSpan(current.attempts === 0 ? Effect.fail(new Flaky({ n: 1 })) : Effect.void, "handler.inner")
      )
      const runs = yield* Effect.gen(function*() {
        const seen: Array<Tracer.NativeSpan> = []
        while (seen.filter((span) => span.name === "errand.run traced_job").length < 2) {
          seen.push(yield* Queue.take(workerSpans))
        }
        return seen
      }).pipe(
        Effect.provide(
          Worker.layer({ handlers: [handler] }).pipe(
            Layer.provide(Tracing.layer),
            Layer.provide(RedisBroker.layer({ url: redisUrl, prefix }))
          )
        ),
        Effect.provideService(Tracer.Tracer, recordingTracer(workerSpans)),
        Effect.timeout("20 seconds") // a hang fails here; a run takes well under a second
      )
      const attempts = runs.filter((span) => span.name === "errand.run traced_job")
      for (const [i, attempt] of attempts.entries()) {
        assert.strictEqual(attempt.traceId, send.traceId)
        assert.strictEqual(parentId(attempt), send.spanId)
        assert.strictEqual(attempt.kind, "consumer")
        assert.strictEqual(attempt.attributes.get("errand.attempt"), i + 1)
        assert.strictEqual(attempt.attributes.get("errand.outcome"), i === 0 ? "failure" : "success")
        assert.strictEqual(attempt.attributes.get("messaging.destination.name"), "traced")
        assert.strictEqual(attempt.attributes.get("messaging.message.id"), message.id)
      }
      const inner = runs.filter((span) => span.name === "handler.inner")
      assert.deepStrictEqual(inner.map(parentId), attempts.map((attempt) => attempt.spanId))
    })
  })
})
