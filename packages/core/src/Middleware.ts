/**
 * Middleware: hooks around Errand's work, in producers and in workers (Dramatiq's middleware, Effect-native).
 *
 * ```ts
 * // the seed's critical_task pattern: tell someone when a critical task is dead-lettered
 * const AlertOnDeadLetter = Middleware.layer(Effect.gen(function*() {
 *   const notifier = yield* Notifier                          // a service of yours, captured when the layer is built
 *   return {
 *     name: "alert-on-dead-letter",
 *     afterSettle: (outcome) =>
 *       outcome._tag === "DeadLettered" && outcome.actor === "critical_task"
 *         ? notifier.alert(`${outcome.actor} ${outcome.messageId} failed: ${outcome.reason.message}`)
 *         : Effect.void
 *   }
 * }))
 * ```
 *
 * - `beforeEnqueue` runs in the producer for each message before it is enqueued (by `send`, `sendBatch`,
 *   `Actor.enqueue`): it may leave the message as it is, change its priority or delay, add options (carried in the
 *   envelope: `Tracing` adds the trace context so), or refuse it by failing with
 *   `EnqueueVetoed` (nothing of the batch is enqueued).
 * - `aroundHandler` wraps each run of a handler, in the handler's context (`Worker.CurrentMessage`, log annotations):
 *   timing, tracing, a semaphore. It must give back the handler's outcome.
 * - `afterSettle` runs in the worker once a message's outcome is decided (acked, retried, dead-lettered or released),
 *   in a fiber of its own: it never delays or fails the worker, and its failures are logged.
 *
 * Middleware is provided as a Layer (`Middleware.layer`) to producers and workers alike; several layers add up, in
 * order. Without middleware, none of this costs anything on the hot paths.
 *
 * @since 0.2.0
 */
import { Context, type Duration, Effect, Layer } from "effect"
import type { EnqueueVetoed } from "./ErrandError.ts"
import type { CurrentMessage } from "./internal/worker/context.ts"
import type { LastError, Message } from "./Message.ts"

/**
 * A change `beforeEnqueue` makes to a message: its priority, or its delay from now.
 *
 * @category models
 * @since 0.2.0
 */
export interface EnqueueChange {
  readonly priority?: number | undefined
  readonly delay?: Duration.Input | undefined
  /** Options added to the message's `options` (they travel in its envelope), e.g. a trace context. */
  readonly options?: { readonly [key: string]: unknown } | undefined
}

/**
 * A message's decided outcome, as `afterSettle` sees it.
 *
 * @category models
 * @since 0.2.0
 */
export type Outcome =
  | { readonly _tag: "Acked"; readonly messageId: string; readonly queue: string; readonly actor: string | undefined }
  | {
    readonly _tag: "Retried"
    readonly messageId: string
    readonly queue: string
    readonly actor: string | undefined
    readonly error: LastError
  }
  | {
    readonly _tag: "DeadLettered"
    readonly messageId: string
    readonly queue: string
    /** The actor's name, unless the message could not be decoded. */
    readonly actor: string | undefined
    readonly reason: LastError
  }
  | {
    readonly _tag: "Released"
    readonly messageId: string
    readonly queue: string
    readonly actor: string | undefined
  }

/**
 * A middleware: any of the three hooks.
 *
 * @category models
 * @since 0.2.0
 */
export interface Middleware {
  /** For logs. */
  readonly name: string
  /** Before a message is enqueued: keep it (`void`), change it or add options, or refuse it with `EnqueueVetoed`. */
  readonly beforeEnqueue?: ((message: Message) => Effect.Effect<EnqueueChange | void, EnqueueVetoed>) | undefined
  /**
   * Around each run of a handler, in its context (it may read `Worker.CurrentMessage`). Must give back the handler's
   * outcome.
   */
  readonly aroundHandler?:
    | (<A, E, R>(message: Message, run: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R | CurrentMessage>)
    | undefined
  /** After a message's outcome is decided, in a fiber of its own. */
  readonly afterSettle?: ((outcome: Outcome) => Effect.Effect<void>) | undefined
}

/**
 * The middleware in use, in order (none by default).
 *
 * @category references
 * @since 0.2.0
 */
export const Middlewares = Context.Reference<ReadonlyArray<Middleware>>("@errand/core/Middleware/Middlewares", {
  defaultValue: () => []
})

/**
 * Adds middleware, after any already provided. Takes middleware values, or an effect that builds one (to capture the
 * services its hooks use: the layer then requires them).
 *
 * @category layers
 * @since 0.2.0
 */
export const layer = <E = never, R = never>(
  ...middlewares: ReadonlyArray<Middleware | Effect.Effect<Middleware, E, R>>
): Layer.Layer<never, E, R> =>
  Layer.effectContext(
    Effect.gen(function*() {
      const built: Array<Middleware> = []
      for (const middleware of middlewares) {
        built.push(Effect.isEffect(middleware) ? yield* middleware : middleware)
      }
      const existing = yield* Middlewares
      return Context.make(Middlewares, [...existing, ...built])
    })
  ) as unknown as Layer.Layer<never, E, R>
