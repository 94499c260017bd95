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
 * that are never retried. The delay is replayed from the attempt count stored with the message, so every process
 * computes the same backoff.
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Exit, type Schedule, Schema } from "effect"
import { type Pipeable, pipeArguments } from "effect/Pipeable"
import { Broker, type Limits, type Outgoing } from "./Broker.ts"
import { type BrokerError, InvalidName, InvalidPayload, issuePath, type TimeLimitExceeded } from "./ErrandError.ts"
import type { HandlerDefect } from "./ErrandError.ts"
import { enqueueOne } from "./internal/coalesce.ts"
import { messageId } from "./internal/id.ts"
import { isValidName } from "./internal/names.ts"
import { defaultBackoff, type RetryPolicy } from "./internal/retry.ts"
import type { Envelope, Message } from "./Message.ts"

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
 * The options of `Actor.make`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<Payload extends Schema.Top, Success extends Schema.Top, Error extends Schema.Top> {
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
  /** Retries after the first run (default 20). Ignored when `retry` is given. */
  readonly maxRetries?: number | undefined
  /** The first retry's delay (default 15 seconds). */
  readonly minBackoff?: Duration.Input | undefined
  /** The longest retry delay (default 7 days). */
  readonly maxBackoff?: Duration.Input | undefined
  /** A schedule of retry delays, replacing `maxRetries`/`minBackoff`/`maxBackoff`; when it ends, retries stop. */
  readonly retry?: Schedule.Schedule<unknown, Failure<Error["Type"]>> | undefined
  /** Decides per failure whether to retry (`attempts` counts failed attempts, this one included). */
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
}

/**
 * Per-message options of `send`, `sendBatch` and `message`.
 *
 * @category models
 * @since 0.1.0
 */
