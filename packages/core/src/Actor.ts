/**
 * Actors: named, schema-validated, typed units of background work.
 *
 * An actor is a *definition* — its name, queue, payload/success/error schemas and its retry, time-limit and age
 * options. Producers import the definition to `send` messages; only workers attach a handler with `actor.handle`, so
 * producer code never loads handler code or its services.
 *
 * ```ts
 * export const sendWelcomeEmail = Actor.make("send_welcome_email", {
 *   queue: "email",
 *   payload: Schema.Struct({ userId: Schema.Number }),
 *   error: UserNotFound
 * })
 *
 * yield* sendWelcomeEmail.send({ userId: 1 })                        // Effect<Message, InvalidPayload | BrokerError, Broker>
 * const SendWelcomeEmailLive = sendWelcomeEmail.handle(({ userId }) => ...)  // for Worker.layer({ handlers })
 * ```
 *
 * **Retries** follow Dramatiq: after a failed attempt a message is retried up to `maxRetries` times (default 20, so at
 * most 21 runs) with exponential backoff from `minBackoff` (15 s) to `maxBackoff` (7 days), jittered. Pass `retry` to
 * use any `Schedule` instead (its end is the limit), `retryWhen` to decide per failure, and `throws` for error tags
 * that are never retried. One rule decides: a failure is retried only when its tag is not in `throws`, `retryWhen`
 * (if given) returns true, *and* the limit (`maxRetries`, or the end of `retry`) is not reached — `retryWhen` can
 * stop retries early, never extend them (`maxRetries: Infinity` lifts the limit). The delay is replayed from the attempt count stored with the message, so every process
 * computes the same backoff.
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Exit, type Schedule, Schema } from "effect"
import { type Pipeable, pipeArguments } from "effect/Pipeable"
import {
  Broker,
  type CancelOutcome,
  type Enqueued,
  isValidKey,
  type Limits as BrokerLimits,
  maxKeyLength,
  type Outgoing
} from "./Broker.ts"
import {
  type BrokerError,
  type EnqueueVetoed,
  InvalidName,
  InvalidOption,
  InvalidPayload,
  issuePath,
  MessageFailed,
  ResultDecodeError,
  ResultMissing,
  ResultTimeout,
  type RetryLater,
  type TimeLimitExceeded
} from "./ErrandError.ts"
import type { HandlerDefect } from "./ErrandError.ts"
import { ACTOR, ENVELOPE, type EnvelopeCarrier, heldBy, LIMITS, toOutgoing, toTarget } from "./internal/carrier.ts"
import { enqueueOne } from "./internal/coalesce.ts"
import { messageId } from "./internal/id.ts"
import * as MiddlewareHooks from "./internal/middleware.ts"
import { isValidName } from "./internal/names.ts"
import * as Check from "./internal/options.ts"
import * as PayloadCodec from "./internal/payload.ts"
import { defaultBackoff, type RetryPolicy } from "./internal/retry.ts"
import type { Envelope, Limits, Message } from "./Message.ts"
import { Middlewares } from "./Middleware.ts"
import { defaultTtl, Results } from "./Results.ts"

/**
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId = "~@errand/core/Actor" as const

/**
 * What a failed attempt can fail with: the handler's typed error, the time limit, or a defect.
 *
 * @category models
 * @since 0.1.0
 */
export type Failure<E> = E | TimeLimitExceeded | HandlerDefect

/**
 * The `_tag`s of an error union, for `throws`.
 *
 * @category models
 * @since 0.1.0
 */
export type ErrorTag<E> = E extends { readonly _tag: infer Tag extends string } ? Tag : never

/**
 * An actor that accepts payloads of type `P`: a callback or a pipeline step. Any actor whose payload type is a
 * supertype of `P` is one (the parameter is contravariant), so a callback that does not accept what it will be sent
 * does not compile.
 *
 * @category models
 * @since 0.2.0
 */
export interface Receiver<in P> {
  readonly name: string
  readonly queue: string
  readonly priority: number
  /** Phantom: what the actor accepts. */
  readonly "~errand/Actor/accepts"?: ((payload: P) => void) | undefined
}

/**
 * What an `onSuccess` callback is sent: the id of the message that succeeded and its result (encoded with the actor's
 * `success` schema; decode it with the same schema: `Actor.successPayload(success)`).
 *
 * @category models
 * @since 0.2.0
 */
export interface SuccessInfo<S> {
  readonly messageId: string
  readonly result: S
}

/**
 * What an `onFailure` callback is sent: the id of the message that failed for good, its actor (for a pipeline, the
 * step that failed) and queue, and why, as data.
 *
 * @category models
 * @since 0.2.0
 */
