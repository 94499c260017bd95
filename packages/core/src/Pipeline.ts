/**
 * Pipelines: messages run one after another, each step sent the previous step's result (Dramatiq's `pipeline`).
 *
 * ```ts
 * // create order -> process payment -> send confirmation
 * yield* Pipeline.run(yield* createOrder.message({ cart }), [processPayment, sendConfirmation], {
 *   onFailure: alertAdmin
 * })
 * ```
 *
 * Each step's payload type must be the previous step's success type, or the call does not compile (Dramatiq and
 * BullMQ flows check nothing). When a step succeeds, its worker sends the next step a message whose payload is the
 * step's result (encoded with the step's `success` schema, decoded with the next step's `payload` schema: give them
 * the same schema), before it acks the step. A step that fails for good stops the pipeline: the steps after it never
 * run, and the pipeline's `onFailure` actor is sent `{ messageId, error }`.
 *
 * Only the steps still to come travel with each message (their actor and queue names), never the whole chain
 * re-encoded per hop. Like every follow-up message, the next step is sent before its predecessor is acked: a worker
 * that dies in between sends it again when the step runs again (at-least-once, as every message in Errand).
 *
 * @since 0.2.0
 */
import { Effect, type Schema } from "effect"
import type * as Actor from "./Actor.ts"
import { Broker } from "./Broker.ts"
import type { BrokerError, EnqueueVetoed } from "./ErrandError.ts"
import { envelopeOf, heldBy, toOutgoing, toTarget } from "./internal/carrier.ts"
import { prepare } from "./internal/middleware.ts"
import type { Envelope, Message } from "./Message.ts"

/** An actor as a pipeline step: where to send it, and its payload and success types. */
type Step = Actor.Receiver<never> & { readonly payloadSchema: Schema.Top; readonly successSchema: Schema.Top }

/**
 * What the compiler reports for a step whose payload is not the previous step's success.
 *
 * @category models
 * @since 0.2.0
 */
export interface StepMismatch<Previous, Payload> {
  readonly "~errand/Pipeline/StepMismatch": {
    readonly message: "this step's payload type is not the previous step's success type"
    readonly previousSuccess: Previous
    readonly stepPayload: Payload
  }
}

/**
 * The steps of a pipeline whose first message succeeds with `Previous`, checked one by one: each step must accept
 * the previous step's success, or it becomes a `StepMismatch` (a compile error at that step).
 *
 * @category models
 * @since 0.2.0
 */
export type Steps<Previous, S extends ReadonlyArray<Step>> = S extends readonly [] ? readonly []
  : S extends readonly [infer Head extends Step, ...infer Tail extends ReadonlyArray<Step>] ? readonly [
      [Previous] extends [Head["payloadSchema"]["Type"]] ? Head
        : StepMismatch<Previous, Head["payloadSchema"]["Type"]>,
      ...Steps<Head["successSchema"]["Type"], Tail>
    ]
  : S

/**
 * Options of `Pipeline.run`.
 *
 * @category models
 * @since 0.2.0
 */
export interface Options {
  /** Sent `{ messageId, error }` when a step fails for good (the steps after it never run). */
  readonly onFailure?: Actor.Receiver<Actor.FailureInfo> | undefined
}

/**
 * Sends the first message of a pipeline (built with `actor.message`), carrying the steps that follow it. Returns the
 * first message (marked `duplicate`, with the holder's id, when it was sent with an idempotency key that was held:
 * then nothing was enqueued). Fails at compile time when a step's payload is not the previous step's success.
 *
 * @category sending
 * @since 0.2.0
 */
export const run = <Success, const S extends ReadonlyArray<Step>>(
  first: Message<unknown, Success>,
  steps: S & Steps<Success, S>,
  options?: Options
): Effect.Effect<Message<unknown, Success>, EnqueueVetoed | BrokerError, Broker> =>
  Effect.flatMap(prepare([first]), ([prepared, broker]) => {
    const message = prepared[0]!
    const envelope: { -readonly [K in keyof Envelope]: Envelope[K] } = { ...envelopeOf(message) }
    if (steps.length > 0) envelope.pipeline = (steps as ReadonlyArray<Step>).map(toTarget)
    if (options?.onFailure !== undefined) envelope.onFailure = toTarget(options.onFailure)
    // its idempotency key and limits go with it; a first message whose key was held is returned as `send` does
    return Effect.map(
      broker.enqueue([{ ...toOutgoing(message), body: envelope }]),
      (enqueued) => heldBy(message, enqueued)
    )
  })
