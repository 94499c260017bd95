/**
 * The message envelope: what an actor's `send` puts on a queue, and Errand's wire format.
 *
 * **Wire format**
 *
 * A message travels as a JSON object, so any language can produce one:
 *
 * | field        | type              | meaning                                                                      |
 * | ------------ | ----------------- | ---------------------------------------------------------------------------- |
 * | `id`         | string            | unique id; stays the same across retries                                     |
 * | `actor`      | string            | the actor's name                                                             |
 * | `queue`      | string            | the queue it is sent to                                                      |
 * | `payload`    | JSON              | the payload, encoded by the actor's payload schema (`Schema.toCodecJson`)    |
 * | `enqueuedAt` | number            | when it was sent, epoch milliseconds                                         |
 * | `eta`        | number, optional  | when it becomes due, epoch milliseconds; absent means `enqueuedAt`           |
 * | `priority`   | number, optional  | lower runs first (as in Dramatiq and BullMQ); absent means `0`               |
 * | `options`    | object, optional  | per-message options read by the worker and by later features                 |
 * | `key`        | string, optional  | the idempotency key it was sent with (see `Broker`)                          |
 * | `keyTtl`     | number, optional  | how long its key stays held after it finished, milliseconds                  |
 *
 * Fields at their default are left out to keep messages small. The envelope never changes after it is sent: the
 * attempt count and the last error are delivery metadata kept by the broker (see `Broker.Delivery`).
 *
 * A producer in another language hands the broker the JSON above together with its `id`, `queue`, `priority` and `eta`
 * (see `Broker.Outgoing`).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The schema of the message envelope, the wire format described in the module docs. Its `payload` is the encoded
 * payload (`unknown` here); the actor's schema decodes it.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Envelope = Schema.Struct({
  id: Schema.String,
  actor: Schema.String,
  queue: Schema.String,
  payload: Schema.Unknown,
  enqueuedAt: Schema.Number,
  eta: Schema.optionalKey(Schema.Number),
  priority: Schema.optionalKey(Schema.Number),
  options: Schema.optionalKey(Schema.Record(Schema.String, Schema.Unknown)),
  key: Schema.optionalKey(Schema.String),
  keyTtl: Schema.optionalKey(Schema.Number)
})

/**
 * The envelope as it travels: a plain JSON-compatible object.
 *
 * @category models
 * @since 0.1.0
 */
export type Envelope = typeof Envelope.Type

/**
 * The last failure of a message, as recorded by the broker when it is retried or dead-lettered.
 *
 * @category models
 * @since 0.1.0
 */
export interface LastError {
  /** The error's `_tag`, or `"Defect"` / `"Interrupted"`. */
  readonly tag: string
  readonly message: string
}

/**
 * A typed message: the envelope with its payload decoded, as returned by `actor.send` and seen by handlers.
 * `Success` is the actor's result type, kept for typed results.
 *
 * @category models
 * @since 0.1.0
 */
export interface Message<out Payload = unknown, out Success = unknown> {
  readonly id: string
  readonly actor: string
  readonly queue: string
  readonly payload: Payload
  /** When the message was sent, epoch milliseconds. */
  readonly enqueuedAt: number
  /** When the message became (or becomes) due, epoch milliseconds. */
  readonly eta: number
  readonly priority: number
  readonly options: { readonly [key: string]: unknown }
  /** Failed attempts so far: 0 on the first run, 1 on the first retry, … */
  readonly attempts: number
  /** Why the previous attempt failed, on a retry. */
  readonly lastError?: LastError | undefined
  /** The idempotency key it was sent with, if any. */
  readonly key?: string | undefined
  /**
   * `true` when a `send` was suppressed because its key was held: nothing was enqueued, and `id` is the id of the
   * message that holds the key (the other fields are those of this send; `Actor.enqueue` of it resends this send).
   */
  readonly duplicate?: boolean | undefined
  /** Phantom: the actor's success type. */
  readonly "~errand/Message/Success"?: (_: never) => Success
}