export interface FailureInfo {
  readonly messageId: string
  readonly actor: string
  readonly queue: string
  readonly error: { readonly tag: string; readonly message: string }
}

/**
 * The payload schema of an `onSuccess` callback of actors whose success schema is `success`.
 *
 * @category schemas
 * @since 0.2.0
 */
export const successPayload = <S extends Schema.Top>(success: S) =>
  Schema.Struct({ messageId: Schema.String, result: success })

/**
 * The payload schema of an `onFailure` callback.
 *
 * @category schemas
 * @since 0.2.0
 */
export const FailurePayload = Schema.Struct({
  messageId: Schema.String,
  actor: Schema.String,
  queue: Schema.String,
  error: Schema.Struct({ tag: Schema.String, message: Schema.String })
})

/**
 * Callbacks of a message: actors sent a message, through the broker, once it succeeded or failed for good.
 *
 * @category models
 * @since 0.2.0
 */
export interface Callbacks<S> {
  /** Sent `{ messageId, result }` when the message succeeded. */
  readonly onSuccess?: Receiver<SuccessInfo<S>> | undefined
  /** Sent `{ messageId, actor, queue, error: { tag, message } }` when the message failed for good (dead-lettered). */
  readonly onFailure?: Receiver<FailureInfo> | undefined
}

/**
 * The options of `Actor.make`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<Payload extends Schema.Top, Success extends Schema.Top, Error extends Schema.Top>
  extends Callbacks<Success["Type"]>
{
  /** The payload's schema. `send` encodes with it (rejecting invalid payloads); the worker decodes with it. */
  readonly payload: Payload
  /** The handler's result schema (default `Schema.Void`). */
  readonly success?: Success | undefined
  /** The handler's typed error schema (default `Schema.Never`: the handler can only fail by a defect). */
  readonly error?: Error | undefined
  /** The queue messages are sent to (default `"default"`). */
  readonly queue?: string | undefined
  /** The default priority of its messages: lower runs first (default 0). */
  readonly priority?: number | undefined
  /** Retries after the first run (default 20; `Infinity` for no limit). Ignored when `retry` is given. */
  readonly maxRetries?: number | undefined
  /** The first retry's delay (default 15 seconds). */
  readonly minBackoff?: Duration.Input | undefined
  /** The longest retry delay (default 7 days). */
  readonly maxBackoff?: Duration.Input | undefined
  /** A schedule of retry delays, replacing `maxRetries`/`minBackoff`/`maxBackoff`; when it ends, retries stop. */
  readonly retry?: Schedule.Schedule<unknown, Failure<Error["Type"]>> | undefined
  /**
   * Decides per failure whether to retry (`attempts` counts failed attempts, this one included). It can only stop
   * retries: the limit (`maxRetries`, or the end of `retry`) still applies.
   */
  readonly retryWhen?: ((failure: Failure<Error["Type"]>, attempts: number) => boolean) | undefined
  /** Error tags that are never retried: such a failure is dead-lettered at once. */
  readonly throws?: ReadonlyArray<ErrorTag<Error["Type"]>> | undefined
  /** How long one run may take before its fiber is interrupted (default 10 minutes; `Infinity` for none). */
  readonly timeLimit?: Duration.Input | undefined
  /** How long past its eta a message may wait before it is dead-lettered unrun (default: no limit). */
  readonly maxAge?: Duration.Input | undefined
  /**
   * At most `limit` messages of this actor are started per sliding `window`, across every worker process (the broker
   * holds the others back: they wait in the queue, never costing an attempt).
   */
  readonly rateLimit?: { readonly limit: number; readonly window: Duration.Input } | undefined
  /**
   * At most `limit` messages of this actor run at once across every worker process — per `key(payload)` when given
   * (e.g. per user). A slot held by a killed worker comes back when its lease lapses.
   */
  readonly concurrency?:
    | { readonly limit: number; readonly key?: ((payload: Payload["Type"]) => string) | undefined }
    | undefined
  /**
   * Store each message's outcome for `actor.result` (default: not stored): `true` keeps it 10 minutes (Dramatiq's
   * default), a duration keeps it that long. See `Results`.
   */
  readonly storeResults?: boolean | Duration.Input | undefined
  /**
   * How long a message's idempotency key stays held after the message finished (acked or dead-lettered), unless its
   * send says otherwise with `keyTtl` (default 1 hour; `0` releases the key as the message finishes). See
   * `SendOptions.key`.
   */
  readonly idempotencyWindow?: Duration.Input | undefined
}

/**
 * Options of `actor.result`.
 *
 * @category models
 * @since 0.2.0
 */
export interface ResultOptions {
  /** Wait up to this long for the result, woken by its write (default: do not wait). */
  readonly timeout?: Duration.Input | undefined
}

