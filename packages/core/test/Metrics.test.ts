/**
 * Metrics: counters, histograms and gauges labelled by actor and queue, hooked through middleware; queue depth
 * sampled from the broker at a bounded rate.
 */
import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Effect, Exit, Layer, Metric, Schema } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { TestClock } from "effect/testing"
import { Actor, Broker, Metrics, Worker } from "../src/index.ts"

const Job = Schema.Struct({ n: Schema.Number })
class Boom extends Schema.TaggedError<Boom>()("Boom", { n: Schema.Number }) {}

const count = (metric: Metric.Counter<number>, attributes: Record<string, string>) =>
  Effect.map(Metric.value(Metric.withAttributes(metric, attributes)), (state) => state.count)

describe("Metrics", () => {
  it.effect("counts each outcome by actor and queue, times handlers and lag, and samples queue depth", () => {
    const ok = Actor.make("m_ok", { queue: "mq", payload: Job })
    const flaky = Actor.make("m_flaky", { queue: "mq", payload: Job, error: Boom, minBackoff: "1 second" })
    const doomed = Actor.make("m_doomed", { queue: "mq", payload: Job, error: Boom, maxRetries: 0 })
    const handlers = [
      ok.handle(() => Effect.sleep("2 seconds")),
      flaky.handle(({ n }, message) => message.attempts === 0 ? Effect.fail(new Boom({ n })) : Effect.void),
      doomed.handle(({ n }) => Effect.fail(new Boom({ n })))
    ]
    return Effect.gen(function*() {
      yield* ok.send({ n: 1 }, { delay: "3 seconds" })
      yield* ok.send({ n: 2 })
      yield* flaky.send({ n: 3 })
      yield* doomed.send({ n: 4 })
      yield* Effect.gen(function*() {
        yield* TestClock.adjust("1 minute")
        const okLabels = { actor: "m_ok", queue: "mq" }
        const flakyLabels = { actor: "m_flaky", queue: "mq" }
        const doomedLabels = { actor: "m_doomed", queue: "mq" }
        assert.strictEqual(yield* count(Metrics.enqueued, okLabels), 2)
        assert.strictEqual(yield* count(Metrics.started, okLabels), 2)
        assert.strictEqual(yield* count(Metrics.succeeded, okLabels), 2)
        assert.strictEqual(yield* count(Metrics.started, flakyLabels), 2)
        assert.strictEqual(yield* count(Metrics.retried, flakyLabels), 1)
        assert.strictEqual(yield* count(Metrics.succeeded, flakyLabels), 1)
        assert.strictEqual(yield* count(Metrics.deadLettered, doomedLabels), 1)
        assert.strictEqual(yield* count(Metrics.retried, doomedLabels), 0)
        const durations = yield* Metric.value(Metric.withAttributes(Metrics.handlerDuration, okLabels))
        assert.strictEqual(durations.count, 2)
        assert.strictEqual(durations.sum, 4) // two sleeps of 2 s on the TestClock
        const lags = yield* Metric.value(Metric.withAttributes(Metrics.lag, flakyLabels))
        assert.strictEqual(lags.count, 1) // the first attempt only
        const running = yield* Metric.value(Metric.withAttributes(Metrics.inProgress, okLabels))
        assert.strictEqual(running.value, 0)
        // the sampler ran at least once in the minute; one dead letter in the queue
        const dead = yield* Metric.value(Metric.withAttributes(Metrics.queueDepth, { queue: "mq", state: "dead" }))
        assert.strictEqual(dead.value, 1)
        const text = yield* PrometheusMetrics.format()
        assert.include(text, `errand_messages_succeeded_total{actor="m_ok",queue="mq"} 2`)
        assert.include(text, `errand_queue_depth{queue="mq",state="ready"} 0`)
      }).pipe(Effect.provide(Worker.layer({ handlers })))
    }).pipe(
      Effect.provide(Metrics.layer({ queues: ["mq"], sampleEvery: "5 seconds" })),
      Effect.provide(MemoryBroker.layer),
      Effect.provide(Layer.succeed(Metric.MetricRegistry)(new Map()))
    )
  })

  it.effect("samples depth at the given rate, not per message", () =>
    Effect.gen(function*() {
      const calls = { stats: 0 }
      const counting = Layer.effect(
        Broker.Broker,
        Effect.map(Broker.Broker, (broker) =>
          Broker.Broker.of({
            ...broker,
            stats: (queue) => Effect.andThen(Effect.sync(() => calls.stats++), broker.stats(queue))
          }))
      )
      yield* Effect.gen(function*() {
        yield* TestClock.adjust("30 seconds")
        // one sample at start, then one every 10 s: 4 samples of 2 queues
        assert.strictEqual(calls.stats, 8)
      }).pipe(
        Effect.provide(Metrics.depthSampler({ queues: ["a", "b"], sampleEvery: "10 seconds" })),
        Effect.provide(counting),
        Effect.provide(MemoryBroker.layer)
      )
    }))

  it.effect("refuses a sampling interval that would make a busy loop, or a malformed one, with InvalidOption", () =>
    Effect.gen(function*() {
      for (const sampleEvery of [0, 50, Number.NaN, "5 bogus" as "5 seconds"]) {
        const exit = yield* Effect.exit(Layer.build(Metrics.depthSampler({ queues: ["a"], sampleEvery })))
        assert(Exit.isFailure(exit), String(sampleEvery))
        const reason = exit.cause.reasons[0]
        assert(reason?._tag === "Fail" && reason.error._tag === "InvalidOption")
        assert.deepStrictEqual([reason.error.of, reason.error.option], ["monitoring", "sampleEvery"])
      }
    }).pipe(Effect.scoped, Effect.provide(MemoryBroker.layer)))
})
