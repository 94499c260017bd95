/**
 * Metrics: Errand's counters, histograms and gauges on Effect's `Metric`, labelled by `actor` and `queue` (Dramatiq's
 * Prometheus middleware, Effect-native). Serve them with `effect/observability`'s `PrometheusMetrics` (the `errand`
 * command does with `--metrics-port`), or export them with `OtlpMetrics`.
 *
 * ```ts
 * const WorkerLive = Worker.layer({ handlers: [SendWelcomeEmailLive] }).pipe(
 *   Layer.provide(Metrics.layer({ queues: ["email"] })) // the middleware, and depth gauges sampled every 5 s
 * )
 * ```
 *
 * | metric                             | type      | labels              | counts                                   |
 * | ---------------------------------- | --------- | ------------------- | ---------------------------------------- |
 * | `errand_messages_enqueued_total`   | counter   | actor, queue        | messages handed to the broker by `send`  |
 * | `errand_messages_started_total`    | counter   | actor, queue        | handler runs started (attempts)          |
 * | `errand_messages_succeeded_total`  | counter   | actor, queue        | messages acked                           |
 * | `errand_messages_retried_total`    | counter   | actor, queue        | failed attempts put back for a retry     |
 * | `errand_messages_dead_total`       | counter   | actor, queue        | messages dead-lettered                   |
 * | `errand_messages_released_total`   | counter   | actor, queue        | messages put back unrun/unfinished       |
 * | `errand_messages_in_progress`      | gauge     | actor, queue        | handlers running now                     |
 * | `errand_handler_duration_seconds`  | histogram | actor, queue        | each handler run, success or failure     |
 * | `errand_message_lag_seconds`       | histogram | actor, queue        | first attempt's start minus its eta      |
 * | `errand_queue_depth`               | gauge     | queue, state        | `broker.stats`: ready, delayed,          |
 * |                                    |           |                     | in_flight, dead; sampled, not per message|
 *
 * The counters are hooked through `Middleware` (`beforeEnqueue`, `aroundHandler`, `afterSettle`): a message
 * dead-lettered before its handler ran (undecodable, too old, unknown actor) counts as dead but not as started, and
 * its actor label is `unknown` when the envelope could not be read. Released messages counted are those this process
 * held; the depth gauges are the broker's view, shared by every worker.
 *
 * @since 0.2.0
 */
import { Clock, type Duration, Effect, Layer, Metric, Schedule } from "effect"
import { Broker } from "./Broker.ts"
import type { InvalidOption } from "./ErrandError.ts"
import * as Check from "./internal/options.ts"
import type { Message } from "./Message.ts"
import * as Middleware from "./Middleware.ts"

const durationBoundaries = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
const lagBoundaries = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600]

/**
 * Messages handed to the broker (counted by `beforeEnqueue`, before the broker call).
 *
 * @category metrics
 * @since 0.2.0
 */
export const enqueued = Metric.counter("errand_messages_enqueued_total", {
  description: "Messages enqueued by send, sendBatch or enqueue",
  incremental: true
})

/**
 * Handler runs started (one per attempt).
 *
 * @category metrics
 * @since 0.2.0
 */
export const started = Metric.counter("errand_messages_started_total", {
  description: "Handler runs started (one per attempt)",
  incremental: true
})

/**
 * Messages acked after their handler succeeded.
 *
 * @category metrics
 * @since 0.2.0
 */
export const succeeded = Metric.counter("errand_messages_succeeded_total", {
  description: "Messages acked after their handler succeeded",
  incremental: true
})

/**
 * Failed attempts put back on their queue for a retry.
 *
 * @category metrics
 * @since 0.2.0
 */
export const retried = Metric.counter("errand_messages_retried_total", {
  description: "Failed attempts put back for a retry",
  incremental: true
})

/**
 * Messages dead-lettered.
 *
 * @category metrics
 * @since 0.2.0
 */
export const deadLettered = Metric.counter("errand_messages_dead_total", {
  description: "Messages dead-lettered",
  incremental: true
})

/**
 * Messages put back unrun or unfinished (shutdown).
 *
 * @category metrics
 * @since 0.2.0
 */
export const released = Metric.counter("errand_messages_released_total", {
  description: "Messages released unrun or unfinished (shutdown)",
  incremental: true
})

/**
 * Handlers running now.
 *
 * @category metrics
 * @since 0.2.0
 */
export const inProgress = Metric.gauge("errand_messages_in_progress", {
  description: "Handlers running now"
})

/**
 * How long each handler run took, in seconds (successes and failures alike).
 *
 * @category metrics
 * @since 0.2.0
 */
export const handlerDuration = Metric.histogram("errand_handler_duration_seconds", {
  description: "Handler run duration in seconds",
  boundaries: durationBoundaries
})

/**
 * How late a message's first attempt started after its eta, in seconds (retries are left out: their due time is the
 * broker's, not the envelope's).
 *
 * @category metrics
 * @since 0.2.0
 */
export const lag = Metric.histogram("errand_message_lag_seconds", {
  description: "Seconds from a message's eta to its first attempt's start",
  boundaries: lagBoundaries
})

/**
 * Queue depth by state (`ready`, `delayed`, `in_flight`, `dead`), sampled from `broker.stats`.
 *
 * @category metrics
 * @since 0.2.0
 */
export const queueDepth = Metric.gauge("errand_queue_depth", {
  description: "Messages in a queue by state, sampled from the broker"
})

/**
 * The options of `Metrics.layer`.
 *
 * @category models
 * @since 0.2.0
 */
export interface Options {
  /** The queues whose depth is sampled from the broker (default: none). */
  readonly queues?: ReadonlyArray<string> | undefined
  /** How often the depth gauges are sampled: one `stats` call per queue each time (default 5 seconds). */
  readonly sampleEvery?: Duration.Input | undefined
}

