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
import { Cause, Clock, Context, Effect, Exit, type Fiber, Layer, References, Schedule, Schema } from "effect"
import type { Duration, Scope } from "effect"
import type * as Actor from "./Actor.ts"
import { Broker, type Delivery, type Settlement } from "./Broker.ts"
import {
  type BrokerError,
  DeliveryLimitExceeded,
  DuplicateActor,
  HandlerDefect,
  type InvalidName,
  type InvalidOption,
  MaxAgeExceeded,
  MessageDecodeError,
  TimeLimitExceeded,
  UnknownActor
} from "./ErrandError.ts"
import { issuePath } from "./ErrandError.ts"
import { isEnvelope } from "./internal/envelope.ts"
import { describe, isTagged, lastError } from "./internal/failure.ts"
import { validateName } from "./internal/names.ts"
import * as Check from "./internal/options.ts"
import { decide, type RetryPolicy } from "./internal/retry.ts"
import * as Watchdog from "./internal/watchdog.ts"
import { Envelope, type LastError, type Message } from "./Message.ts"

/**
 * The message a handler is running, for code deep inside a handler (`yield* Worker.CurrentMessage`). The worker
 * provides it, so it never appears in the worker's requirements.
 *
 * @category services
 * @since 0.1.0
 */
export class CurrentMessage extends Context.Service<CurrentMessage, Message>()("@errand/core/Worker/CurrentMessage") {}

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

interface Registered {
  readonly actor: Actor.Any
  readonly run: (payload: unknown, message: Message) => Effect.Effect<unknown, unknown, unknown>
  readonly decodePayload: (encoded: unknown) => Effect.Effect<unknown, Schema.SchemaError, unknown>
  readonly retryPolicy: RetryPolicy<Actor.Failure<unknown>>
}

const decodeEnvelope = Schema.decodeUnknownExit(Envelope)

const noOptions: Message["options"] = {}

/** A delivery being run. */
interface Job {
  readonly delivery: Delivery
  registered: Registered | undefined
  message: Message | undefined
  startedAt: number
  /** When its time limit runs out (Infinity: none). */
  deadline: number
  /** Interrupted by the time-limit watchdog. */
  timedOut: boolean
  /** The handler has finished (or never ran): the watchdog leaves it alone. */
  finished: boolean
  fiber: Fiber.Fiber<void> | undefined
}

/**
 * The wait between retries of a failed broker call (take, settle, extend): exponential from 50 ms, capped at 5 s,
 * jittered. Every retry sleeps, so a broker that fails at once never starves timers, I/O or signal handlers.
 */
const brokerBackoff = Schedule.min([Schedule.exponential("50 millis"), Schedule.spaced("5 seconds")]).pipe(
  Schedule.jittered
)

/** A worker's options, validated, with defaults applied; durations in milliseconds. */
interface Settings {
  readonly concurrency: number
  readonly prefetch: number
  readonly leaseMillis: number
  readonly idleWait: number
  readonly shutdownTimeout: number
  readonly releaseTimeout: number
  readonly maxLostLeases: number
}

