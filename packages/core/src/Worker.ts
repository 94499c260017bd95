/**
 * Workers: run actors' handlers on messages taken from the broker.
 *
 * ```ts
 * const WorkerLive = Worker.layer({
 *   handlers: [SendWelcomeEmailLive, ProcessOrderLive],
 *   queues: ["email", "processing"],
 *   concurrency: 8
 * }) // Layer<never, DuplicateActor | InvalidName, Broker | Users | Mailer | Orders>: what the handlers need
 * ```
 *
 * **Guarantees**
 *
 * - At-least-once: a message is acked only after its handler finished, or dead-lettered. Leases are extended in the
 *   background (one broker call for all in-flight messages) while handlers run; a worker that dies loses its leases
 *   and its messages are delivered again elsewhere. Handlers must be idempotent.
 * - A failed attempt (typed error, defect, or time limit) is retried by the actor's retry policy, or dead-lettered
 *   with the reason. A message that cannot be decoded, or names an actor this worker does not know, is dead-lettered
 *   with the reason, and the worker keeps going.
 * - Graceful shutdown (the worker's scope closing — SIGINT/SIGTERM under `NodeRuntime.runMain`): the worker stops
 *   taking, releases prefetched messages at once, lets running handlers finish up to `shutdownTimeout`, then
 *   interrupts them and releases their messages without burning an attempt. It stops after at most
 *   `releaseTimeout` more, even if a handler ignores interruption or the broker is down.
 * - A broker outage does not stop the worker: every failed broker call is retried after a jittered exponential
 *   backoff (never in a tight loop), the outage is logged once and the recovery once.
 * - A message whose lease keeps lapsing (its handler kills or freezes each worker) is dead-lettered after
 *   `maxLostLeases` lost leases, unrun.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer, Schema } from "effect"
import type { Duration, Scope } from "effect"
import type * as Actor from "./Actor.ts"
import { Broker } from "./Broker.ts"
import { DuplicateActor, type InvalidName, InvalidOption } from "./ErrandError.ts"
import { validateName } from "./internal/names.ts"
import * as Check from "./internal/options.ts"
import * as Payload from "./internal/payload.ts"
import type { RetryPolicy } from "./internal/retry.ts"
import {
  CurrentMessage,
  type Registered,
  type Settings,
  type WorkerContext,
  WorkerState
} from "./internal/worker/context.ts"
import { leaseKeeper } from "./internal/worker/leases.ts"
import * as Outcome from "./internal/worker/outcome.ts"
import * as Runners from "./internal/worker/runners.ts"
import * as Settlement from "./internal/worker/settlement.ts"
import { shutdown } from "./internal/worker/shutdown.ts"
import { takeLoop } from "./internal/worker/takeLoop.ts"
import type { LastError, Message } from "./Message.ts"
import { Middlewares } from "./Middleware.ts"
import { Results } from "./Results.ts"

export {
  /**
   * The message a handler is running, for code deep inside a handler (`yield* Worker.CurrentMessage`). The worker
   * provides it, so it never appears in the worker's requirements.
   *
   * @category services
   * @since 0.1.0
   */
  CurrentMessage
}

/**
 * What happens to messages, for logging, metrics and tests (`onEvent`).
 *
 * @category models
 * @since 0.1.0
 */
export type Event =
  | { readonly _tag: "Started"; readonly message: Message }
  | { readonly _tag: "Succeeded"; readonly message: Message; readonly durationMillis: number }
  | {
    readonly _tag: "Retrying"
    readonly message: Message
    readonly error: LastError
    /** Failed attempts so far, this one included. */
    readonly attempts: number
    readonly delayMillis: number
  }
  | {
    readonly _tag: "DeadLettered"
    readonly messageId: string
    readonly queue: string
    /** The decoded message, unless it could not be decoded. */
    readonly message: Message | undefined
    readonly reason: LastError
  }
  | { readonly _tag: "Released"; readonly messageId: string; readonly queue: string }

/**
 * How many handlers a worker runs at once when its options do not say.
 *
 * @category constants
 * @since 0.3.0
 */
export const defaultConcurrency = 8