/**
 * Per-message options of `send`, `sendBatch` and `message`.
 *
 * @category models
 * @since 0.1.0
 */
export interface SendOptions<S = unknown> extends Callbacks<S> {
  /**
   * Run no earlier than this long from now (finite, not negative). The message waits in the broker, not in any
   * process's memory.
   */
  readonly delay?: Duration.Input | undefined
  /** Overrides the actor's priority for this message: lower runs first (an integer within ±2,097,151). */
  readonly priority?: number | undefined
  /** Extra options carried in the envelope for middleware and later features. */
  readonly options?: { readonly [key: string]: unknown } | undefined
  /** Overrides the actor's `maxRetries` for this message (a finite integer ≥ 0). */
  readonly maxRetries?: number | undefined
  /** Overrides the actor's `minBackoff` for this message (Dramatiq's `send_with_options(min_backoff=…)`). */
  readonly minBackoff?: Duration.Input | undefined
  /** Overrides the actor's `maxBackoff` for this message. */
  readonly maxBackoff?: Duration.Input | undefined
  /** Overrides the actor's `timeLimit` for this message. */
  readonly timeLimit?: Duration.Input | undefined
  /** Overrides the actor's `maxAge` for this message. */
  readonly maxAge?: Duration.Input | undefined
  /**
   * An idempotency key: the message is enqueued only if no message of this queue holds the key, that is, none sent
   * with it is ready, delayed, running, or finished less than its window ago. A suppressed send succeeds and returns
   * the message with `duplicate: true` and the `id` of the message that holds the key. 1 to 256 characters of
   * `[A-Za-z0-9_.:@/+=-]`, e.g. `"order-42"`.
   */
  readonly key?: string | undefined
  /** How long the key stays held after the message finished (default: the actor's `idempotencyWindow`). */
  readonly keyTtl?: Duration.Input | undefined
}

/**
 * An actor definition.
 *
 * @category models
 * @since 0.1.0
 */
export interface Actor<
  Name extends string,
  Payload extends Schema.Top,
  Success extends Schema.Top,
  Error extends Schema.Top
> extends Pipeable, Receiver<Payload["Type"]> {
  readonly [TypeId]: typeof TypeId
  readonly name: Name
  readonly queue: string
  readonly priority: number
  readonly payloadSchema: Payload
  readonly successSchema: Success
  readonly errorSchema: Error
  /** The time limit of one run, in milliseconds (`Infinity` for none). */
  readonly timeLimitMillis: number
  /** The maximum age past its eta, in milliseconds (`Infinity` for none). */
  readonly maxAgeMillis: number
  /** How failures are retried. */
  readonly retryPolicy: RetryPolicy<Failure<Error["Type"]>>
  /** How long outcomes are stored, in milliseconds; `undefined` when the actor does not store results. */
  readonly resultTtlMillis: number | undefined
  /** How long an idempotency key stays held after its message finished, in milliseconds (unless a send says). */
  readonly idempotencyWindowMillis: number

  /**
   * Encodes, validates and enqueues one message. A payload that fails the schema fails with `InvalidPayload`.
   * Sends made concurrently (from any fibers) are coalesced into one broker call, so many sends in flight cost one
   * round trip per batch; each `send` still completes only once its message is in the broker. A coalesced batch
   * spanning queues is one broker call per queue, and each `send` fails only when its own queue's call failed; a
   * `BrokerError` whose `applied` is `"unknown"` means the message may have been enqueued.
   */
  send(
    payload: Payload["Type"],
    options?: SendOptions<Success["Type"]>
  ): Effect.Effect<
    Message<Payload["Type"], Success["Type"]>,
    InvalidPayload | InvalidOption | EnqueueVetoed | BrokerError,
    Broker | Payload["EncodingServices"]
  >

  /** Encodes and validates every payload, then enqueues them all in one broker call. Nothing is sent if one is invalid. */
  sendBatch(
    payloads: Iterable<Payload["Type"]>,
    options?: SendOptions<Success["Type"]>
  ): Effect.Effect<
    ReadonlyArray<Message<Payload["Type"], Success["Type"]>>,
    InvalidPayload | InvalidOption | EnqueueVetoed | BrokerError,
    Broker | Payload["EncodingServices"]
  >

  /** Builds a message without sending it (send it later with `Actor.enqueue`). */
  message(
    payload: Payload["Type"],
    options?: SendOptions<Success["Type"]>
  ): Effect.Effect<
    Message<Payload["Type"], Success["Type"]>,
    InvalidPayload | InvalidOption,
    Payload["EncodingServices"]
  >

  /**
   * The result of a message of this actor, typed as its success, failing with its typed error. Without `timeout` it
   * reads what is stored (`ResultMissing` if nothing is yet); with one it waits for the write (`ResultTimeout`). A
   * message that failed for good without a typed error (time limit, defect...) fails with `MessageFailed`. Needs
   * `storeResults` on the actor.
   */
  result(
    message: Message<Payload["Type"], Success["Type"]> | string,
    options?: ResultOptions
  ): Effect.Effect<
    Success["Type"],
    Error["Type"] | ResultMissing | ResultTimeout | MessageFailed | ResultDecodeError | InvalidOption | BrokerError,
    Results | Success["DecodingServices"] | Error["DecodingServices"]
  >

  /**
   * Removes a ready or delayed message of this actor's queue (a retry waiting for its backoff included) and releases
   * its idempotency key: `"cancelled"`. A running message is not interrupted and nothing changes: `"running"` (its
   * outcome is applied as usual). `"notFound"` when it is not queued (finished, dead-lettered, cancelled, unknown).
   */
  cancel(message: Message<Payload["Type"], Success["Type"]> | string): Effect.Effect<CancelOutcome, BrokerError, Broker>

  /** Attaches a handler, for `Worker.layer({ handlers })`. Its services `R` become the worker's requirements. */
  handle<R = never>(
    handler: (
      payload: Payload["Type"],
      message: Message<Payload["Type"], Success["Type"]>
    ) => Effect.Effect<Success["Type"], Error["Type"] | RetryLater, R>
  ): Handler<Actor<Name, Payload, Success, Error>, R>
}

