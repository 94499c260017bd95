/**
 * The runners: `concurrency` long-lived fibers that take deliveries from the worker's buffer and run them to their
 * settlement, one at a time (no fiber per message), with one time-limit watchdog for all of them.
 *
 * @internal
 */
import { Cause, type Context, Effect, Exit, type Fiber, Schema } from "effect"
import type { Settlement } from "../../Broker.ts"
import { DeliveryLimitExceeded, issuePath, MaxAgeExceeded, UnknownActor } from "../../ErrandError.ts"
import { Envelope, type Message } from "../../Message.ts"
import { isEnvelope } from "../envelope.ts"
import { lastError } from "../failure.ts"
import * as MiddlewareHooks from "../middleware.ts"
import * as Payload from "../payload.ts"
import * as Watchdog from "../watchdog.ts"
import type { Job, WorkerContext } from "./context.ts"
import type { Outcomes } from "./outcome.ts"
import type { Settlements } from "./settlement.ts"

const decodeEnvelope = Schema.decodeUnknownExit(Envelope)

const noOptions: Message["options"] = {}

/**
 * A long-lived fiber running one message at a time. Its loop step, the handler's context and the handler's
 * continuations are made once, when the runner is spawned, and read the runner's current `job`: the usual path
 * of a message allocates no closures.
 *
 * @internal
 */
export interface Runner {
  job: Job | undefined
  fiber: Fiber.Fiber<never> | undefined
  /** The context the runner's fiber had before the current handler's context replaced it. */
  outer: Context.Context<never> | undefined
  /** One turn of the loop: the next buffered delivery (or a wait for one), run to its settlement. */
  readonly step: Effect.Effect<void, never, unknown>
  /** Runs a buffered job. */
  readonly start: (job: Job) => Effect.Effect<void, never, unknown>
  /** Runs the current job's handler in its context (`handlerContext`), then records its outcome. */
  readonly run: Effect.Effect<void, never, unknown>
}

/** @internal */
export interface Runners {
  /** Starts a runner. */
  readonly spawn: () => void
  /** The runners alive, for shutdown to interrupt. */
  readonly alive: ReadonlySet<Runner>
  /**
   * Hands buffered deliveries to idle runners. Called after each take, the only time the buffer grows; a runner
   * parks only when the buffer is empty, so no runner idles while deliveries wait. A runner that finishes a message
   * pulls the next buffered one itself, and a settlement wakes no other runner: a resumed runner runs at once, so
   * while its handler runs synchronously the others stay parked (one wake-up per batch, not one per message), and
   * when it suspends, this loop goes on to the next idle runner.
   */
  readonly dispatch: () => void
  /** Stops the time-limit watchdog (shutdown). */
  readonly stopWatchdog: () => void
}