/**
 * The options of `Worker.layer` and `Worker.make`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<Handlers extends ReadonlyArray<Actor.Handler<Actor.Any, unknown>>> {
  /** The handlers this worker runs, from `actor.handle(...)`. Two handlers for one actor name are an error. */
  readonly handlers: Handlers
  /** The queues to consume (default: every queue of the handlers' actors). */
  readonly queues?: ReadonlyArray<string> | undefined
  /** How many handlers run at once, across all queues (default 8). */
  readonly concurrency?: number | undefined
  /** How many messages are taken ahead of free handler slots, to hide broker round trips (default: `concurrency`). */
  readonly prefetch?: number | undefined
  /** How long a lease lasts; it is extended every third of it while the message is held (default 30 seconds). */
  readonly lease?: Duration.Input | undefined
  /** How long one idle take blocks waiting for a message before asking again (default 5 seconds). */
  readonly idleWait?: Duration.Input | undefined
  /** How long shutdown lets running handlers finish before interrupting them (default 30 seconds). */
  readonly shutdownTimeout?: Duration.Input | undefined
  /**
   * How long shutdown may then spend on interrupting handlers and recording what they and the prefetched messages
   * leave behind (default 5 seconds). Past it the worker stops anyway, even if a handler ignores interruption or the
   * broker is down: what it could not release comes back when its lease lapses.
   */
  readonly releaseTimeout?: Duration.Input | undefined
  /**
   * How many times a message may lose its lease (its worker died or froze while running it) before it is
   * dead-lettered unrun with `DeliveryLimitExceeded` (default 5). Releases on shutdown do not count.
   */
  readonly maxLostLeases?: number | undefined
  /** Called for each lifecycle event. Its failures and defects are logged, never fatal. */
  readonly onEvent?: ((event: Event) => Effect.Effect<void>) | undefined
}

/**
 * The services a worker needs: the broker, and what its handlers need (less `CurrentMessage`, which it provides).
 *
 * @category models
 * @since 0.1.0
 */
export type Requirements<Handlers extends ReadonlyArray<Actor.Handler<Actor.Any, unknown>>> =
  | Broker
  | Exclude<Actor.HandlerServices<Handlers[number]>, CurrentMessage>

/** Validates a worker's options: a value out of range fails with `InvalidOption`, never clamped. */
const validate = (options: Options<ReadonlyArray<Actor.Handler<Actor.Any, unknown>>>) =>
  Effect.suspend((): Effect.Effect<Settings, InvalidOption> => {
    const concurrency = Check.integer("worker", "concurrency", options.concurrency, defaultConcurrency, 1, 100_000)
    if (typeof concurrency !== "number") return Effect.fail(concurrency)
    const values = [
      concurrency,
      Check.integer("worker", "prefetch", options.prefetch, concurrency, 0, 100_000),
      // a lease must outlast a round trip to the broker; it is extended every third of it
      Check.duration("worker", "lease", options.lease, 30_000, 100, false),
      Check.duration("worker", "idleWait", options.idleWait, 5_000, 0, false),
      Check.duration("worker", "shutdownTimeout", options.shutdownTimeout, 30_000, 0, false),
      Check.duration("worker", "releaseTimeout", options.releaseTimeout, 5_000, 0, false),
      Check.integer("worker", "maxLostLeases", options.maxLostLeases, 5, 0, Infinity)
    ] as const
    for (const value of values) if (typeof value !== "number") return Effect.fail(value)
    const [, prefetch, leaseMillis, idleWait, shutdownTimeout, releaseTimeout, maxLostLeases] = values as ReadonlyArray<
      number
    >
    return Effect.succeed({
      concurrency,
      prefetch: prefetch!,
      leaseMillis: leaseMillis!,
      idleWait: idleWait!,
      shutdownTimeout: shutdownTimeout!,
      releaseTimeout: releaseTimeout!,
      maxLostLeases: maxLostLeases!
    })
  })