/**
 * Any actor.
 *
 * @category models
 * @since 0.1.0
 */
export interface Any extends Pipeable {
  readonly [TypeId]: typeof TypeId
  readonly name: string
  readonly queue: string
  readonly payloadSchema: Schema.Top
  readonly timeLimitMillis: number
  readonly maxAgeMillis: number
  readonly retryPolicy: RetryPolicy<never>
  readonly successSchema: Schema.Top
  readonly errorSchema: Schema.Top
  readonly resultTtlMillis: number | undefined
}

/**
 * An actor together with the function that runs its messages. Built by `actor.handle`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Handler<out A extends Any, out R> {
  readonly actor: A
  readonly run: (payload: unknown, message: Message) => Effect.Effect<unknown, unknown, R>
}

/**
 * The services a handler needs.
 *
 * @category models
 * @since 0.1.0
 */
export type HandlerServices<H> = H extends Handler<infer A, infer R> ? R | A["payloadSchema"]["DecodingServices"]
  : never

const DEFAULT_MAX_RETRIES = 20
const DEFAULT_MIN_BACKOFF = Duration.seconds(15)
const DEFAULT_MAX_BACKOFF = Duration.days(7)
const DEFAULT_TIME_LIMIT = Duration.minutes(10)
const DEFAULT_IDEMPOTENCY_WINDOW = Duration.hours(1)

/** Returns a checked value, or throws its `InvalidOption`: an actor definition error is reported where it is made. */
const orThrow = <A>(value: A | InvalidOption): A => {
  if (typeof value !== "number") throw value
  return value
}

/** The validated actor options, in milliseconds. */
const actorSettings = (
  options: Pick<
    Options<Schema.Top, Schema.Top, Schema.Top>,
    | "minBackoff"
    | "maxBackoff"
    | "priority"
    | "maxRetries"
    | "timeLimit"
    | "maxAge"
    | "storeResults"
    | "idempotencyWindow"
  >
) => {
  const minBackoff = orThrow(
    Check.duration("actor", "minBackoff", options.minBackoff, Duration.toMillis(DEFAULT_MIN_BACKOFF), 0, false)
  )
  const maxBackoff = orThrow(
    Check.duration("actor", "maxBackoff", options.maxBackoff, Duration.toMillis(DEFAULT_MAX_BACKOFF), minBackoff, false)
  )
  return {
    priority: orThrow(Check.priority("actor", options.priority, 0)),
    maxRetries: orThrow(Check.integer("actor", "maxRetries", options.maxRetries, DEFAULT_MAX_RETRIES, 0, Infinity)),
    minBackoff,
    maxBackoff,
    timeLimit: orThrow(
      Check.duration("actor", "timeLimit", options.timeLimit, Duration.toMillis(DEFAULT_TIME_LIMIT), 1, true)
    ),
    maxAge: orThrow(Check.duration("actor", "maxAge", options.maxAge, Infinity, 1, true)),
    idempotencyWindow: orThrow(
      Check.duration(
        "actor",
        "idempotencyWindow",
        options.idempotencyWindow,
        Duration.toMillis(DEFAULT_IDEMPOTENCY_WINDOW),
        0,
        false
      )
    ),
    resultTtl: options.storeResults === undefined || options.storeResults === false
      ? undefined
      : orThrow(
        Check.duration(
          "actor",
          "storeResults",
          options.storeResults === true ? defaultTtl : options.storeResults,
          1,
          1,
          false
        )
      )
  }
}