export interface SendOptions {
  /** Run no earlier than this long from now. The message waits in the broker, not in any process's memory. */
  readonly delay?: Duration.Input | undefined
  /** Overrides the actor's priority for this message: lower runs first. */
  readonly priority?: number | undefined
  /** Extra options carried in the envelope for middleware and later features. */
  readonly options?: { readonly [key: string]: unknown } | undefined
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
> extends Pipeable {
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

  /**
   * Encodes, validates and enqueues one message. A payload that fails the schema fails with `InvalidPayload`.
   * Sends made concurrently (from any fibers) are coalesced into one broker call, so many sends in flight cost one
   * round trip per batch; each `send` still completes only once its message is in the broker.
   */
  send(
    payload: Payload["Type"],
    options?: SendOptions
  ): Effect.Effect<
    Message<Payload["Type"], Success["Type"]>,
    InvalidPayload | BrokerError,
    Broker | Payload["EncodingServices"]
  >

  /** Encodes and validates every payload, then enqueues them all in one broker call. Nothing is sent if one is invalid. */
  sendBatch(
    payloads: Iterable<Payload["Type"]>,
    options?: SendOptions
  ): Effect.Effect<
    ReadonlyArray<Message<Payload["Type"], Success["Type"]>>,
    InvalidPayload | BrokerError,
    Broker | Payload["EncodingServices"]
  >

  /** Builds a message without sending it (send it later with `Actor.enqueue`). */
  message(
    payload: Payload["Type"],
    options?: SendOptions
  ): Effect.Effect<Message<Payload["Type"], Success["Type"]>, InvalidPayload, Payload["EncodingServices"]>

  /** Attaches a handler, for `Worker.layer({ handlers })`. Its services `R` become the worker's requirements. */
  handle<R = never>(
    handler: (
      payload: Payload["Type"],
      message: Message<Payload["Type"], Success["Type"]>
    ) => Effect.Effect<Success["Type"], Error["Type"], R>
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

const ENVELOPE = Symbol.for("@errand/core/Actor/envelope")
const LIMITS = Symbol.for("@errand/core/Actor/limits")

interface EnvelopeCarrier {
  readonly [ENVELOPE]?: Envelope
  /** The broker-enforced limits of the message, from its actor's `rateLimit` and `concurrency`. */
  readonly [LIMITS]?: Limits
}

const DEFAULT_MAX_RETRIES = 20
const DEFAULT_MIN_BACKOFF = Duration.seconds(15)
const DEFAULT_MAX_BACKOFF = Duration.days(7)
const DEFAULT_TIME_LIMIT = Duration.minutes(10)

const toMillisOrInfinity = (input: Duration.Input | undefined, fallback: number): number =>
  input === undefined ? fallback : Duration.toMillis(Duration.fromInputUnsafe(input))

/**
 * Defines an actor. Throws `InvalidName` when the actor or queue name does not match `[a-zA-Z_][a-zA-Z0-9._-]*`:
 * a definition error is a programming error, reported where the actor is declared.
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
  const defaultPriority = options.priority ?? 0
  const successSchema = (options.success ?? Schema.Void) as Success
  const errorSchema = (options.error ?? Schema.Never) as Error
  const encodePayload = Schema.encodeEffect(Schema.toCodecJson(options.payload))
  const retryPolicy: RetryPolicy<Failure<Error["Type"]>> = {
    schedule: options.retry ??
      defaultBackoff(options.minBackoff ?? DEFAULT_MIN_BACKOFF, options.maxBackoff ?? DEFAULT_MAX_BACKOFF),
    maxRetries: options.retry === undefined ? options.maxRetries ?? DEFAULT_MAX_RETRIES : undefined,
    retryWhen: options.retryWhen,
    throws: new Set<string>(options.throws ?? [])
  }

  type Msg = Message<Payload["Type"], Success["Type"]>

  const rateLimit = options.rateLimit === undefined ? undefined : {
    key: `actor:${name}`,
    limit: options.rateLimit.limit,
    windowMillis: Duration.toMillis(Duration.fromInputUnsafe(options.rateLimit.window))
  }
  const concurrencyLimit = options.concurrency
  /** The limits of a message with this payload, when the actor has any. */
  const limitsOf = rateLimit === undefined && concurrencyLimit === undefined ? undefined : (
    payload: Payload["Type"]
  ): Limits => ({
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
    now: number
  ): Msg => {
    const id = messageId()
    const delay = sendOptions?.delay === undefined
      ? 0
      : Duration.toMillis(Duration.fromInputUnsafe(sendOptions.delay))
    const eta = now + Math.max(0, delay)
    const priority = sendOptions?.priority ?? defaultPriority
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
    const message: Msg & EnvelopeCarrier = {
      id,
      actor: name,
      queue,
      payload,
      enqueuedAt: now,
      eta,
      priority,
      options: extra ?? {},
      attempts: 0,
      [ENVELOPE]: envelope
    }
    if (limitsOf !== undefined) (message as { [LIMITS]?: Limits })[LIMITS] = limitsOf(payload)
    return message
  }

  /**
   * Builds the message of a payload. Schema returns an `Exit` when the payload encodes synchronously: then the
   * message is built at once (`sync`); otherwise (an asynchronous or service-needing schema, or an invalid payload)
   * the encoding effect is used as it is, so a payload is encoded once on every path.
   */
  const buildWith = <A>(
    payload: Payload["Type"],
    sendOptions: SendOptions | undefined,
    now: number,
    sync: (message: Msg) => A,
    async: (message: Effect.Effect<Msg, InvalidPayload, Payload["EncodingServices"]>) => A
  ): A => {
    const encoded = encodePayload(payload)
    if (Exit.isExit(encoded) && Exit.isSuccess(encoded)) {
      return sync(assemble(payload, encoded.value, sendOptions, now))
    }
    return async(
      Effect.map(Effect.mapError(encoded, invalidPayload), (value) => assemble(payload, value, sendOptions, now))
    )
  }

  const build = (
    payload: Payload["Type"],
    sendOptions: SendOptions | undefined,
    now: number
  ): Effect.Effect<Msg, InvalidPayload, Payload["EncodingServices"]> =>
    buildWith(payload, sendOptions, now, Effect.succeed, (message) => message)

  /** Builds every message, synchronously while every payload encodes synchronously. */
  const buildAll = (
    payloads: ReadonlyArray<Payload["Type"]>,
    sendOptions: SendOptions | undefined,
    now: number
  ): Effect.Effect<Array<Msg>, InvalidPayload, Payload["EncodingServices"]> => {
    const messages = new Array<Msg>(payloads.length)
    for (let i = 0; i < payloads.length; i++) {
      const pending = buildWith(payloads[i], sendOptions, now, (message) => {
        messages[i] = message
        return undefined
      }, (message) => message)
      if (pending !== undefined) {
        // from the first payload that needs an effect on, the rest are built as effects
        const built = messages.slice(0, i)
        return Effect.map(
          Effect.forEach(payloads.slice(i), (payload, k) => k === 0 ? pending : build(payload, sendOptions, now)),
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
    timeLimitMillis: toMillisOrInfinity(options.timeLimit, Duration.toMillis(DEFAULT_TIME_LIMIT)),
    maxAgeMillis: toMillisOrInfinity(options.maxAge, Infinity),
    retryPolicy,
    message: (payload, sendOptions) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => build(payload, sendOptions, now)),
    send: (payload, sendOptions) =>
      // one step reads the broker and the clock, and a synchronously encodable payload is built in place
      Effect.withFiber<Msg, InvalidPayload | BrokerError, Broker | Payload["EncodingServices"]>((fiber) => {
        const broker = Context.get(fiber.context as Context.Context<Broker>, Broker)
        const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
        const enqueueIt = (message: Msg) => Effect.as(enqueueOne(broker, toOutgoing(message)), message)
        return buildWith(payload, sendOptions, now, enqueueIt, (message) => Effect.flatMap(message, enqueueIt))
      }),
    sendBatch: (payloads, sendOptions) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.flatMap(
          buildAll(Array.isArray(payloads) ? payloads : Array.from(payloads), sendOptions, now),
          (messages) => Effect.as(enqueue(messages), messages)
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

const toOutgoing = (message: Message): Outgoing => {
  const envelope = (message as EnvelopeCarrier)[ENVELOPE]
  if (envelope === undefined) {
    throw new globalThis.Error(`Message ${message.id} was not built by an actor's send or message`)
  }
  const limits = (message as EnvelopeCarrier)[LIMITS]
  const outgoing = {
    id: message.id,
    queue: message.queue,
    priority: message.priority,
    eta: message.eta,
    body: envelope
  }
  return limits === undefined ? outgoing : { ...outgoing, limits }
}

/**
 * Enqueues messages built with `actor.message(...)` — of any actors — in one broker call.
 *
 * @category sending
 * @since 0.1.0
 */
export const enqueue = (messages: Iterable<Message>): Effect.Effect<void, BrokerError, Broker> =>
  Effect.flatMap(Broker, (broker) => broker.enqueue(Array.from(messages, toOutgoing)))

/**
 * What the broker is handed for a message built by `send` or `message`: its id, queue, priority, eta, envelope and
 * limits. For modules of core that enqueue through other broker calls (`Schedules` uses `Broker.claimSlot`).
 *
 * @internal
 */
export const outgoing = (message: Message): Outgoing => toOutgoing(message)
