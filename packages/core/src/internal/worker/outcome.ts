/**
 * How a run ends: the settlement of a job (ack, retry, dead letter or release), with the events and logs that go with
 * it, and the log annotations and context a job's effects run with.
 *
 * @internal
 */
import { Cause, Clock, Context, Effect, Exit, References } from "effect"
import type * as Actor from "../../Actor.ts"
import type { Delivery, Outgoing, Settlement } from "../../Broker.ts"
import { HandlerDefect, MessageDecodeError, RetryLater, TimeLimitExceeded } from "../../ErrandError.ts"
import * as Group from "../../Group.ts"
import type { Envelope, LastError, Message, Target } from "../../Message.ts"
import type { Stored } from "../../Results.ts"
import { describe, isTagged, lastError } from "../failure.ts"
import { messageId } from "../id.ts"
import { decide, decideLater, withLimits } from "../retry.ts"
import { CurrentMessage, type Job, type Registered, type WorkerContext } from "./context.ts"
import { followUpKey, followUpKeyTtl, groupCallbackKey } from "./followUpKeys.ts"
import { brokerBackoff } from "./settlement.ts"

/** A failed attempt: the handler's typed error, the time limit, or a defect. */
type Failure = Actor.Failure<unknown> & { readonly _tag: string }

/** @internal */
export interface Outcomes {
  /** The settlement of a failed attempt: a retry after the actor's backoff, or a dead letter. */
  readonly settleFailure: (job: Job, failure: Failure) => Effect.Effect<Settlement>
  /** Dead-letters a delivery; `ran` says whether it ran the handler (a dead letter counts handler runs). */
  readonly deadLetter: (
    delivery: Delivery,
    message: Message | undefined,
    reason: LastError,
    why: string,
    ran: boolean,
    level?: "Info" | "Error"
  ) => Effect.Effect<Settlement>
  /** A message whose envelope or payload cannot be decoded: dead-lettered unrun. */
  readonly undecodable: (job: Job, part: "envelope" | "payload", issue: string) => Effect.Effect<Settlement>
  /**
   * The settlement of a handler that returned `value` (a failure if the time limit interrupted it first). For an
   * actor that stores results, the value is encoded and stored before the ack; a value its `success` schema cannot
   * encode fails the attempt.
   */
  readonly succeeded: (job: Job, value: unknown) => Effect.Effect<Settlement>
  /**
   * What follows a message's final failure, before it is dead-lettered: its result is stored (for an actor that
   * stores results) and its `onFailure` callback is sent.
   */
  readonly finalFailure: (job: Job, failure: { readonly _tag: string }) => Effect.Effect<void>
  /** The settlement of a handler that failed, died or was interrupted. */
  readonly failed: (job: Job, cause: Cause.Cause<unknown>) => Effect.Effect<Settlement>
  /** What a run that ended with `exit` failed with. */
  readonly failureOf: (job: Job, exit: Exit.Exit<unknown, unknown>) => Failure
  /** A delivery goes back to its queue unrun or unfinished (shutdown): the `Released` event. */
  readonly released: (delivery: Delivery) => Effect.Effect<void>
  /** Runs `effect` with the job's log annotations: actor (once known), queue, message id, attempt (1-based). */
  readonly annotate: <A, E, R>(job: Job, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * The context a handler runs in: `CurrentMessage` and the job's log annotations, added in one step (the same
   * annotations `annotate` adds, without a second context update per message).
   */
  readonly handlerContext: (job: Job, context: Context.Context<never>) => Context.Context<unknown>
}