/**
 * The validated options of one send: the delay in milliseconds, the priority, the limits it overrides, and its
 * idempotency key with the key's window.
 */
interface SendSettings {
  readonly delay: number
  readonly priority: number
  readonly limits: Limits | undefined
  readonly key?: string | undefined
  readonly keyTtl?: number | undefined
}

const sendSettings = (
  options: SendOptions,
  defaultPriority: number,
  defaultKeyTtl: number
): SendSettings | InvalidOption => {
  const delay = Check.duration("send", "delay", options.delay, 0, 0, false)
  if (typeof delay !== "number") return delay
  const priority = Check.priority("send", options.priority, defaultPriority)
  if (typeof priority !== "number") return priority
  const limits = limitSettings(options)
  if (limits !== undefined && "_tag" in limits) return limits
  if (options.key === undefined && options.keyTtl === undefined) return { delay, priority, limits }
  return keySettings(options, { delay, priority, limits }, defaultKeyTtl)
}

/** The per-message limits a send overrides, validated (`undefined` when it overrides none). */
const limitSettings = (options: SendOptions): Limits | InvalidOption | undefined => {
  if (
    options.maxRetries === undefined && options.minBackoff === undefined && options.maxBackoff === undefined &&
    options.timeLimit === undefined && options.maxAge === undefined
  ) return undefined
  const limits: { -readonly [K in keyof Limits]: Limits[K] } = {}
  const maxRetries = Check.integer("send", "maxRetries", options.maxRetries, -1, 0, Number.MAX_SAFE_INTEGER)
  if (typeof maxRetries !== "number") return maxRetries
  if (maxRetries >= 0) limits.maxRetries = maxRetries
  const minBackoff = Check.duration("send", "minBackoff", options.minBackoff, -1, 0, false)
  if (typeof minBackoff !== "number") return minBackoff
  if (minBackoff >= 0) limits.minBackoff = minBackoff
  const maxBackoff = Check.duration("send", "maxBackoff", options.maxBackoff, -1, Math.max(0, minBackoff), false)
  if (typeof maxBackoff !== "number") return maxBackoff
  if (maxBackoff >= 0) limits.maxBackoff = maxBackoff
  const timeLimit = Check.duration("send", "timeLimit", options.timeLimit, -1, 1, false)
  if (typeof timeLimit !== "number") return timeLimit
  if (timeLimit >= 0) limits.timeLimit = timeLimit
  const maxAge = Check.duration("send", "maxAge", options.maxAge, -1, 1, false)
  if (typeof maxAge !== "number") return maxAge
  if (maxAge >= 0) limits.maxAge = maxAge
  return limits
}

/** Adds the validated idempotency key and its window to a send's settings (`keyTtl` alone is an error). */
const keySettings = (
  options: SendOptions,
  settings: SendSettings,
  defaultKeyTtl: number
): SendSettings | InvalidOption => {
  const key = options.key
  if (!isValidKey(key)) {
    return new InvalidOption({
      of: "send",
      option: "key",
      value: key === undefined ? "undefined" : JSON.stringify(key) ?? String(key),
      expected: `1 to ${maxKeyLength} characters of [A-Za-z0-9_.:@/+=-]` +
        (key === undefined ? " (keyTtl needs a key)" : "")
    })
  }
  const keyTtl = Check.duration("send", "keyTtl", options.keyTtl, defaultKeyTtl, 0, false)
  if (typeof keyTtl !== "number") return keyTtl
  return { ...settings, key, keyTtl }
}

