/**
 * Running middleware hooks: `beforeEnqueue` in producers, `aroundHandler` and `afterSettle` in workers.
 *
 * @internal
 */
import { Clock, Effect } from "effect"
import { Broker, type Settlement } from "../Broker.ts"
import { EnqueueVetoed } from "../ErrandError.ts"
import type { Envelope, Message } from "../Message.ts"
import { type Middleware, Middlewares, type Outcome } from "../Middleware.ts"
import { ACTOR, ENVELOPE, type EnvelopeCarrier, LIMITS } from "./carrier.ts"
import * as Check from "./options.ts"
import type { CurrentMessage } from "./worker/context.ts"

/**
 * Runs every middleware's `beforeEnqueue` on each message, in order, and returns the messages as they are to be
 * enqueued: the same objects when nothing changed, rebuilt (with their carried envelope) when a priority or delay did.
 *
 * @internal
 */
export const beforeEnqueue = <M extends Message>(
  middlewares: ReadonlyArray<Middleware>,
  messages: ReadonlyArray<M>,
  now: number
): Effect.Effect<Array<M>, EnqueueVetoed> =>
  Effect.forEach(messages, (message) => {
    let current = message
    return Effect.map(
      Effect.forEach(middlewares, (middleware) => {
        const hook = middleware.beforeEnqueue
        if (hook === undefined) return Effect.void
        return Effect.flatMap(hook(current), (change) => {
          if (change === undefined) return Effect.void
          const priority = Check.priority("send", change.priority, current.priority)
          const delay = Check.duration("send", "delay", change.delay, current.eta - now, 0, false)
          if (typeof priority !== "number" || typeof delay !== "number") {
            const invalid = typeof priority === "number" ? delay : priority
            return Effect.fail(
              new EnqueueVetoed({
                middleware: middleware.name,
                messageId: current.id,
                reason: `its change is invalid: ${(invalid as { readonly message: string }).message}`
              })
            )
          }
          current = rebuild(current, priority, now + delay, change.options)
          return Effect.void
        })
      }, { discard: true }),
      () => current
    )
  })

/**
 * The broker, and messages as the middleware's `beforeEnqueue` leaves them at `now` (the clock's time by default), for
 * `Actor.enqueue`, `sendBatch`, `Pipeline.run` and `Group.run` (the last two enqueue them with envelopes of their
 * own).
 *
 * @internal
 */
export const prepare = <M extends Message>(
  messages: ReadonlyArray<M>,
  now?: number
): Effect.Effect<readonly [ReadonlyArray<M>, Broker["Service"]], EnqueueVetoed, Broker> =>
  Effect.flatMap(Broker, (broker) =>
    Effect.flatMap(Middlewares, (middlewares) =>
      middlewares.length === 0
        ? Effect.succeed([messages, broker] as const)
        : Effect.flatMap(
          now === undefined ? Clock.currentTimeMillis : Effect.succeed(now),
          (at) => Effect.map(beforeEnqueue(middlewares, messages, at), (prepared) => [prepared, broker] as const)
        )))

/** A message (and its carried envelope) with another priority and eta, and more options. */
const rebuild = <M extends Message>(
  message: M,
  priority: number,
  eta: number,
  added: { readonly [key: string]: unknown } | undefined
): M => {
  const carrier = message as M & EnvelopeCarrier
  const envelope: { -readonly [K in keyof Envelope]: Envelope[K] } = { ...carrier[ENVELOPE]! }
  if (priority === 0) delete envelope.priority
  else envelope.priority = priority
  if (eta === envelope.enqueuedAt) delete envelope.eta
  else envelope.eta = eta
  const options = added === undefined ? message.options : { ...message.options, ...added }
  if (added !== undefined && Object.keys(options).length > 0) envelope.options = options
  return {
    ...message,
    priority,
    eta,
    options,
    [ENVELOPE]: envelope,
    [ACTOR]: carrier[ACTOR],
    [LIMITS]: carrier[LIMITS]
  }
}

/**
 * Wraps a handler's run in every middleware's `aroundHandler` (the first middleware outermost).
 *
 * @internal
 */
export const aroundHandler = <A, E, R>(
  middlewares: ReadonlyArray<Middleware>,
  message: Message,
  run: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  // the worker provides `CurrentMessage` to the handler's context, where this runs
  let wrapped = run as Effect.Effect<A, E, R | CurrentMessage>
  for (let i = middlewares.length - 1; i >= 0; i--) {
    const hook = middlewares[i]!.aroundHandler
    if (hook !== undefined) wrapped = hook(message, wrapped)
  }
  return wrapped as Effect.Effect<A, E, R>
}

/**
 * The outcome `afterSettle` sees of a settlement.
 *
 * @internal
 */
export const outcomeOf = (settlement: Settlement, actor: string | undefined): Outcome => {
  const { id: messageId, queue } = settlement.delivery
  switch (settlement._tag) {
    case "Ack":
      return { _tag: "Acked", messageId, queue, actor }
    case "Retry":
      return { _tag: "Retried", messageId, queue, actor, error: settlement.error }
    case "DeadLetter":
      return { _tag: "DeadLettered", messageId, queue, actor, reason: settlement.reason }
    case "Release":
      return { _tag: "Released", messageId, queue, actor }
  }
}

/**
 * Runs every middleware's `afterSettle` for an outcome; failures and defects are logged, never fatal.
 *
 * @internal
 */
export const afterSettle = (middlewares: ReadonlyArray<Middleware>, outcome: Outcome): Effect.Effect<void> =>
  Effect.forEach(middlewares, (middleware) => {
    const hook = middleware.afterSettle
    return hook === undefined ? Effect.void : Effect.catchCause(
      hook(outcome),
      (cause) => Effect.logWarning(`Middleware "${middleware.name}" afterSettle failed`, cause)
    )
  }, { discard: true })