/** @internal */
export const make = (ctx: WorkerContext): Outcomes => {
  const { clock, emit } = ctx

  const settleFailure = (job: Job, failure: Failure): Effect.Effect<Settlement> => {
    const delivery = job.delivery
    const message = job.message!
    const registered = job.registered!
    const attempts = delivery.attempts + 1
    const error = lastError(failure)
    const policy = withLimits(registered.retryPolicy, message.limits)
    // a handler that asked to run again later: its delay, no backoff, logged as what it is, not as an error
    const later = failure instanceof RetryLater
    const decided = later
      ? decideLater(policy, failure, attempts, failure.delayMillis)
      : decide(policy, failure, attempts)
    return Effect.flatMap(decided, (decision) => {
      if (decision._tag === "Retry") {
        const eta = clock.currentTimeMillisUnsafe() + decision.delayMillis
        return Effect.as(
          Effect.andThen(
            later
              ? Effect.logInfo(
                `Retrying later, as the handler asked (attempt ${attempts}): in ${decision.delayMillis} ms`
              )
              : Effect.logWarning(
                `Failed (attempt ${attempts}); retrying in ${decision.delayMillis} ms: ${error.message}`
              ),
            emit({ _tag: "Retrying", message, error, attempts, delayMillis: decision.delayMillis })
          ),
          { _tag: "Retry", delivery, eta, error } satisfies Settlement
        )
      }
      // a failure the actor `throws` is an expected outcome: logged at Info, as Dramatiq does
      return Effect.andThen(
        finalFailure(job, failure),
        decision.why === "throws"
          ? deadLetter(delivery, message, error, "throws", true, "Info")
          : deadLetter(
            delivery,
            message,
            error,
            decision.why === "exhausted" ? "retries exhausted" : decision.why,
            true
          )
      )
    })
  }

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

  const failureOf = (job: Job, exit: Exit.Exit<unknown, unknown>): Failure => {
    const actor = job.registered!.actor
    const message = job.message!
    if (job.timedOut) {
      return new TimeLimitExceeded({
        actor: actor.name,
        messageId: message.id,
        timeLimitMillis: message.limits?.timeLimit ?? actor.timeLimitMillis
      })
    }
    const cause = Exit.isFailure(exit) ? exit.cause : Cause.empty
    const typed = Cause.findErrorOption(cause)
    return typed._tag === "Some" && isTagged(typed.value)
      ? typed.value as Failure
      : new HandlerDefect({
        actor: actor.name,
        messageId: message.id,
        defect: typed._tag === "Some" ? describe(typed.value) : Cause.pretty(cause)
      })
  }

  /**
   * A message to an actor of a callback or pipeline step, built from what the worker knows (no schema needed), with
   * the idempotency key that makes a re-run of the message that sends it send it once (see `followUpKeys.ts`).
   */
  const follow = (
    target: Target,
    payload: unknown,
    now: number,
    key: string,
    extra?: Partial<Envelope>
  ): Outgoing => {
    const id = messageId()
    const body: { -readonly [K in keyof Envelope]: Envelope[K] } = {
      id,
      actor: target.actor,
      queue: target.queue,
      payload,
      enqueuedAt: now,
      ...extra,
      key,
      keyTtl: followUpKeyTtl
    }
    if (target.priority !== undefined && target.priority !== 0) body.priority = target.priority
    return { id, queue: target.queue, priority: target.priority ?? 0, eta: now, body, key, keyTtl: followUpKeyTtl }
  }

  /** The messages a success sends: its `onSuccess` callback, and its pipeline's next step (carrying the rest). */
  const successors = (job: Job, encoded: unknown, now: number): Array<Outgoing> => {
    const envelope = job.envelope!
    const out: Array<Outgoing> = []
    if (envelope.onSuccess !== undefined) {
      out.push(
        follow(
          envelope.onSuccess,
          { messageId: job.delivery.id, result: encoded },
          now,
          followUpKey(job.delivery.id, "ok")
        )
      )
    }
    const steps = envelope.pipeline
    if (steps !== undefined && steps.length > 0) {
      const extra: { -readonly [K in keyof Envelope]?: Envelope[K] } = {}
      if (steps.length > 1) extra.pipeline = steps.slice(1)
      // a pipeline's failure callback rides along every step
      if (envelope.onFailure !== undefined) extra.onFailure = envelope.onFailure
      out.push(follow(steps[0]!, encoded, now, followUpKey(job.delivery.id, "next"), extra))
    }
    return out
  }

  /**
   * Counts a group member's outcome in the broker (once per member, however often it runs). The member whose record
   * completed the group sends its `onComplete`; the first member that failed for good sends its `onFailure`. Only
   * that member ever sends it: if its worker dies after sending and before acking, it runs again and sends it again
   * (at-least-once, like every follow-up message), and no other member does.
   */
  const memberFinished = (job: Job, succeeded: boolean): Effect.Effect<void> => {
    const group = job.envelope!.group!
    const member = job.delivery.id
    return ctx.broker.recordGroupMember(group.id, member, succeeded, group.size, Group.recordTtl).pipe(
      Effect.tapError((error) =>
        Effect.logWarning("Could not record a group member; trying again with backoff", error)
      ),
      Effect.retry(brokerBackoff),
      Effect.flatMap((counts) => {
        // only the member that completed the group, or failed it first, sends the callback
        const kind = counts.completedBy === member ? "complete" : counts.firstFailed === member ? "failure" : undefined
        const callback = kind === "complete" ? group.onComplete : kind === "failure" ? group.onFailure : undefined
        if (callback === undefined) return Effect.void
        // keyed by the group: the member sends it again only if it runs again (a crash before its ack)
        const key = groupCallbackKey(group.id, kind!)
        const body = typeof callback.body === "object" && callback.body !== null && !Array.isArray(callback.body)
          ? { ...callback.body, key, keyTtl: followUpKeyTtl }
          : callback.body
        return Effect.flatMap(
          Clock.currentTimeMillis,
          (now) =>
            followUp([{
              id: callback.id,
              queue: callback.queue,
              priority: callback.priority,
              eta: now,
              body,
              key,
              keyTtl: followUpKeyTtl
            }])
        )
      }),
      Effect.catch(() => Effect.void)
    )
  }

  /**
   * Enqueues follow-up messages before the message that sends them is settled, retrying a failed enqueue after
   * `brokerBackoff`. A crash in between runs the message again, which sends them again under the same idempotency
   * keys: the broker leaves out those already sent (within `followUpKeyTtl` of their end).
   */
  const followUp = (messages: ReadonlyArray<Outgoing>): Effect.Effect<void> =>
    messages.length === 0 ? Effect.void : ctx.broker.enqueue(messages).pipe(
      Effect.tapError((error) =>
        Effect.logWarning("Could not send follow-up messages; trying again with backoff", error)
      ),
      Effect.retry(brokerBackoff),
      Effect.catch(() => Effect.void)
    )

  /** Stores an outcome, retrying a failed write after `brokerBackoff` (the message is acked only once it is stored). */
  const store = (messageId: string, result: Stored, ttlMillis: number): Effect.Effect<void> =>
    ctx.results === undefined ? Effect.void : ctx.results.put(messageId, result, ttlMillis).pipe(
      Effect.tapError((error) => Effect.logWarning("Could not store a result; trying again with backoff", error)),
      Effect.retry(brokerBackoff),
      Effect.catch(() => Effect.void)
    )

  const finalFailure = (job: Job, failure: { readonly _tag: string }): Effect.Effect<void> => {
    const stored = job.envelope?.group === undefined
      ? storeFailure(job.registered!, job.delivery.id, failure)
      : Effect.andThen(storeFailure(job.registered!, job.delivery.id, failure), memberFinished(job, false))
    const callback = job.envelope?.onFailure
    if (callback === undefined) return stored
    const messageId = job.delivery.id
    const info = { messageId, actor: job.registered!.actor.name, queue: job.delivery.queue, error: lastError(failure) }
    return Effect.andThen(
      stored,
      Effect.flatMap(
        Clock.currentTimeMillis,
        (now) => followUp([follow(callback, info, now, followUpKey(messageId, "fail"))])
      )
    )
  }

  const storeFailure = (
    registered: Registered,
    messageId: string,
    failure: { readonly _tag: string }
  ): Effect.Effect<void> => {
    const ttl = registered.resultTtlMillis
    if (ttl === undefined) return Effect.void
    // the actor's typed error is stored encoded, to be read back typed; anything else as why the message died
    return Effect.matchEffect(registered.encodeError(failure), {
      onFailure: () => store(messageId, { _tag: "Died", ...lastError(failure) }, ttl),
      onSuccess: (error) => store(messageId, { _tag: "Failure", error }, ttl)
    }) as Effect.Effect<void>
  }

  const succeeded = (job: Job, value: unknown): Effect.Effect<Settlement> => {
    job.finished = true
    if (job.timedOut) return settleFailure(job, failureOf(job, Exit.void))
    const ack: Settlement = { _tag: "Ack", delivery: job.delivery }
    const acked = !ctx.listening ? Effect.succeed(ack) : Effect.as(
      emit({
        _tag: "Succeeded",
        message: job.message!,
        durationMillis: clock.currentTimeMillisUnsafe() - job.startedAt
      }),
      ack
    )
    const registered = job.registered!
    const ttl = registered.resultTtlMillis
    const envelope = job.envelope!
    const follows = envelope.onSuccess !== undefined || envelope.pipeline !== undefined
    // a group member counts its success before it is acked: the last one sends the group's onComplete
    const done = envelope.group === undefined ? acked : Effect.andThen(memberFinished(job, true), acked)
    if (ttl === undefined && !follows) return done
    return Effect.matchEffect(registered.encodeSuccess(value), {
      onFailure: (error) =>
        settleFailure(
          job,
          new HandlerDefect({
            actor: registered.actor.name,
            messageId: job.delivery.id,
            defect: `its result does not match the actor's success schema: ${error.message}`
          })
        ),
      onSuccess: (encoded) => {
        const stored = ttl === undefined
          ? Effect.void
          : store(job.delivery.id, { _tag: "Success", value: encoded }, ttl)
        if (!follows) return Effect.andThen(stored, done)
        return Effect.andThen(
          stored,
          Effect.andThen(
            Effect.flatMap(Clock.currentTimeMillis, (now) => followUp(successors(job, encoded, now))),
            done
          )
        )
      }
    }) as Effect.Effect<Settlement>
  }

  const released = (delivery: Delivery): Effect.Effect<void> =>
    Effect.andThen(
      Effect.logDebug("Released to the queue on shutdown"),
      emit({ _tag: "Released", messageId: delivery.id, queue: delivery.queue })
    )

  const failed = (job: Job, cause: Cause.Cause<unknown>): Effect.Effect<Settlement> => {
    job.finished = true
    if (!job.timedOut && ctx.state.stopping && Cause.hasInterruptsOnly(cause)) {
      // interrupted by shutdown, not by the handler: put it back without burning an attempt
      return Effect.as(released(job.delivery), { _tag: "Release", delivery: job.delivery } satisfies Settlement)
    }
    return settleFailure(job, failureOf(job, Exit.failCause(cause)))
  }

  const undecodable = (job: Job, part: "envelope" | "payload", issue: string) =>
    deadLetter(
      job.delivery,
      undefined,
      lastError(new MessageDecodeError({ messageId: job.delivery.id, part, issue })),
      "undecodable",
      false
    )

  const annotate = <A, E, R>(job: Job, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
    const actor = job.registered?.actor.name
    const annotations = { queue: job.delivery.queue, messageId: job.delivery.id, attempt: job.delivery.attempts + 1 }
    return Effect.annotateLogs(effect, actor === undefined ? annotations : { actor, ...annotations })
  }

  /**
   * The log annotations of the last context a handler's context was built on. Contexts are immutable and a runner's
   * own context is the same object for every message, so the lookup runs once per runner context, not per message.
   */
  let annotatedContext: Context.Context<never> | undefined
  let contextAnnotations: Readonly<Record<string, unknown>> = {}

  const handlerContext = (job: Job, context: Context.Context<never>): Context.Context<unknown> => {
    const message = job.message!
    if (context !== annotatedContext) {
      annotatedContext = context
      contextAnnotations = Context.get(context, References.CurrentLogAnnotations)
    }
    return Context.add(
      Context.add(context, References.CurrentLogAnnotations, {
        ...contextAnnotations,
        actor: message.actor,
        queue: job.delivery.queue,
        messageId: job.delivery.id,
        attempt: job.delivery.attempts + 1
      }),
      CurrentMessage,
      message
    ) as Context.Context<unknown>
  }

  return {
    settleFailure,
    finalFailure,
    deadLetter,
    undecodable,
    succeeded,
    failed,
    failureOf,
    released,
    annotate,
    handlerContext
  }
}
