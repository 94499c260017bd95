/**
 * Tracing: a span for each `send` (producer side) and one per attempt (worker side), with the trace context carried
 * in the message so that an attempt's span is a child of the span of the `send` that enqueued it, across processes.
 * It uses Effect's `Tracer`: export the spans with `effect/observability`'s `OtlpTracer` or `@effect/opentelemetry`.
 *
 * ```ts
 * const WorkerLive = Worker.layer({ handlers }).pipe(Layer.provide(Tracing.layer)) // in the worker
 * const ProducerLive = Layer.mergeAll(RedisBroker.layerConfig(), Tracing.layer)   // in the producer
 * ```
 *
 * - `errand.send <actor>` (kind `producer`), a child of the span `send` runs in; the W3C trace context of this span
 *   travels in the envelope as `options.traceparent` (the format of the HTTP header, readable in any language).
 * - `errand.run <actor>` (kind `consumer`), one per attempt, around the handler (the handler's own spans are its
 *   children); its parent is the `send` span when the message carries a `traceparent`.
 * - Attributes: `messaging.system` (`errand`), `messaging.destination.name` (the queue), `messaging.message.id`,
 *   `errand.actor`, and on attempts `errand.attempt` (1-based) and `errand.outcome` (`success`, `failure`,
 *   `interrupted`; a failure may still be retried).
 *
 * It is a middleware: without `Tracing.layer`, sending and running cost nothing more. The `send` span covers the
 * building of the message, not the broker round trip (the middleware runs before the enqueue).
 *
 * @since 0.2.0
 */
import { Cause, Effect, type Exit, type Layer, Option, type Tracer } from "effect"
import { Headers, HttpTraceContext } from "effect/http"
import type { Message } from "./Message.ts"
import * as Middleware from "./Middleware.ts"

/**
 * The key of `Message.options` holding the W3C trace context of the `send` span.
 *
 * @category constants
 * @since 0.2.0
 */
export const traceparentKey = "traceparent"

/**
 * The span a message was sent in, from its `options.traceparent`, if it carries a valid one.
 *
 * @category tracing
 * @since 0.2.0
 */
export const parentOf = (message: Message): Tracer.ExternalSpan | undefined => {
  const traceparent = message.options[traceparentKey]
  if (typeof traceparent !== "string") return undefined
  return Option.getOrUndefined(HttpTraceContext.w3c(Headers.fromInput({ traceparent })))
}

const attributesOf = (message: Message) => ({
  "messaging.system": "errand",
  "messaging.destination.name": message.queue,
  "messaging.message.id": message.id,
  "errand.actor": message.actor
})

const outcomeOf = (exit: Exit.Exit<unknown, unknown>): string =>
  exit._tag === "Success" ? "success" : Cause.hasInterruptsOnly(exit.cause) ? "interrupted" : "failure"

/**
 * The tracing middleware (see the module docs).
 *
 * @category middleware
 * @since 0.2.0
 */
export const middleware: Middleware.Middleware = {
  name: "tracing",
  beforeEnqueue: (message) =>
    Effect.useSpan(
      `errand.send ${message.actor}`,
      { kind: "producer", attributes: attributesOf(message) },
      (span) => Effect.succeed({ options: { [traceparentKey]: HttpTraceContext.toHeaders(span)["traceparent"] } })
    ),
  aroundHandler: (message, run) =>
    Effect.withSpan(
      Effect.onExit(run, (exit) => Effect.annotateCurrentSpan("errand.outcome", outcomeOf(exit))),
      `errand.run ${message.actor}`,
      {
        kind: "consumer",
        parent: parentOf(message),
        attributes: { ...attributesOf(message), "errand.attempt": message.attempts + 1 }
      }
    )
}

/**
 * The tracing middleware as a Layer, for producers and workers.
 *
 * @category layers
 * @since 0.2.0
 */
export const layer: Layer.Layer<never> = Middleware.layer(middleware)
