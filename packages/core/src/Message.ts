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
 * | `options`    | object, optional  | per-message options read by the worker and by later features; `traceparent`: |
 * |              |                   | the W3C trace context of the `send` span (`Tracing`)                         |
 * | `limits`     | object, optional  | per-message overrides of the actor's limits, in milliseconds: `maxRetries`,  |
 * |              |                   | `minBackoff`, `maxBackoff`, `timeLimit`, `maxAge` (each optional)            |
 * | `onSuccess`  | object, optional  | a callback `{actor, queue, priority?}` sent `{messageId, result}` on success  |
 * | `onFailure`  | object, optional  | a callback sent `{messageId, error: {tag, message}}` when it fails for good  |
 * | `pipeline`   | array, optional   | the next steps: the first is sent this message's result, carrying the rest   |
 * | `group`      | object, optional  | `{id, size, onComplete?, onFailure?}`: the group it belongs to (`Group.run`) |
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
import * as Id from "./internal/id.ts"

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
  limits: Schema.optionalKey(Schema.suspend(() => Limits)),
  onSuccess: Schema.optionalKey(Schema.suspend(() => Target)),
  onFailure: Schema.optionalKey(Schema.suspend(() => Target)),
  pipeline: Schema.optionalKey(Schema.Array(Schema.suspend(() => Target))),
  group: Schema.optionalKey(Schema.suspend(() => GroupRef)),
  key: Schema.optionalKey(Schema.String),
  keyTtl: Schema.optionalKey(Schema.Number)
})

/**
 * Where a follow-up message goes: an actor's name and queue, and the priority to send it with. A callback
 * (`onSuccess`, `onFailure`) or a pipeline's next step is sent there by the worker, as a message through the broker.
 *
 * @category schemas
 * @since 0.2.0
 */
export const Target = Schema.Struct({
  actor: Schema.String,
  queue: Schema.String,
  priority: Schema.optionalKey(Schema.Number)
})

/**
 * A follow-up target (see `Target`).
 *
 * @category models
 * @since 0.2.0
 */
export type Target = typeof Target.Type

/**
 * A prebuilt message carried inside another (a group's callbacks): the `Broker.Outgoing` fields less the eta, which is
 * set when it is sent.
 *
 * @category schemas
 * @since 0.2.0
 */
export const Carried = Schema.Struct({
  id: Schema.String,
  queue: Schema.String,
  priority: Schema.Number,
  body: Schema.Unknown
})

/**
 * A prebuilt message carried inside another (see `Carried`).
 *
 * @category models
 * @since 0.2.0
 */
export type Carried = typeof Carried.Type

/**
 * The group a message belongs to (`Group.run`): its id, its size, and the callbacks sent once when every member
 * succeeded (`onComplete`) or when the first member failed for good (`onFailure`).
 *
 * @category schemas
 * @since 0.2.0
 */
export const GroupRef = Schema.Struct({
  id: Schema.String,
  size: Schema.Number,
  onComplete: Schema.optionalKey(Carried),
  onFailure: Schema.optionalKey(Carried)
})

/**
 * The group a message belongs to (see `GroupRef`).
 *
 * @category models
 * @since 0.2.0
 */
export type GroupRef = typeof GroupRef.Type

const nonNegative = Schema.Number.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * Per-message overrides of an actor's limits, as they travel in the envelope (`send(payload, { maxRetries: 1 })`):
 * retry count, backoff bounds, time limit and max age, durations in milliseconds.
 *
 * @category schemas
 * @since 0.2.0
 */
export const Limits = Schema.Struct({
  maxRetries: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  minBackoff: Schema.optionalKey(nonNegative),
  maxBackoff: Schema.optionalKey(nonNegative),
  timeLimit: Schema.optionalKey(Schema.Number.check(Schema.isGreaterThan(0))),
  maxAge: Schema.optionalKey(Schema.Number.check(Schema.isGreaterThan(0)))
})

/**
 * Per-message overrides of an actor's limits (see `Limits`).
 *
 * @category models
 * @since 0.2.0
 */
export type Limits = typeof Limits.Type

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
  /** Per-message overrides of the actor's limits, when the sender gave any. */
  readonly limits?: Limits | undefined
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

/**
 * Whether a string is a valid message id: 1 to 255 printable ASCII characters (space to `~`) other than `"` and `\`
 * (a UUID, a ULID, `order:42/refund` are all valid). Ids made by `send` always are; a broker's `enqueue` refuses a
 * batch holding any other id with a `BrokerError` whose `cause` is an `InvalidMessageId`, and enqueues none of it.
 * Such an id reads the same in JSON, in a Lua pattern and in a Redis key, so every broker hands it back unchanged.
 *
 * @category ids
 * @since 0.1.0
 */
export const isMessageId: (id: unknown) => id is string = Id.isMessageId

/**
 * The message id grammar as a Schema (see `isMessageId`), e.g. to validate ids a producer in another system makes.
 *
 * @category ids
 * @since 0.1.0
 */
export const MessageId = Schema.String.check(Schema.isPattern(Id.ID_PATTERN))