/**
 * Defines an actor. Throws `InvalidName` when the actor or queue name does not match `[a-zA-Z_][a-zA-Z0-9._-]*`, and
 * `InvalidOption` for an option out of range (a priority of 1.5, `maxRetries: -1`, a `minBackoff` above `maxBackoff`,
 * a zero `timeLimit`): a definition error is a programming error, reported where the actor is declared.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <
  const Name extends string,
  Payload extends Schema.Top,
  Success extends Schema.Top = Schema.Void,
  Error extends Schema.Top = Schema.Never
>(name: Name, options: Options<Payload, Success, Error>): Actor<Name, Payload, Success, Error> => {
  if (!isValidName(name)) throw new InvalidName({ kind: "actor", name })
  const queue = options.queue ?? "default"
  if (!isValidName(queue)) throw new InvalidName({ kind: "queue", name: queue })
  const settings = actorSettings(options)
  const defaultPriority = settings.priority
  const successSchema = (options.success ?? Schema.Void) as Success
  const errorSchema = (options.error ?? Schema.Never) as Error
  const payloadCodec = Schema.toCodecJson(options.payload)
  const encodePayload = Schema.encodeEffect(payloadCodec)
  /** The compiled codec of a simple payload schema (`internal/payload.ts`): for those, encoding is the same function. */
  const encodePayloadFast = PayloadCodec.compile(payloadCodec.ast)
  const retryPolicy: RetryPolicy<Failure<Error["Type"]>> = {
    schedule: options.retry ?? defaultBackoff(settings.minBackoff, settings.maxBackoff),
    maxRetries: options.retry === undefined ? settings.maxRetries : undefined,
    retryWhen: options.retryWhen,
    throws: new Set<string>(options.throws ?? []),
    minBackoffMillis: settings.minBackoff,
    maxBackoffMillis: settings.maxBackoff
  }

  type Msg = Message<Payload["Type"], Success["Type"]>

  const defaultSettings: SendSettings = { delay: 0, priority: defaultPriority, limits: undefined }

  const decodeSuccess = Schema.decodeUnknownEffect(Schema.toCodecJson(successSchema))
  const decodeError = Schema.decodeUnknownEffect(Schema.toCodecJson(errorSchema))

  /** Reads (or waits for) a stored result, and turns it back into the handler's success or typed error. */
  const readResult = (messageId: string, resultOptions: ResultOptions | undefined) =>
    Effect.gen(function*() {
      const results = yield* Results
      const timeout = resultOptions?.timeout === undefined
        ? undefined
        : Check.duration("result", "timeout", resultOptions.timeout, 0, 0, true)
      if (timeout !== undefined && typeof timeout !== "number") return yield* Effect.fail(timeout)
      const stored = timeout === undefined ? yield* results.get(messageId) : yield* results.await(messageId, timeout)
      if (stored === undefined) {
        return yield* timeout === undefined
          ? Effect.fail(new ResultMissing({ actor: name, messageId }))
          : Effect.fail(new ResultTimeout({ actor: name, messageId, timeoutMillis: timeout }))
      }
      const undecodable = (error: Schema.SchemaError) =>
        new ResultDecodeError({ actor: name, messageId, issue: error.message })
      switch (stored._tag) {
        case "Success":
          return yield* Effect.mapError(decodeSuccess(stored.value), undecodable)
        case "Failure":
          return yield* Effect.flatMap(Effect.mapError(decodeError(stored.error), undecodable), Effect.fail)
        case "Died":
          return yield* Effect.fail(
            new MessageFailed({ actor: name, messageId, tag: stored.tag, reason: stored.message })
          )
      }
    })

  // limits are checked here, like every actor option: a definition error is reported where the actor is declared
  const rateLimit = options.rateLimit === undefined ? undefined : {
    key: `actor:${name}`,
    limit: orThrow(Check.integer("actor", "rateLimit.limit", options.rateLimit.limit ?? Number.NaN, 1, 1, 1_000_000)),
    windowMillis: orThrow(
      Check.duration("actor", "rateLimit.window", options.rateLimit.window ?? Number.NaN, 1, 1, false)
    )
  }
  const concurrencyLimit = options.concurrency
  if (concurrencyLimit !== undefined) {
    orThrow(Check.integer("actor", "concurrency.limit", concurrencyLimit.limit ?? Number.NaN, 1, 1, 1_000_000))
  }
  /** The limits of a message with this payload, when the actor has any. */
  const limitsOf = rateLimit === undefined && concurrencyLimit === undefined ? undefined : (
    payload: Payload["Type"]
  ): BrokerLimits => ({
    rate: rateLimit,
    concurrency: concurrencyLimit === undefined ? undefined : {
      key: concurrencyLimit.key === undefined ? `actor:${name}` : `actor:${name}:${concurrencyLimit.key(payload)}`,
      limit: concurrencyLimit.limit
    }
  })

  const invalidPayload = (error: Schema.SchemaError) =>
    new InvalidPayload({ actor: name, path: issuePath(error.issue), issue: error.message })

  /** Builds the message of an encoded payload. */
  const assemble = (
    payload: Payload["Type"],
    encoded: unknown,
    sendOptions: SendOptions | undefined,
    checked: SendSettings,
    now: number
  ): Msg => {
    const id = messageId()
    const eta = now + checked.delay
    const priority = checked.priority
    const extra = sendOptions?.options
    const envelope: { -readonly [K in keyof Envelope]: Envelope[K] } = {
      id,
      actor: name,
      queue,
      payload: encoded,
      enqueuedAt: now
    }
    if (eta !== now) envelope.eta = eta
    if (priority !== 0) envelope.priority = priority
    if (extra !== undefined && Object.keys(extra).length > 0) envelope.options = extra
    if (checked.key !== undefined) {
      envelope.key = checked.key
      envelope.keyTtl = checked.keyTtl!
    }
    if (checked.limits !== undefined) envelope.limits = checked.limits
    const onSuccess = sendOptions?.onSuccess ?? options.onSuccess
    if (onSuccess !== undefined) envelope.onSuccess = toTarget(onSuccess)
    const onFailure = sendOptions?.onFailure ?? options.onFailure
    if (onFailure !== undefined) envelope.onFailure = toTarget(onFailure)
    const message: Msg & EnvelopeCarrier = {
      id,
      actor: name,
      queue,
      payload,
      enqueuedAt: now,
      eta,
      priority,
      options: extra ?? {},
      limits: checked.limits,
      attempts: 0,
      [ENVELOPE]: envelope,
      [ACTOR]: self
    }
    if (limitsOf !== undefined) (message as { [LIMITS]?: BrokerLimits })[LIMITS] = limitsOf(payload)
    if (checked.key !== undefined) return { ...message, key: checked.key }
    return message
  }

  /**
   * Builds the message of a payload. Schema returns an `Exit` when the payload encodes synchronously: then the
   * message is built at once (`sync`); otherwise (an asynchronous or service-needing schema, or an invalid payload)
   * the encoding effect is used as it is, so a payload is encoded once on every path. Invalid send options fail
   * with `InvalidOption` before anything is encoded.
   */
  const buildWith = <A>(
    payload: Payload["Type"],
    sendOptions: SendOptions | undefined,
    checked: SendSettings | InvalidOption,
    now: number,
    sync: (message: Msg) => A,
    async: (message: Effect.Effect<Msg, InvalidPayload | InvalidOption, Payload["EncodingServices"]>) => A
  ): A => {
    if ("_tag" in checked) return async(Effect.fail(checked))
    if (encodePayloadFast !== undefined) {
      const fast = encodePayloadFast(payload)
      if (fast !== PayloadCodec.invalid) return sync(assemble(payload, fast, sendOptions, checked, now))
    }
    const encoded = encodePayload(payload)
    if (Exit.isExit(encoded) && Exit.isSuccess(encoded)) {
      return sync(assemble(payload, encoded.value, sendOptions, checked, now))
    }
    return async(
      Effect.map(
        Effect.mapError(encoded, invalidPayload),
        (value) => assemble(payload, value, sendOptions, checked, now)
      )
    )
  }

  /** The checked send options (checked once per send or batch), or why they are invalid. */
  const settingsOf = (sendOptions: SendOptions | undefined): SendSettings | InvalidOption =>
    sendOptions === undefined
      ? defaultSettings
      : sendSettings(sendOptions, defaultPriority, settings.idempotencyWindow)

  const build = (
    payload: Payload["Type"],
    sendOptions: SendOptions | undefined,
    checked: SendSettings | InvalidOption,
    now: number
  ): Effect.Effect<Msg, InvalidPayload | InvalidOption, Payload["EncodingServices"]> =>
    buildWith(payload, sendOptions, checked, now, Effect.succeed, (message) => message)

  /** Builds every message, synchronously while every payload encodes synchronously. */
  const buildAll = (
    payloads: ReadonlyArray<Payload["Type"]>,
    sendOptions: SendOptions | undefined,
    now: number
  ): Effect.Effect<Array<Msg>, InvalidPayload | InvalidOption, Payload["EncodingServices"]> => {
    const checked = settingsOf(sendOptions)
    if ("_tag" in checked) return Effect.fail(checked)
    const messages = new Array<Msg>(payloads.length)
    for (let i = 0; i < payloads.length; i++) {
      const pending = buildWith(payloads[i], sendOptions, checked, now, (message) => {
        messages[i] = message
        return undefined
      }, (message) => message)
      if (pending !== undefined) {
        // from the first payload that needs an effect on, the rest are built as effects
        const built = messages.slice(0, i)
        return Effect.map(
          Effect.forEach(
            payloads.slice(i),
            (payload, k) => k === 0 ? pending : build(payload, sendOptions, checked, now)
          ),
          (rest) => built.concat(rest)
        )
      }
    }
    return Effect.succeed(messages)
  }

  const self: Actor<Name, Payload, Success, Error> = {
    [TypeId]: TypeId,
    name,
    queue,
    priority: defaultPriority,
    payloadSchema: options.payload,
    successSchema,
    errorSchema,
    timeLimitMillis: settings.timeLimit,
    maxAgeMillis: settings.maxAge,
    retryPolicy,
    resultTtlMillis: settings.resultTtl,
    idempotencyWindowMillis: settings.idempotencyWindow,
    cancel: (message) => cancelIn(queue, typeof message === "string" ? message : message.id),
    result: (message, resultOptions) => readResult(typeof message === "string" ? message : message.id, resultOptions),
    message: (payload, sendOptions) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => build(payload, sendOptions, settingsOf(sendOptions), now)),
    send: (payload, sendOptions) =>
      // one step reads the broker and the clock, and a synchronously encodable payload is built in place
      Effect.withFiber<
        Msg,
        InvalidPayload | InvalidOption | EnqueueVetoed | BrokerError,
        Broker | Payload["EncodingServices"]
      >(
        (fiber) => {
          const broker = Context.get(fiber.context as Context.Context<Broker>, Broker)
          const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
          const middlewares = fiber.getRef(Middlewares)
          // only a keyed message can be suppressed: the others keep the cheapest path
          const enqueuePrepared = (message: Msg) =>
            message.key === undefined
              ? Effect.as(enqueueOne(broker, toOutgoing(message)), message)
              : Effect.map(enqueueOne(broker, toOutgoing(message)), (enqueued) => heldBy(message, enqueued))
          const enqueueIt = middlewares.length === 0
            ? enqueuePrepared
            : (message: Msg) =>
              Effect.flatMap(
                MiddlewareHooks.beforeEnqueue(middlewares, [message], now),
                ([prepared]) => enqueuePrepared(prepared!)
              )
          return buildWith(
            payload,
            sendOptions,
            settingsOf(sendOptions),
            now,
            enqueueIt,
            (message) => Effect.flatMap(message, enqueueIt)
          )
        }
      ),
    sendBatch: (payloads, sendOptions) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.flatMap(
          buildAll(Array.isArray(payloads) ? payloads : Array.from(payloads), sendOptions, now),
          (messages) =>
            Effect.map(
              enqueuePrepared(messages, now),
              ([prepared, enqueued]) =>
                enqueued.duplicates.size === 0 ? prepared : prepared.map((message) => heldBy(message, enqueued))
            )
        )),
    handle: (handler) => ({
      actor: self,
      run: handler as Handler<Any, never>["run"]
    }),
    pipe() {
      return pipeArguments(this, arguments)
    }
  }
  return self
}

