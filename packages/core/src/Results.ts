/**
 * Results: the stored outcome of a message, for producers that want it back (Dramatiq's `Results` middleware and
 * `message.get_result()`).
 *
 * An actor opts in with `storeResults: true` (kept 10 minutes, Dramatiq's default) or `storeResults: "1 hour"`. Its
 * worker then stores the handler's success, encoded with the actor's `success` schema, before it acks the message;
 * and, when the message fails for good, the failure: the actor's typed error, encoded with its `error` schema, or
 * why it died (time limit, defect, too old...). Nothing is stored for actors that don't ask.
 *
 * ```ts
 * const generateReport = Actor.make("generate_report", { payload: Day, success: Report, storeResults: true })
 *
 * const message = yield* generateReport.send({ day })
 * const report = yield* generateReport.result(message, { timeout: "10 seconds" }) // Report, typed
 * ```
 *
 * `actor.result` without a timeout reads what is there (`ResultMissing` if nothing is yet); with a timeout it waits,
 * woken by the write itself — never by polling — and fails with `ResultTimeout` when the time is up. A result read
 * after it expired is missing.
 *
 * The broker layers provide a `Results` store next to the broker: `@errand/memory` keeps results in the process,
 * `@errand/redis` in Redis (one key per result with a TTL, waits woken by a pub/sub notification). A store for
 * another backend implements the service below and passes the results part of the conformance suite.
 *
 * @since 0.2.0
 */
import { Context, type Duration, type Effect, Schema } from "effect"
import type { BrokerError } from "./ErrandError.ts"

/**
 * The stored outcome of a message, as it is kept (a JSON-compatible value):
 *
 * - `Success`: `value` is the handler's result, encoded with the actor's `success` schema;
 * - `Failure`: `error` is the handler's typed error, encoded with the actor's `error` schema;
 * - `Died`: the message failed for good without a typed error (time limit, defect, max age, undecodable,
 *   too many lost leases): `tag` and `message` say why.
 *
 * @category schemas
 * @since 0.2.0
 */
export const Stored = Schema.Union([
  Schema.TaggedStruct("Success", { value: Schema.Unknown }),
  Schema.TaggedStruct("Failure", { error: Schema.Unknown }),
  Schema.TaggedStruct("Died", { tag: Schema.String, message: Schema.String })
])

/**
 * A stored outcome (see `Stored`).
 *
 * @category models
 * @since 0.2.0
 */
export type Stored = typeof Stored.Type

/**
 * The results store. Brokers' layers provide one next to the broker.
 *
 * @category services
 * @since 0.2.0
 */
export class Results extends Context.Service<Results, {
  /** Stores the outcome of a message for `ttl`, and wakes whoever waits for it. A second write replaces the first. */
  readonly put: (messageId: string, result: Stored, ttl: Duration.Input) => Effect.Effect<void, BrokerError>
  /** Reads the outcome of a message, or `undefined` when there is none (not yet, expired, or never stored). */
  readonly get: (messageId: string) => Effect.Effect<Stored | undefined, BrokerError>
  /**
   * Waits up to `timeout` for the outcome of a message: at once if it is there, else when it is written (no
   * polling). `undefined` when the time is up. Interruptible.
   */
  readonly await: (messageId: string, timeout: Duration.Input) => Effect.Effect<Stored | undefined, BrokerError>
}>()("@errand/core/Results") {}

/**
 * How long results are kept when an actor says `storeResults: true`: 10 minutes, as Dramatiq's default.
 *
 * @category constants
 * @since 0.2.0
 */
export const defaultTtl: Duration.Input = "10 minutes"