/**
 * Starts a worker in the current scope: it runs until the scope closes, then shuts down gracefully. Fails with
 * `DuplicateActor` when two handlers share an actor name, `InvalidName` for a bad queue name, or `InvalidOption` for
 * an option out of range.
 *
 * The parts live in `internal/worker/`: the take loops, the runners, the outcomes of messages and their
 * settlement, the lease keeper and shutdown, sharing one `WorkerContext`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <const Handlers extends ReadonlyArray<Actor.Handler<Actor.Any, unknown>>>(
  options: Options<Handlers>
): Effect.Effect<void, DuplicateActor | InvalidName | InvalidOption, Scope.Scope | Requirements<Handlers>> =>
  Effect.gen(function*() {
    const registry = new Map<string, Registered>()
    for (const handler of options.handlers) {
      const actor = handler.actor
      if (registry.has(actor.name)) return yield* new DuplicateActor({ actor: actor.name })
      const payloadCodec = Schema.toCodecJson(actor.payloadSchema)
      registry.set(actor.name, {
        actor,
        run: handler.run,
        decodePayload: Schema.decodeUnknownEffect(payloadCodec),
        decodePayloadFast: Payload.compile(payloadCodec.ast),
        retryPolicy: actor.retryPolicy as RetryPolicy<Actor.Failure<unknown>>,
        resultTtlMillis: actor.resultTtlMillis,
        encodeSuccess: Schema.encodeUnknownEffect(Schema.toCodecJson(actor.successSchema)),
        encodeError: Schema.encodeUnknownEffect(Schema.toCodecJson(actor.errorSchema))
      })
    }
    const queues = [...new Set(options.queues ?? options.handlers.map((handler) => handler.actor.queue))]
    for (const queue of queues) yield* validateName("queue", queue)
    const settings = yield* validate(options)
    const results = yield* Effect.serviceOption(Results)
    const storing = [...registry.values()].find((registered) => registered.resultTtlMillis !== undefined)
    if (storing !== undefined && results._tag === "None") {
      return yield* new InvalidOption({
        of: "worker",
        option: "handlers",
        value: storing.actor.name,
        expected: "a Results service for actors with storeResults (the broker layers provide one)"
      })
    }

    const onEvent = options.onEvent
    const ctx: WorkerContext = {
      broker: yield* Broker,
      results: results._tag === "Some" ? results.value : undefined,
      clock: yield* Clock.Clock,
      settings,
      capacity: settings.concurrency + settings.prefetch,
      registry,
      state: new WorkerState(queues),
      middlewares: yield* Middlewares,
      listening: onEvent !== undefined,
      emit: onEvent === undefined
        ? () => Effect.void
        : (event) => Effect.catchCause(onEvent(event), (cause) => Effect.logWarning("Worker onEvent failed", cause)),
      runSystem: Effect.runForkWith(yield* Effect.context<never>()),
      // handlers' effects are typed `unknown` inside the worker; their requirements are `Requirements<Handlers>`
      // Flattened once: each message adds two services (CurrentMessage, log annotations) to the runner's context,
      // and on a context already several `add`s deep Effect copies the whole service map at every add.
      runHandlers: Effect.runForkWith(
        Context.makeUnsafe((yield* Effect.context<Requirements<Handlers>>()).mapUnsafe) as Context.Context<unknown>
      )
    }
    const settlements = Settlement.make(ctx)
    const outcomes = Outcome.make(ctx)
    const runners = Runners.make(ctx, settlements, outcomes)

    for (let i = 0; i < settings.concurrency; i++) runners.spawn()
    const takeLoops = yield* Effect.forEach(
      ctx.state.queues,
      (state) => Effect.forkDetach(takeLoop(ctx, settlements, runners.dispatch, state)),
      { concurrency: "unbounded" }
    )
    const keeper = yield* Effect.forkDetach(leaseKeeper(ctx))
    yield* Effect.addFinalizer(() => shutdown(ctx, { settlements, outcomes, runners, takeLoops, leaseKeeper: keeper }))
    yield* Effect.logDebug(`Worker started on ${queues.join(", ")} (concurrency ${settings.concurrency})`)
  }).pipe(Effect.annotateLogs({ module: "Worker" })) as Effect.Effect<
    void,
    DuplicateActor | InvalidName | InvalidOption,
    Scope.Scope | Requirements<Handlers>
  >

/**
 * A worker as a Layer: it starts when the layer is built and shuts down gracefully when the layer's scope closes.
 * Its requirements are exactly the broker and the services its handlers need.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <const Handlers extends ReadonlyArray<Actor.Handler<Actor.Any, unknown>>>(
  options: Options<Handlers>
): Layer.Layer<never, DuplicateActor | InvalidName | InvalidOption, Requirements<Handlers>> =>
  Layer.effectDiscard(make(options))