/** Validates a worker's options: a value out of range fails with `InvalidOption`, never clamped. */
const validate = (options: Options<ReadonlyArray<Actor.Handler<Actor.Any, unknown>>>) =>
  Effect.suspend((): Effect.Effect<Settings, InvalidOption> => {
    const concurrency = Check.integer("worker", "concurrency", options.concurrency, 8, 1, 100_000)
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
 * `DuplicateActor` when two handlers share an actor name, or `InvalidName` for a bad queue name.
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
      registry.set(actor.name, {
        actor,
        run: handler.run,
        decodePayload: Schema.decodeUnknownEffect(Schema.toCodecJson(actor.payloadSchema)),
        retryPolicy: actor.retryPolicy as RetryPolicy<Actor.Failure<unknown>>
      })
    }
    const queues = [...new Set(options.queues ?? options.handlers.map((handler) => handler.actor.queue))]
    for (const queue of queues) yield* validateName("queue", queue)

    const broker = yield* Broker
    const settings = yield* validate(options)
    const { concurrency, leaseMillis, idleWait, shutdownTimeout, releaseTimeout, maxLostLeases } = settings
    const capacity = concurrency + settings.prefetch
    const onEvent = options.onEvent
    const clock = yield* Clock.Clock

    const emit = (event: Event): Effect.Effect<void> =>
      onEvent === undefined ?
        Effect.void :
        Effect.catchCause(onEvent(event), (cause) => Effect.logWarning("Worker onEvent failed", cause))

    /** A delivery goes back to its queue unrun or unfinished (shutdown): the `Released` event. */
    const releasedEvent = (delivery: Delivery): Effect.Effect<void> =>
      Effect.andThen(
        Effect.logDebug("Released to the queue on shutdown"),
        emit({ _tag: "Released", messageId: delivery.id, queue: delivery.queue })
      )

    // ---- shared state (single-threaded: plain mutable structures) ----
    let stopping = false
    /** Messages run to an outcome (acked, retried or dead-lettered), and messages released, for the stop line. */
    let finishedCount = 0
    let releasedCount = 0
    /** Taken, waiting for a free handler slot. */
    let buffer: Array<Delivery> = []
    let bufferHead = 0
    const buffered = () => buffer.length - bufferHead
    const nextBuffered = (): Delivery | undefined => {
      if (bufferHead >= buffer.length) return undefined
      const delivery = buffer[bufferHead]!
      buffer[bufferHead++] = undefined as unknown as Delivery
      if (bufferHead >= 1024 && bufferHead * 2 >= buffer.length) {
        buffer = buffer.slice(bufferHead)
        bufferHead = 0
      }
      return delivery
    }
    /** Handlers running now. */
    let running = 0
    /** Called when `running` drops to 0 while shutting down. */
    let onIdle: (() => void) | undefined
    /** Every delivery this worker holds a lease on, by id. */
    const held = new Map<string, Delivery>()

    interface QueueState {
      readonly queue: string
      pending: Array<Settlement>
      blocking: boolean
      flushing: boolean
      wake: (() => void) | undefined
      /** A broker call for this queue failed and none has succeeded since: the outage is logged once. */
      outage: boolean
    }
    const states = new Map<string, QueueState>()
    for (const queue of queues) {
      states.set(queue, { queue, pending: [], blocking: false, flushing: false, wake: undefined, outage: false })
    }

    /**
     * Runs handler fibers. Not a `FiberSet`: its finalizer would await every fiber, and a handler that ignores
     * interruption would then hold shutdown past its deadline.
     */
    const runFork = Effect.runForkWith(yield* Effect.context<Requirements<Handlers>>())
    /** Runs the worker's own background fibers (the time-limit alarm), outside the set shutdown waits for. */
    const runSystem = Effect.runForkWith(yield* Effect.context<never>())

    // ---- settlement ----
    /**
     * Settlements sent with a take that failed or was interrupted may or may not have been applied; they are sent
     * again, and a rejection of one of those is expected, not a lost lease.
     */
    const maybeApplied = new Set<string>()
    const recorded = (batch: ReadonlyArray<Settlement>, rejected: ReadonlyArray<string>) => {
      const lost = maybeApplied.size === 0 ? rejected : rejected.filter((id) => !maybeApplied.has(id))
      if (maybeApplied.size > 0) { for (const settlement of batch) maybeApplied.delete(settlement.delivery.id) }
      return lost.length === 0 ?
        Effect.void :
        Effect.forEach(
          lost,
          (messageId) =>
            Effect.logWarning("Lease lost before the outcome was recorded; the message will run again").pipe(
              Effect.annotateLogs({ messageId })
            ),
          { discard: true }
        )
    }
    const retryLater = (batch: ReadonlyArray<Settlement>) => {
      for (const settlement of batch) maybeApplied.add(settlement.delivery.id)
    }

    /** Logs the start of a queue's broker outage, once. */
    const outageStarted = (state: QueueState, operation: string, error: BrokerError) =>
      Effect.suspend(() => {
        if (state.outage) return Effect.void
        state.outage = true
        return Effect.logError(
          `Broker unavailable on queue "${state.queue}" (${operation}); retrying with backoff`,
          error
        )
      })
    /** Logs the end of a queue's broker outage, once. */
    const outageEnded = (state: QueueState) =>
      Effect.suspend(() => {
        if (!state.outage) return Effect.void
        state.outage = false
        return Effect.logInfo(`Broker recovered on queue "${state.queue}"`)
      })

    /** One settle call of everything pending; on failure the batch goes back to the front of `pending`. */
    const settleOnce = (state: QueueState): Effect.Effect<void, BrokerError> =>
      Effect.suspend(() => {
        const batch = state.pending
        state.pending = []
        return broker.settle(batch).pipe(
          Effect.flatMap((rejected) => Effect.andThen(outageEnded(state), recorded(batch, rejected))),
          Effect.tapError((error) => {
            retryLater(batch)
            state.pending = batch.concat(state.pending)
            return outageStarted(state, "settle", error)
          })
        )
      })

    /**
     * Sends a queue's pending settlements until none is left. A failed call is retried after `brokerBackoff`: the
     * worker never spins on a broker that fails at once.
     */
    const flush = (state: QueueState): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (state.pending.length === 0) {
          state.flushing = false
          return Effect.void
        }
        return Effect.andThen(
          Effect.retry(settleOnce(state), brokerBackoff).pipe(Effect.catch(() => Effect.void)),
          flush(state)
        )
      })

    /** The queue states, for iterating without an iterator object per settlement. */
    const stateList = [...states.values()]
    const wakeAll = () => {
      for (let i = 0; i < stateList.length; i++) {
        const state = stateList[i]!
        const wake = state.wake
        if (wake !== undefined) {
          state.wake = undefined
          wake()
        }
      }
    }

    const settled = (delivery: Delivery, settlement: Settlement) => {
      held.delete(delivery.id)
      const state = states.get(delivery.queue)!
      state.pending.push(settlement)
      if (state.blocking && !state.flushing) {
        state.flushing = true
        runSystem(flush(state))
      }
      wakeAll()
    }

    // ---- running one message ----
    const settleFailure = (
      delivery: Delivery,
      message: Message,
      registered: Registered,
      failure: Actor.Failure<unknown> & { readonly _tag: string }
    ): Effect.Effect<Settlement> => {
      const attempts = delivery.attempts + 1
      const error = lastError(failure)
      return Effect.flatMap(decide(registered.retryPolicy, failure, attempts), (decision) => {
        if (decision._tag === "Retry") {
          const eta = clock.currentTimeMillisUnsafe() + decision.delayMillis
          return Effect.as(
            Effect.andThen(
              Effect.logWarning(
                `Failed (attempt ${attempts}); retrying in ${decision.delayMillis} ms: ${error.message}`
              ),
              emit({ _tag: "Retrying", message, error, attempts, delayMillis: decision.delayMillis })
            ),
            { _tag: "Retry", delivery, eta, error } satisfies Settlement
          )
        }
        // a failure the actor `throws` is an expected outcome: logged at Info, as Dramatiq does
        return decision.why === "throws"
          ? deadLetter(delivery, message, error, "throws", true, "Info")
          : deadLetter(
            delivery,
            message,
            error,
            decision.why === "exhausted" ? "retries exhausted" : decision.why,
            true
          )
      })
    }

    /** Dead-letters a delivery; `ran` says whether it ran the handler (a dead letter counts handler runs). */
    const deadLetter = (
      delivery: Delivery,
      message: Message | undefined,
      reason: LastError,
      why: string,
      ran: boolean,
      level: "Info" | "Error" = "Error"
    ): Effect.Effect<Settlement> =>
      Effect.as(
        Effect.andThen(
          Effect.logWithLevel(level)(`Dead-lettered (${why}): [${reason.tag}] ${reason.message}`),
          emit({ _tag: "DeadLettered", messageId: delivery.id, queue: delivery.queue, message, reason })
        ),
        { _tag: "DeadLetter", delivery, reason, ran } satisfies Settlement
      )

    // ---- time limits: one watchdog for all running handlers, not a timer per message ----
    const watchdog = Watchdog.make<Job>({
      clock,
      fork: runSystem,
      expired: (job) => {
        job.timedOut = true
        job.fiber?.interruptUnsafe()
      }
    })

    // ---- running one message ----
    const failureOf = (
      job: Job,
      exit: Exit.Exit<unknown, unknown>
    ): Actor.Failure<unknown> & { readonly _tag: string } => {
      const actor = job.registered!.actor
      const message = job.message!
      if (job.timedOut) {
        return new TimeLimitExceeded({
          actor: actor.name,
          messageId: message.id,
          timeLimitMillis: actor.timeLimitMillis
        })
      }
      const cause = Exit.isFailure(exit) ? exit.cause : Cause.empty
      const typed = Cause.findErrorOption(cause)
      return typed._tag === "Some" && isTagged(typed.value)
        ? typed.value as Actor.Failure<unknown> & { readonly _tag: string }
        : new HandlerDefect({
          actor: actor.name,
          messageId: message.id,
          defect: typed._tag === "Some" ? describe(typed.value) : Cause.pretty(cause)
        })
    }

    const handlerSucceeded = (job: Job): Effect.Effect<Settlement> => {
      job.finished = true
      const ack: Settlement = { _tag: "Ack", delivery: job.delivery }
      if (job.timedOut) return settleFailure(job.delivery, job.message!, job.registered!, failureOf(job, Exit.void))
      return onEvent === undefined ? Effect.succeed(ack) : Effect.as(
        emit({
          _tag: "Succeeded",
          message: job.message!,
          durationMillis: clock.currentTimeMillisUnsafe() - job.startedAt
        }),
        ack
      )
    }

    const handlerFailed = (job: Job, cause: Cause.Cause<unknown>): Effect.Effect<Settlement> => {
      job.finished = true
      if (!job.timedOut && stopping && Cause.hasInterruptsOnly(cause)) {
        // interrupted by shutdown, not by the handler: put it back without burning an attempt
        return Effect.as(releasedEvent(job.delivery), { _tag: "Release", delivery: job.delivery } satisfies Settlement)
      }
      return settleFailure(job.delivery, job.message!, job.registered!, failureOf(job, Exit.failCause(cause)))
    }

    const undecodable = (job: Job, part: "envelope" | "payload", issue: string) =>
      deadLetter(
        job.delivery,
        undefined,
        lastError(new MessageDecodeError({ messageId: job.delivery.id, part, issue })),
        "undecodable",
        false
      )

    /**
     * The log annotations of a job's effects: the actor (once known), queue, message id and attempt (1 on a first
     * run, the number the retry log line names).
     */
    const annotate = <A, E, R>(job: Job, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
      const actor = job.registered?.actor.name
      const annotations = { queue: job.delivery.queue, messageId: job.delivery.id, attempt: job.delivery.attempts + 1 }
      return Effect.annotateLogs(effect, actor === undefined ? annotations : { actor, ...annotations })
    }

    /**
     * The context a handler runs in: `CurrentMessage` and the job's log annotations, added in one step (the same
     * annotations `annotate` adds, without a second context update per message).
     */
    const handlerContext = (job: Job, context: Context.Context<never>): Context.Context<unknown> => {
      const message = job.message!
      return Context.add(
        Context.add(context, References.CurrentLogAnnotations, {
          ...Context.get(context, References.CurrentLogAnnotations),
          actor: message.actor,
          queue: job.delivery.queue,
          messageId: job.delivery.id,
          attempt: job.delivery.attempts + 1
        }),
        CurrentMessage,
        message
      ) as Context.Context<unknown>
    }

    /** Records a job's settlement once its effects (events, logs) ran, with the job's log annotations. */
    const finishWith = (runner: Runner, job: Job, settlement: Effect.Effect<Settlement>) =>
      Effect.map(annotate(job, settlement), (s) => finishJob(runner, job, s))

    /**
     * Runs one delivery to its settlement, and records it (`finishJob`). The usual path — a synchronously decodable
     * payload whose handler succeeds — allocates no closures and takes no effect steps besides the handler's context
     * and outcome: the handler's context and continuations are the runner's own (see `Runner`).
     */
    const runJob = (runner: Runner, job: Job): Effect.Effect<void, never, unknown> => {
      const delivery = job.delivery
      const lostLeases = delivery.deliveries - 1 - delivery.attempts
      if (lostLeases > maxLostLeases) {
        // its handler froze or crashed its worker each time: do not hand it to another one
        const error = new DeliveryLimitExceeded({
          messageId: delivery.id,
          queue: delivery.queue,
          lostLeases,
          maxLostLeases
        })
        return finishWith(runner, job, deadLetter(delivery, undefined, lastError(error), "lost leases", false))
      }
      const envelope = delivery.body
      if (!isEnvelope(envelope)) {
        const decoded = decodeEnvelope(envelope)
        const error = Exit.isFailure(decoded) ? Cause.findErrorOption(decoded.cause) : undefined
        return finishWith(
          runner,
          job,
          undecodable(job, "envelope", error?._tag === "Some" ? error.value.message : "not an envelope")
        )
      }
      const registered = registry.get(envelope.actor)
      if (registered === undefined) {
        return finishWith(
          runner,
          job,
          deadLetter(
            delivery,
            undefined,
            lastError(new UnknownActor({ actor: envelope.actor, queue: delivery.queue })),
            "unknown actor",
            false
          )
        )
      }
      job.registered = registered
      // A payload schema without effects decodes to an Exit: no effect step is needed to read it.
      const decoded = registered.decodePayload(envelope.payload)
      if (Exit.isExit(decoded) && Exit.isSuccess(decoded)) return startHandler(runner, job, envelope, decoded.value)
      return Effect.matchEffect(decoded, {
        onFailure: (error: Schema.SchemaError) => {
          const path = issuePath(error.issue)
          return finishWith(
            runner,
            job,
            undecodable(job, "payload", path === "" ? error.message : `at "${path}": ${error.message}`)
          )
        },
        onSuccess: (payload: unknown) => startHandler(runner, job, envelope, payload)
      })
    }

    /** Runs the handler of a decoded message, or dead-letters the message when it is too old. */
    const startHandler = (
      runner: Runner,
      job: Job,
      envelope: Envelope,
      payload: unknown
    ): Effect.Effect<void, never, unknown> => {
      const delivery = job.delivery
      const registered = job.registered!
      const eta = envelope.eta ?? envelope.enqueuedAt
      const message: Message = {
        id: envelope.id,
        actor: envelope.actor,
        queue: envelope.queue,
        payload,
        enqueuedAt: envelope.enqueuedAt,
        eta,
        priority: envelope.priority ?? 0,
        options: envelope.options ?? noOptions,
        attempts: delivery.attempts,
        lastError: delivery.lastError
      }
      job.message = message
      const actor = registered.actor
      const now = clock.currentTimeMillisUnsafe()
      if (now - eta > actor.maxAgeMillis) {
        const error = new MaxAgeExceeded({
          actor: actor.name,
          messageId: message.id,
          ageMillis: now - eta,
          maxAgeMillis: actor.maxAgeMillis
        })
        return finishWith(runner, job, deadLetter(delivery, message, lastError(error), "too old", false))
      }
      job.startedAt = now
      if (Number.isFinite(actor.timeLimitMillis)) {
        job.deadline = now + actor.timeLimitMillis
        watchdog.watch(job, actor.timeLimitMillis)
      }
      return onEvent === undefined ?
        runner.run :
        Effect.andThen(annotate(job, emit({ _tag: "Started", message })), runner.run)
    }

    // ---- runners: `concurrency` long-lived fibers take deliveries from the buffer (no fiber per message) ----
    /**
     * A long-lived fiber running one message at a time. Its loop step, the handler's context and the handler's
     * continuations are made once, when the runner is spawned, and read the runner's current `job`: the usual path
     * of a message allocates no closures.
     */
    interface Runner {
      job: Job | undefined
      fiber: Fiber.Fiber<never> | undefined
      /** The context the runner's fiber had before the current handler's context replaced it. */
      outer: Context.Context<never> | undefined
      /** One turn of the loop: the next buffered delivery (or a wait for one), run to its settlement. */
      readonly step: Effect.Effect<void, never, unknown>
      /** Runs a delivery. */
      readonly start: (delivery: Delivery) => Effect.Effect<void, never, unknown>
      /** Runs the current job's handler in its context (`handlerContext`), then records its outcome. */
      readonly run: Effect.Effect<void, never, unknown>
    }
    /** Runners waiting for a delivery. */
    const idle: Array<(delivery: Delivery) => void> = []

    /** Waits until `dispatch` hands this fiber a delivery. */
    const awaitDelivery: Effect.Effect<Delivery> = Effect.callback<Delivery>((resume) => {
      const waiter = (delivery: Delivery) => resume(Effect.succeed(delivery))
      idle.push(waiter)
      return Effect.sync(() => {
        const index = idle.indexOf(waiter)
        if (index !== -1) idle.splice(index, 1)
      })
    })

    const finishJob = (runner: Runner, job: Job, settlement: Settlement) => {
      runner.job = undefined
      job.finished = true
      running--
      if (settlement._tag === "Release") releasedCount++
      else finishedCount++
      settled(job.delivery, settlement)
      if (running === 0 && onIdle !== undefined) onIdle()
    }

    const makeRunner = (): Runner => {
      /** The runner's fiber, as seen by the handler's start. */
      let self: Fiber.Fiber<unknown, unknown> | undefined
      /** Leaves the handler's context: back to the runner's own. */
      const leave = () => {
        self!.setContext(runner.outer!)
        runner.outer = undefined
        return runner.job!
      }
      // The handler runs with its context set on the runner's fiber, and the outcome's continuations restore the
      // runner's context: like `Effect.updateContext`, without a finalizer and two closures per message. A handler
      // interrupted halfway ends the runner's fiber, so no context outlives it.
      const enter = Effect.withFiber((fiber): Effect.Effect<unknown, unknown, unknown> => {
        const job = runner.job!
        const message = job.message!
        self = fiber
        runner.outer = fiber.context
        fiber.setContext(handlerContext(job, fiber.context) as Context.Context<never>)
        return job.registered!.run(message.payload, message)
      })
      const runner: Runner = {
        job: undefined,
        fiber: undefined,
        outer: undefined,
        step: Effect.suspend(() => {
          const delivery = stopping ? undefined : nextBuffered()
          return delivery !== undefined ? runner.start(delivery) : Effect.flatMap(awaitDelivery, runner.start)
        }),
        start: (delivery) => {
          const job: Job = {
            delivery,
            registered: undefined,
            message: undefined,
            startedAt: 0,
            deadline: Infinity,
            timedOut: false,
            finished: false,
            fiber: runner.fiber
          }
          runner.job = job
          running++
          return runJob(runner, job)
        },
        run: Effect.matchCauseEffect(enter, {
          onSuccess: (_value: unknown) => {
            const job = leave()
            if (job.timedOut || onEvent !== undefined) return finishWith(runner, job, handlerSucceeded(job))
            finishJob(runner, job, { _tag: "Ack", delivery: job.delivery })
            return Effect.void
          },
          onFailure: (cause: Cause.Cause<unknown>) => {
            const job = leave()
            return finishWith(runner, job, handlerFailed(job, cause))
          }
        })
      }
      return runner
    }

    /** A runner ends only when interrupted: by the time-limit watchdog (then it is replaced) or by shutdown. */
    const runnerExited = (runner: Runner, exit: Exit.Exit<never>): Effect.Effect<void> => {
      const job = runner.job
      const replace = Effect.sync(() => {
        if (!stopping) spawnRunner()
      })
      runners.delete(runner)
      if (job === undefined || job.finished) return replace
      if (job.timedOut && job.message !== undefined) {
        // the watchdog interrupted it: a failed attempt, not a release
        return Effect.andThen(
          Effect.map(
            settleFailure(job.delivery, job.message, job.registered!, failureOf(job, exit)),
            (settlement) => finishJob(runner, job, settlement)
          ),
          replace
        )
      }
      finishJob(runner, job, { _tag: "Release", delivery: job.delivery })
      return Effect.andThen(annotate(job, releasedEvent(job.delivery)), replace)
    }

    /** The runners alive, for shutdown to interrupt. */
    const runners = new Set<Runner>()
    const spawnRunner = () => {
      const runner = makeRunner()
      runners.add(runner)
      runner.fiber = runFork(
        Effect.onExit(
          Effect.forever(runner.step, { disableYield: true }),
          (exit) => runnerExited(runner, exit)
        ) as Effect.Effect<
          never,
          never,
          Requirements<Handlers>
        >
      )
    }

    /**
     * Hands buffered deliveries to idle runners. Called after each take, the only time the buffer grows; a runner
     * parks only when the buffer is empty, so no runner idles while deliveries wait. A runner that finishes a message
     * pulls the next buffered one itself, and a settlement wakes no other runner: a resumed runner runs at once, so
     * while its handler runs synchronously the others stay parked (one wake-up per batch, not one per message), and
     * when it suspends, this loop goes on to the next idle runner.
     */
    const dispatch = () => {
      while (!stopping && idle.length > 0 && buffered() > 0) idle.pop()!(nextBuffered()!)
    }

    // ---- taking ----
    /** Waits until a handler slot frees or a settlement arrives (re-checked when parking, so no wake-up is missed). */
    const park = (state: QueueState) =>
      Effect.callback<void>((resume) => {
        if (capacity - held.size > 0 || (state.pending.length > 0 && !state.flushing)) {
          resume(Effect.void)
          return
        }
        state.wake = () => resume(Effect.void)
        return Effect.sync(() => {
          state.wake = undefined
        })
      })

    const takeLoop = (state: QueueState): Effect.Effect<never> => {
      let expectMore = true
      const once: Effect.Effect<void, BrokerError> = Effect.suspend(() => {
        // Takes of different queues may overlap and together overshoot `capacity` a little; the surplus waits in
        // the buffer with its lease extended. Reserving capacity for a blocking take would starve the other queues.
        const free = capacity - held.size
        if (free <= 0) {
          if (state.pending.length > 0 && !state.flushing) {
            state.flushing = true
            return flush(state)
          }
          return park(state)
        }
        const settle = state.pending
        state.pending = []
        state.blocking = !expectMore
        return broker.take({
          queue: state.queue,
          max: free,
          lease: leaseMillis,
          wait: expectMore ? 0 : idleWait,
          settle
        }).pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => {
              state.blocking = false
              if (Exit.isFailure(exit) && settle.length > 0) {
                retryLater(settle)
                state.pending = settle.concat(state.pending)
              }
            })
          ),
          Effect.flatMap((taken) => {
            // a full batch suggests more are ready: ask again at once; otherwise block until something arrives
            expectMore = taken.deliveries.length >= free
            for (const delivery of taken.deliveries) {
              held.set(delivery.id, delivery)
              buffer.push(delivery)
            }
            dispatch()
            return Effect.andThen(outageEnded(state), recorded(settle, taken.rejected))
          }),
          Effect.tapError((error) => outageStarted(state, "take", error))
        )
      })
      return once.pipe(
        Effect.retry(brokerBackoff),
        Effect.catch(() => Effect.void),
        Effect.forever,
        Effect.annotateLogs({ queue: state.queue })
      )
    }

    // ---- leases ----
    /** Extension failed and none has succeeded since: logged once. */
    let extendOutage = false
    const extendLeases = Effect.suspend(() => {
      if (held.size === 0) return Effect.void
      return broker.extend([...held.values()], leaseMillis).pipe(
        Effect.flatMap((lost) => {
          for (const id of lost) held.delete(id)
          const recovered = extendOutage ? Effect.logInfo("Leases extended again") : Effect.void
          extendOutage = false
          return Effect.andThen(
            recovered,
            Effect.forEach(lost, (messageId) =>
              Effect.logWarning(
                "Lease lost while the handler was running; its outcome will be rejected and the message will run again"
              ).pipe(Effect.annotateLogs({ messageId })), { discard: true })
          )
        }),
        Effect.catch((error: BrokerError) => {
          if (extendOutage) return Effect.void
          extendOutage = true
          return Effect.logWarning("Could not extend leases; trying again every third of the lease", error)
        })
      )
    })
    /** Extends every third of the lease; a failed extension is tried again at the next turn, not at once. */
    const leaseKeeper = extendLeases.pipe(
      Effect.delay(Math.max(1, Math.floor(leaseMillis / 3))),
      Effect.forever
    )

    // ---- lifecycle ----
    for (let i = 0; i < concurrency; i++) spawnRunner()
    const loops = yield* Effect.forEach(
      [...states.values()],
      (state) => Effect.forkDetach(takeLoop(state)),
      { concurrency: "unbounded" }
    )
    const keeper = yield* Effect.forkDetach(leaseKeeper)

    /** Waits until no handler runs. */
    const untilIdle = Effect.callback<void>((resume) => {
      if (running === 0) return resume(Effect.void)
      onIdle = () => resume(Effect.void)
      return Effect.sync(() => {
        onIdle = undefined
      })
    })
    /** Runs a step of shutdown for at most `millis`: true when it finished in time. */
    const within = (millis: number, step: Effect.Effect<void>): Effect.Effect<boolean> =>
      Effect.interruptible(step).pipe(
        Effect.timeoutOption(millis),
        Effect.map((done) => done._tag === "Some")
      )

    /**
     * Shutdown: stop taking, release prefetched messages, let handlers finish for `shutdownTimeout`, interrupt the
     * rest and record what they leave behind for at most `releaseTimeout`. Every step is bounded, so the worker stops
     * even if a handler ignores interruption or the broker is down; what it could not release comes back when its
     * lease lapses.
     */
    const shutdown = Effect.gen(function*() {
      stopping = true
      for (const loop of loops) loop.interruptUnsafe()
      // prefetched messages go back at once
      for (let delivery = nextBuffered(); delivery !== undefined; delivery = nextBuffered()) {
        releasedCount++
        settled(delivery, { _tag: "Release", delivery })
        yield* releasedEvent(delivery).pipe(Effect.annotateLogs({ queue: delivery.queue, messageId: delivery.id }))
      }
      if (!(yield* within(shutdownTimeout, untilIdle))) {
        yield* Effect.logWarning(`${running} handler(s) still running after the shutdown timeout; interrupting them`)
      }
      const deadline = clock.currentTimeMillisUnsafe() + releaseTimeout
      for (const runner of runners) runner.fiber?.interruptUnsafe()
      const stopped = yield* within(releaseTimeout, untilIdle)
      keeper.interruptUnsafe()
      watchdog.stop()
      const recorded = yield* within(
        Math.max(0, deadline - clock.currentTimeMillisUnsafe()),
        Effect.forEach(stateList, (state) => {
          state.flushing = true
          return flush(state)
        }, { concurrency: "unbounded", discard: true })
      )
      const unsettled = stateList.reduce((n, state) => n + state.pending.length, 0)
      const abandoned = running + (recorded ? 0 : unsettled)
      const summary = `Worker stopped: ${finishedCount} message(s) finished, ${releasedCount} released`
      yield* abandoned === 0 && stopped
        ? Effect.logInfo(summary)
        : Effect.logWarning(
          `${summary}; ${running} handler(s) ignored interruption and ${
            recorded ? 0 : unsettled
          } outcome(s) could not be recorded in time: their messages come back when their leases lapse`
        )
    }).pipe(Effect.annotateLogs({ module: "Worker" }))

    yield* Effect.addFinalizer(() => shutdown)
    yield* Effect.logDebug(`Worker started on ${queues.join(", ")} (concurrency ${concurrency})`)
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