/**
 * Enqueues messages built with `actor.message(...)` — of any actors — in one broker call. Messages whose idempotency
 * key was held are not enqueued: they are listed in `duplicates` (message id → id of the holder).
 *
 * @category sending
 * @since 0.1.0
 */
export const enqueue = (messages: Iterable<Message>): Effect.Effect<Enqueued, EnqueueVetoed | BrokerError, Broker> =>
  Effect.flatMap(
    Clock.currentTimeMillis,
    (now) => Effect.map(enqueuePrepared(Array.from(messages), now), ([, enqueued]) => enqueued)
  )

/**
 * Runs the middleware's `beforeEnqueue` on messages, then enqueues them in one broker call: the messages as they were
 * enqueued, and what the broker did.
 */
const enqueuePrepared = <M extends Message>(
  messages: ReadonlyArray<M>,
  now: number
): Effect.Effect<readonly [ReadonlyArray<M>, Enqueued], EnqueueVetoed | BrokerError, Broker> =>
  Effect.flatMap(
    MiddlewareHooks.prepare(messages, now),
    ([prepared, broker]) =>
      Effect.map(broker.enqueue(prepared.map(toOutgoing)), (enqueued) => [prepared, enqueued] as const)
  )

/** Cancels one message of a queue by id. */
const cancelIn = (queue: string, id: string): Effect.Effect<CancelOutcome, BrokerError, Broker> =>
  Effect.flatMap(Broker, (broker) => Effect.map(broker.cancel(queue, [id]), (outcomes) => outcomes[0] ?? "notFound"))

/**
 * Cancels a message (see `actor.cancel`): removes it if it is ready or delayed and releases its idempotency key
 * (`"cancelled"`); a running message is left alone (`"running"`).
 *
 * @category sending
 * @since 0.2.0
 */
export const cancel = (message: Message): Effect.Effect<CancelOutcome, BrokerError, Broker> =>
  cancelIn(message.queue, message.id)

/**
 * What the broker is handed for a message built by `send` or `message`: its id, queue, priority, eta, envelope and
 * limits. For modules of core that enqueue through other broker calls (`Schedules` uses `Broker.claimSlot`).
 *
 * @internal
 */
export const outgoing = (message: Message): Outgoing => toOutgoing(message)