/** @internal */
export const make = (ctx: WorkerContext, settlements: Settlements, outcomes: Outcomes): Runners => {
  const { clock, middlewares, registry, state: worker } = ctx
  const maxLostLeases = ctx.settings.maxLostLeases
  const { annotate, deadLetter, undecodable } = outcomes

  /** Time limits: one watchdog for all running handlers, not a timer per message. */
  const watchdog = Watchdog.make<Job>({
    clock,
    fork: ctx.runSystem,
    expired: (job) => {
      job.timedOut = true
      job.fiber?.interruptUnsafe()
    }
  })

  /** Runners waiting for a delivery. */
  const idle: Array<(job: Job) => void> = []

  /** Waits until `dispatch` hands this fiber a job. */
  const awaitDelivery: Effect.Effect<Job> = Effect.callback<Job>((resume) => {
    const waiter = (job: Job) => resume(Effect.succeed(job))
    idle.push(waiter)
    return Effect.sync(() => {
      const index = idle.indexOf(waiter)
      if (index !== -1) idle.splice(index, 1)
    })
  })

  const finishJob = (runner: Runner, job: Job, settlement: Settlement) => {
    runner.job = undefined
    job.finished = true
    worker.running--
    switch (settlement._tag) {
      case "Ack":
        worker.succeededCount++
        break
      case "Retry":
        worker.retriedCount++
        break
      case "DeadLetter":
        worker.deadLetteredCount++
        break
      case "Release":
        worker.releasedCount++
        break
    }
    settlements.settled(job, settlement)
    if (middlewares.length > 0) {
      const outcome = MiddlewareHooks.outcomeOf(settlement, job.registered?.actor.name)
      ctx.runSystem(MiddlewareHooks.afterSettle(middlewares, outcome))
    }
    if (worker.running === 0 && worker.onIdle !== undefined) worker.onIdle()
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
    job.envelope = envelope
    // A simple payload codec has a compiled decoder; `invalid` (or none) leaves it to the Schema decode.
    const fast = registered.decodePayloadFast
    if (fast !== undefined) {
      const payload = fast(envelope.payload)
      if (payload !== Payload.invalid) return startHandler(runner, job, envelope, payload)
    }
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
      limits: envelope.limits,
      attempts: delivery.attempts,
      lastError: delivery.lastError,
      key: envelope.key
    }
    job.message = message
    const actor = registered.actor
    const now = clock.currentTimeMillisUnsafe()
    const maxAgeMillis = envelope.limits?.maxAge ?? actor.maxAgeMillis
    if (now - eta > maxAgeMillis) {
      const error = new MaxAgeExceeded({
        actor: actor.name,
        messageId: message.id,
        ageMillis: now - eta,
        maxAgeMillis
      })
      return finishWith(
        runner,
        job,
        Effect.andThen(
          outcomes.finalFailure(job, error),
          deadLetter(delivery, message, lastError(error), "too old", false)
        )
      )
    }
    job.startedAt = now
    const timeLimitMillis = envelope.limits?.timeLimit ?? actor.timeLimitMillis
    if (Number.isFinite(timeLimitMillis)) {
      job.deadline = now + timeLimitMillis
      watchdog.watch(job, timeLimitMillis)
    }
    return !ctx.listening ?
      runner.run :
      Effect.andThen(annotate(job, ctx.emit({ _tag: "Started", message })), runner.run)
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
      fiber.setContext(outcomes.handlerContext(job, fiber.context) as Context.Context<never>)
      const run = job.registered!.run(message.payload, message)
      return middlewares.length === 0 ? run : MiddlewareHooks.aroundHandler(middlewares, message, run)
    })
    /** Waits for `dispatch` to hand this runner a delivery, then runs it. */
    const wait: Effect.Effect<void, never, unknown> = Effect.flatMap(
      awaitDelivery,
      (job) => runner.start(job)
    )
    /** The runner's next turn: the next buffered delivery, or a wait for one. */
    const next = (): Effect.Effect<void, never, unknown> => {
      const job = worker.stopping ? undefined : worker.nextBuffered()
      return job !== undefined ? runner.start(job) : wait
    }
    const runner: Runner = {
      job: undefined,
      fiber: undefined,
      outer: undefined,
      step: Effect.suspend(next),
      start: (job) => {
        job.fiber = runner.fiber
        runner.job = job
        worker.running++
        return runJob(runner, job)
      },
      run: Effect.matchCauseEffect(enter, {
        onSuccess: (value: unknown) => {
          const job = leave()
          const envelope = job.envelope!
          if (
            job.timedOut || ctx.listening || job.registered!.resultTtlMillis !== undefined ||
            envelope.onSuccess !== undefined || envelope.pipeline !== undefined || envelope.group !== undefined
          ) {
            return finishWith(runner, job, outcomes.succeeded(job, value))
          }
          finishJob(runner, job, { _tag: "Ack", delivery: job.delivery })
          // straight on to the next turn, without a round of the runner's loop
          return next()
        },
        onFailure: (cause: Cause.Cause<unknown>) => {
          const job = leave()
          return finishWith(runner, job, outcomes.failed(job, cause))
        }
      })
    }
    return runner
  }

  const alive = new Set<Runner>()

  /** A runner ends only when interrupted: by the time-limit watchdog (then it is replaced) or by shutdown. */
  const runnerExited = (runner: Runner, exit: Exit.Exit<never>): Effect.Effect<void> => {
    const job = runner.job
    const replace = Effect.sync(() => {
      if (!worker.stopping) spawn()
    })
    alive.delete(runner)
    if (job === undefined || job.finished) return replace
    if (job.timedOut && job.message !== undefined) {
      // the watchdog interrupted it: a failed attempt, not a release
      return Effect.andThen(
        Effect.map(
          outcomes.settleFailure(job, outcomes.failureOf(job, exit)),
          (settlement) => finishJob(runner, job, settlement)
        ),
        replace
      )
    }
    finishJob(runner, job, { _tag: "Release", delivery: job.delivery })
    return Effect.andThen(annotate(job, outcomes.released(job.delivery)), replace)
  }

  const spawn = () => {
    const runner = makeRunner()
    alive.add(runner)
    runner.fiber = ctx.runHandlers(
      Effect.onExit(
        Effect.forever(runner.step, { disableYield: true }),
        (exit) => runnerExited(runner, exit)
      )
    )
  }

  const dispatch = () => {
    while (!worker.stopping && idle.length > 0 && worker.buffered() > 0) idle.pop()!(worker.nextBuffered()!)
  }

  return { spawn, alive, dispatch, stopWatchdog: () => watchdog.stop() }
}