/** The metrics of one actor and queue, with their labels applied once. */
interface Labelled {
  readonly enqueued: Metric.Counter<number>
  readonly started: Metric.Counter<number>
  readonly succeeded: Metric.Counter<number>
  readonly retried: Metric.Counter<number>
  readonly deadLettered: Metric.Counter<number>
  readonly released: Metric.Counter<number>
  readonly inProgress: Metric.Gauge<number>
  readonly handlerDuration: Metric.Histogram<number>
  readonly lag: Metric.Histogram<number>
}

/** The labelled metrics by actor and queue, made once per pair (not per message). */
const labelled = () => {
  const cache = new Map<string, Labelled>()
  return (actor: string | undefined, queue: string): Labelled => {
    const name = actor ?? "unknown"
    const key = `${name}\u0000${queue}`
    let found = cache.get(key)
    if (found === undefined) {
      const attributes = { actor: name, queue }
      found = {
        enqueued: Metric.withAttributes(enqueued, attributes),
        started: Metric.withAttributes(started, attributes),
        succeeded: Metric.withAttributes(succeeded, attributes),
        retried: Metric.withAttributes(retried, attributes),
        deadLettered: Metric.withAttributes(deadLettered, attributes),
        released: Metric.withAttributes(released, attributes),
        inProgress: Metric.withAttributes(inProgress, attributes),
        handlerDuration: Metric.withAttributes(handlerDuration, attributes),
        lag: Metric.withAttributes(lag, attributes)
      }
      cache.set(key, found)
    }
    return found
  }
}

/**
 * The metrics middleware alone (no depth sampling): counters, in-progress gauge and histograms.
 *
 * @category middleware
 * @since 0.2.0
 */
export const middleware = (): Middleware.Middleware => {
  const metricsOf = labelled()
  // Each hook updates its metrics synchronously in one step (`updateUnsafe` in the fiber's context, where the
  // `Metric.MetricRegistry` is): this middleware costs a few microseconds per message, not an effect per metric.
  return {
    name: "metrics",
    beforeEnqueue: (message: Message) =>
      Effect.withFiber((fiber) => {
        metricsOf(message.actor, message.queue).enqueued.updateUnsafe(1, fiber.context)
        return Effect.void
      }),
    aroundHandler: (message, run) =>
      Effect.withFiber((fiber) => {
        const context = fiber.context
        const clock = fiber.getRef(Clock.Clock)
        const start = clock.currentTimeMillisUnsafe()
        const metrics = metricsOf(message.actor, message.queue)
        metrics.started.updateUnsafe(1, context)
        metrics.inProgress.modifyUnsafe(1, context)
        if (message.attempts === 0) metrics.lag.updateUnsafe(Math.max(0, start - message.eta) / 1000, context)
        return Effect.onExit(run, () =>
          Effect.sync(() => {
            metrics.inProgress.modifyUnsafe(-1, context)
            metrics.handlerDuration.updateUnsafe((clock.currentTimeMillisUnsafe() - start) / 1000, context)
          }))
      }),
    afterSettle: (outcome) =>
      Effect.withFiber((fiber) => {
        const metrics = metricsOf(outcome.actor, outcome.queue)
        const counter = outcome._tag === "Acked"
          ? metrics.succeeded
          : outcome._tag === "Retried"
          ? metrics.retried
          : outcome._tag === "DeadLettered"
          ? metrics.deadLettered
          : metrics.released
        counter.updateUnsafe(1, fiber.context)
        return Effect.void
      })
  }
}

/**
 * Samples the depth of `queues` from the broker into `errand_queue_depth`, every `sampleEvery` (default 5 seconds),
 * in a fiber of the layer's scope. A failed `stats` call leaves the gauges as they were until the next sample.
 *
 * @category layers
 * @since 0.2.0
 */
export const depthSampler = (options: Options): Layer.Layer<never, InvalidOption, Broker> =>
  Layer.effectDiscard(Effect.gen(function*() {
    // a sampling loop must wait between samples: at least 100 ms, never 0
    const every = Check.duration("monitoring", "sampleEvery", options.sampleEvery, 5_000, 100, false)
    if (typeof every !== "number") return yield* Effect.fail(every)
    const queues = [...new Set(options.queues ?? [])]
    if (queues.length === 0) return
    const broker = yield* Broker
    const gauges = queues.map((queue) => ({
      queue,
      ready: Metric.withAttributes(queueDepth, { queue, state: "ready" }),
      delayed: Metric.withAttributes(queueDepth, { queue, state: "delayed" }),
      inFlight: Metric.withAttributes(queueDepth, { queue, state: "in_flight" }),
      dead: Metric.withAttributes(queueDepth, { queue, state: "dead" })
    }))
    const sample = Effect.forEach(gauges, (gauge) =>
      broker.stats(gauge.queue).pipe(
        Effect.flatMap((stats) =>
          Effect.all([
            Metric.update(gauge.ready, stats.ready),
            Metric.update(gauge.delayed, stats.delayed),
            Metric.update(gauge.inFlight, stats.inFlight),
            Metric.update(gauge.dead, stats.dead)
          ], { discard: true })
        ),
        Effect.catch((error) => Effect.logDebug(`Metrics: stats of ${gauge.queue} failed`, error))
      ), { discard: true })
    yield* Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(every)))
  }))

/**
 * The metrics middleware (`Metrics.middleware`) and, for `options.queues`, the depth sampler (`depthSampler`). Provide
 * it to workers and producers alike.
 *
 * @category layers
 * @since 0.2.0
 */
export const layer = (options: Options = {}): Layer.Layer<never, InvalidOption, Broker> =>
  Layer.merge(Middleware.layer(middleware()), depthSampler(options))
