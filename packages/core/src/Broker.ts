/**
 * The broker contract: what a queue backend implements for Errand.
 *
 * A broker is a dumb, durable store of encoded messages. It never sees a user's schema: `Actor` encodes payloads and
 * `Worker` decodes them. Brokers are Layers, so the memory broker (`@errand/memory`) and the Redis broker
 * (`@errand/redis`) are swapped without touching user code, and every broker must pass the conformance suite in
 * `@errand/core/testing`.
 *
 * **Guarantees every broker gives**
 *
 * - Delivery is at-least-once. A taken message is *leased*, not removed: it leaves the broker only when it is acked or
 *   dead-lettered. A lease that is not extended lapses, and the message becomes available to `take` again with its
 *   `deliveries` count raised. Handlers must therefore be idempotent.
 * - Priorities are integers in `[-maxPriority, maxPriority]`; an `enqueue` with a priority outside that range, or an
 *   eta that is not a finite number, fails with a `BrokerError` naming the field, and enqueues nothing of its batch
 *   (`validateOutgoing` is the shared check).
 * - Within a queue, a lower `priority` is taken first, and messages of equal priority are taken in the order they
 *   became due (FIFO). A message is not taken before its `eta`.
 * - Ties: messages of equal priority that become due at the same instant (the same `eta`, for instance a batch sent
 *   with one delay, or retries scheduled for the same time) are taken in the order they were scheduled: the order of
 *   the `enqueue` calls and, within a call, of its array, for sent messages; the order of the `Retry` settlements
 *   (across `settle` and `take` calls, and within one call, of its array) for retries. Sends and retries share that one
 *   order. Never by id or by any other property of the message.
 * - Leases are fenced: a settlement or extension carrying a lease token that is no longer current (the lease lapsed and
 *   the message was taken again) is rejected and changes nothing.
 * - Time is read from Effect's `Clock`, so `TestClock` drives delays and leases in tests.
 * - Idempotency keys: a message enqueued with a `key` is enqueued only if no message of its queue holds that key. A
 *   message holds its key from its enqueue while it is ready, delayed (a retry waiting for its backoff included) or
 *   leased, and for `keyTtl` milliseconds after it was acked or dead-lettered; `cancel` releases it at once. A
 *   suppressed message is reported in `Enqueued.duplicates` with the id that holds the key, and changes nothing.
 *   Within one batch, the first message with a key wins. Keys are per queue.
 * - `cancel` removes ready and delayed messages atomically; a leased message is left alone (`"running"`).
 *
 * @since 0.1.0
 */
import { Context, type Duration, type Effect } from "effect"
import { BrokerError, InvalidMessageId } from "./ErrandError.ts"
import { isMessageId } from "./internal/id.ts"
import * as Options from "./internal/options.ts"
import type { LastError } from "./Message.ts"

/**
 * The largest priority magnitude: priorities are integers in `[-maxPriority, maxPriority]` (2^21 - 1).
 *
 * @category constants
 * @since 0.2.0
 */
export const maxPriority: number = Options.maxPriority

/**
 * The check every broker applies to `enqueue`d messages, so that all brokers reject the same inputs: returns what is
 * wrong with a message (naming the field), or `undefined` when it is valid. Adapters fail the whole batch with a
 * `BrokerError` of operation `"enqueue"` carrying this text.
 *
 * @category validation
 * @since 0.2.0
 */
export const validateOutgoing = (message: Outgoing): string | undefined => {
  const { priority, eta } = message
  if (typeof priority !== "number" || !Number.isInteger(priority) || Math.abs(priority) > maxPriority) {
    return `Message ${message.id}: "priority" must be an integer from -${maxPriority} to ${maxPriority} (got ${
      String(priority)
    })`
  }
  if (typeof eta !== "number" || !Number.isFinite(eta)) {
    return `Message ${message.id}: "eta" must be a finite number of epoch milliseconds (got ${String(eta)})`
  }
  if (message.limits !== undefined) {
    const problem = validateLimits(message.limits)
    if (problem !== undefined) return `Message ${message.id}: "limits" ${problem}`
  }
  if (message.key !== undefined || message.keyTtl !== undefined) return validateKey(message)
  return undefined
}

/**
 * The shared checks of `enqueue` (and `claimSlot`, whose `operation` it names) over a whole batch (the id grammar,
 * then `validateOutgoing`): the `BrokerError` the broker named `broker` fails the batch with, or `undefined` when every
 * message is valid. A batch with an invalid message enqueues nothing.
 *
 * @category validation
 * @since 0.2.0
 */
export const refuseInvalid = (
  broker: string,
  messages: ReadonlyArray<Outgoing>,
  operation = "enqueue"
): BrokerError | undefined => {
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i]!
    if (!isMessageId(message.id)) return InvalidMessageId.refuse(broker, message, operation)
    const problem = validateOutgoing(message)
    if (problem !== undefined) {
      return new BrokerError({ broker, operation, message: problem, applied: "no" })
    }
  }
  return undefined
}

/** The longest limit key, in characters. */
const maxLimitKeyLength = 1024

/** What is wrong with a message's rate and concurrency limits, or `undefined`. */
const validateLimits = (limits: Limits): string | undefined => {
  const badKey = (key: unknown) =>
    typeof key !== "string" || key.length === 0 || key.length > maxLimitKeyLength || key.includes("\u0000")
  const badLimit = (limit: unknown) => typeof limit !== "number" || !Number.isInteger(limit) || limit < 1
  const { concurrency, rate } = limits
  if (rate !== undefined) {
    if (badKey(rate.key)) return `rate key must be 1 to ${maxLimitKeyLength} characters without NUL`
    if (badLimit(rate.limit)) return `rate limit must be an integer of at least 1 (got ${String(rate.limit)})`
    if (typeof rate.windowMillis !== "number" || !Number.isFinite(rate.windowMillis) || rate.windowMillis <= 0) {
      return `rate window must be a finite number of milliseconds above 0 (got ${String(rate.windowMillis)})`
    }
  }
  if (concurrency !== undefined) {
    if (badKey(concurrency.key)) return `concurrency key must be 1 to ${maxLimitKeyLength} characters without NUL`
    if (badLimit(concurrency.limit)) {
      return `concurrency limit must be an integer of at least 1 (got ${String(concurrency.limit)})`
    }
  }
  return undefined
}

/**
 * The grammar of idempotency keys: 1 to `maxKeyLength` characters among letters, digits and `_ . : @ / + = -` (so a
 * key reads well in logs and Redis tools, and needs no escaping anywhere), e.g. `"order-42"` or `"user:7/welcome"`.
 *
 * @category validation
 * @since 0.2.0
 */
export const keyPattern: RegExp = /^[A-Za-z0-9_.:@/+=-]+$/

/**
 * The longest idempotency key, in characters.
 *
 * @category constants
 * @since 0.2.0
 */
export const maxKeyLength = 256

/**
 * Whether a string is a valid idempotency key (`keyPattern`, at most `maxKeyLength` characters).
 *
 * @category validation
 * @since 0.2.0
 */
export const isValidKey = (key: unknown): key is string =>
  typeof key === "string" && key.length > 0 && key.length <= maxKeyLength && keyPattern.test(key)

const validateKey = (message: Outgoing): string | undefined => {
  const { key, keyTtl } = message
  if (key !== undefined && !isValidKey(key)) {
    return `Message ${message.id}: "key" must be 1 to ${maxKeyLength} characters of [A-Za-z0-9_.:@/+=-] (got ${
      JSON.stringify(key) ?? String(key)
    })`
  }
  if (keyTtl !== undefined && (typeof keyTtl !== "number" || !(keyTtl >= 0) || !Number.isFinite(keyTtl))) {
    return `Message ${message.id}: "keyTtl" must be a finite number of milliseconds, at least 0 (got ${String(keyTtl)})`
  }
  return undefined
}

/**
 * A message handed to the broker by `enqueue`. `body` is the encoded envelope (see `Message`); the other fields repeat
 * what the broker needs to route it, so it never parses the body.
 *
 * @category models
 * @since 0.1.0
 */
export interface Outgoing {
  readonly id: string
  readonly queue: string
  /** Lower is taken first. */
  readonly priority: number
  /** When the message becomes due, epoch milliseconds (by `Clock`). At or before now means ready at once. */
  readonly eta: number
  /** The encoded envelope: a JSON-compatible value. */
  readonly body: unknown
  /**
   * An idempotency key: the message is enqueued only if no message of its queue holds this key (see the module docs).
   */
  readonly key?: string | undefined
  /** How long the key stays held after the message is acked or dead-lettered, in milliseconds (default 0). */
  readonly keyTtl?: number | undefined
  /** Limits the broker enforces when the message is taken (from its actor's `rateLimit` and `concurrency`). */
  readonly limits?: Limits | undefined
}

/**
 * Limits on taking a message, enforced by the broker across every consumer. A message whose limit is reached is not
 * taken: it waits in the broker (a rate-limited one until its window has room, a concurrency-limited one until a
 * message of its key leaves the in-flight set), so a limit never costs an attempt or a delivery. Both brokers count a
 * waiting message as `delayed` in `stats`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Limits {
  /** At most `limit` messages with this `key` are taken in any sliding window of `windowMillis`. */
  readonly rate?: { readonly key: string; readonly limit: number; readonly windowMillis: number } | undefined
  /**
   * At most `limit` messages with this `key` are in flight (leased) at once. A slot is freed when the message is
   * settled, or when its lease lapses (a killed worker's slot comes back with its message).
   */
  readonly concurrency?: { readonly key: string; readonly limit: number } | undefined
}

/**
 * What an `enqueue` did. Its `duplicates` is empty (and shared) when every message was enqueued, so the common path
 * allocates nothing.
 *
 * @category models
 * @since 0.2.0
 */
export interface Enqueued {
  /**
   * The messages that were not enqueued because their idempotency key was held: message id → id of the message that
   * holds the key (an earlier one, or an earlier message of the same batch).
   */
  readonly duplicates: ReadonlyMap<string, string>
}

/**
 * The answer of an `enqueue` that suppressed nothing.
 *
 * @category constants
 * @since 0.2.0
 */
export const allEnqueued: Enqueued = { duplicates: new Map() }

/**
 * What `cancel` did to one message:
 *
 * - `"cancelled"`: it was ready or delayed (a retry waiting for its backoff included) and is gone, its idempotency
 *   key released;
 * - `"running"`: it is leased to a worker; nothing changed (the handler is not interrupted and its outcome is applied
 *   as usual);
 * - `"notFound"`: no such message is queued (never enqueued, already finished, dead-lettered, or cancelled).
 *
 * @category models
 * @since 0.2.0
 */
export type CancelOutcome = "cancelled" | "running" | "notFound"

/**
 * A leased message returned by `take`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Delivery {
  readonly id: string
  readonly queue: string
  /** The encoded envelope exactly as it was enqueued (for Redis, the parsed JSON; the raw string if it is not JSON). */
  readonly body: unknown
  /** Failed attempts recorded by `Retry` settlements so far (0 on a first run). Reset to 0 by `requeueDeadLetters`. */
  readonly attempts: number
  /**
   * How many times the message has been leased, this time included, less the leases that ended in a `Release`:
   * `deliveries - 1 - attempts` is the number of leases that lapsed without an outcome (lost leases).
   */
  readonly deliveries: number
  /** The last error recorded by a `Retry` settlement. */
  readonly lastError?: LastError | undefined
  /** The fencing token of this lease. */
  readonly lease: string
  /** When this lease lapses unless extended, epoch milliseconds. */
  readonly leaseExpiresAt: number
}

/**
 * How a delivery ends, or goes back to the queue.
 *
 * - `Ack`: finished; the message leaves the broker.
 * - `Retry`: failed; due again at `eta`, with `attempts` raised by one and `error` recorded.
 * - `DeadLetter`: failed for good; moved to the queue's dead-letter set with `reason`. Its `attempts` is recorded as
 *   the delivery's `attempts`, plus one unless the settlement says it did not run the handler (`ran: false`): a dead letter counts handler runs.
 * - `Release`: put back, ready at once, with `attempts` unchanged and this lease not counted in `deliveries` (used on
 *   shutdown: no attempt is burned, and no lease counts as lost).
 *
 * @category models
 * @since 0.1.0
 */
export type Settlement =
  | { readonly _tag: "Ack"; readonly delivery: Delivery }
  | { readonly _tag: "Retry"; readonly delivery: Delivery; readonly eta: number; readonly error: LastError }
  | {
    readonly _tag: "DeadLetter"
    readonly delivery: Delivery
    readonly reason: LastError
    /**
     * Whether this delivery ran the handler (default `true`); `false` for messages dead-lettered unrun (undecodable,
     * unknown actor, too old, too many lost leases).
     */
    readonly ran?: boolean | undefined
  }
  | { readonly _tag: "Release"; readonly delivery: Delivery }

/**
 * A request to `take` messages from one queue.
 *
 * @category models
 * @since 0.1.0
 */
export interface TakeRequest {
  readonly queue: string
  /** At most this many messages are taken (at least 1). */
  readonly max: number
  /** How long each lease lasts before it must be extended. */
  readonly lease: Duration.Input
  /**
   * How long to wait for a message when none is ready; `0` (the default) returns at once. A waiting take wakes when a
   * message is enqueued, released or retried, or when a delayed message comes due. It is interruptible.
   */
  readonly wait?: Duration.Input | undefined
  /**
   * Settlements to apply before taking, in the same round trip. A broker applies them even when it then finds
   * nothing to take.
   */
  readonly settle?: ReadonlyArray<Settlement> | undefined
}

/**
 * The answer to a `take`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Taken {
  readonly deliveries: ReadonlyArray<Delivery>
  /** Ids of the piggy-backed settlements whose lease was no longer current: they changed nothing. */
  readonly rejected: ReadonlyArray<string>
}

/**
 * The sizes of a queue.
 *
 * @category models
 * @since 0.1.0
 */
export interface QueueStats {
  /** Due and waiting to be taken. */
  readonly ready: number
  /** Waiting for their eta (delays and retry backoffs). */
  readonly delayed: number
  /** Leased to a worker. */
  readonly inFlight: number
  /** In the dead-letter set. */
  readonly dead: number
}

/**
 * A dead-lettered message.
 *
 * @category models
 * @since 0.1.0
 */
export interface DeadLetter {
  readonly id: string
  readonly queue: string
  readonly body: unknown
  /** How many times its handler ran and failed (0 for a message dead-lettered unrun). */
  readonly attempts: number
  readonly reason: LastError
  /** When it was dead-lettered, epoch milliseconds. */
  readonly deadAt: number
  /**
   * Its attempt history, oldest first: the failures recorded by its `Retry` settlements, then the dead-letter reason
   * as the last entry. Bounded to the last {@link maxAttemptHistory} entries. A dead letter requeued by
   * `requeueDeadLetters` starts a fresh history (as its `attempts` restarts at 0).
   */
  readonly history: ReadonlyArray<AttemptRecord>
}

/**
 * One failure in a message's attempt history (see `DeadLetter.history`).
 *
 * @category models
 * @since 0.3.0
 */
export interface AttemptRecord {
  /** When the failure was settled, epoch milliseconds of the broker's `Clock`. */
  readonly at: number
  /** The error's tag (`LastError.tag`). */
  readonly tag: string
  /** The error's message (`LastError.message`). */
  readonly message: string
}

/**
 * How many entries of its attempt history a message keeps: the last 10 (older ones are dropped).
 *
 * @category constants
 * @since 0.3.0
 */
export const maxAttemptHistory: number = 10

/**
 * Which dead letters an operation applies to: all of a queue's, or those with the given ids.
 *
 * @category models
 * @since 0.1.0
 */
export interface DeadLetterSelection {
  readonly ids?: ReadonlyArray<string> | undefined
}

/**
 * A page of dead letters, for `deadLetters`: skip `offset` (default 0), then list at most `limit` (default all).
 *
 * @category models
 * @since 0.3.0
 */
export interface DeadLetterPage {
  readonly limit?: number | undefined
  readonly offset?: number | undefined
}

/**
 * The shared check of `deadLetters`' page: an `offset` that is not an integer ≥ 0 is refused with a `BrokerError`
 * (`applied: "no"`) by the broker named `broker`; `undefined` when the page is valid.
 *
 * @category validation
 * @since 0.3.0
 */
export const refuseInvalidPage = (broker: string, page: DeadLetterPage | undefined): BrokerError | undefined => {
  const offset = page?.offset
  if (offset === undefined || (Number.isSafeInteger(offset) && offset >= 0)) return undefined
  return new BrokerError({
    broker,
    operation: "deadLetters",
    message: `offset must be an integer of 0 or more (got ${offset})`,
    applied: "no"
  })
}

/**
 * The shared check of `heartbeat`: an `id` that is not a non-empty string, or an `expiresAt` that is not a finite
 * number, is refused with a `BrokerError` (`applied: "no"`) by the broker named `broker`; `undefined` when the
 * heartbeat is valid.
 *
 * @category validation
 * @since 0.3.0
 */
export const refuseInvalidHeartbeat = (broker: string, heartbeat: Heartbeat): BrokerError | undefined => {
  const { id, expiresAt } = heartbeat
  const problem = typeof id !== "string" || id.length === 0
    ? `a heartbeat's id must be a non-empty string (got ${JSON.stringify(id)})`
    : typeof expiresAt !== "number" || !Number.isFinite(expiresAt)
    ? `heartbeat ${id}: expiresAt must be a finite number of epoch milliseconds (got ${String(expiresAt)})`
    : undefined
  return problem === undefined
    ? undefined
    : new BrokerError({ broker, operation: "heartbeat", message: problem, applied: "no" })
}

/**
 * A process's heartbeat as the broker stores it: an opaque JSON-compatible `report` (the broker never reads it; see
 * the `Heartbeat` module for what workers put there) kept until `expiresAt`.
 *
 * @category models
 * @since 0.3.0
 */
export interface Heartbeat {
  /** The reporting process's unique id: a later heartbeat with the same id replaces the earlier one. */
  readonly id: string
  /** When the heartbeat expires unless renewed, epoch milliseconds (by `Clock`). */
  readonly expiresAt: number
  /** The report: a JSON-compatible value. */
  readonly report: unknown
}

/**
 * A group's counts, as `recordGroupMember` returns them.
 *
 * @category models
 * @since 0.2.0
 */
export interface GroupCounts {
  /** Members recorded as succeeded. */
  readonly succeeded: number
  /** Members recorded as failed for good. */
  readonly failed: number
  /** Whether this call recorded the member (false: it was recorded before, and nothing changed). */
  readonly recorded: boolean
  /** The member whose success completed the group (every member succeeded), once there is one. */
  readonly completedBy?: string | undefined
  /** The first member recorded as failed, once there is one. */
  readonly firstFailed?: string | undefined
}

/**
 * The broker service. Adapters implement it with `Broker.of({...})` and provide it as a Layer.
 *
 * @category services
 * @since 0.1.0
 */
export class Broker extends Context.Service<Broker, {
  /** The adapter's name, for logs and errors (`"memory"`, `"redis"`). */
  readonly name: string
  /**
   * Enqueues messages, atomically as one batch where the backend allows. Ids are unique by construction. Messages
   * whose idempotency key is held are left out and reported in `duplicates`. A failure's `BrokerError.applied` says
   * whether messages may have been enqueued anyway: `"no"`, or `"unknown"` (the connection dropped after the command
   * was written, or no reply came in time); adapters set it on every failure they can tell apart.
   */
  readonly enqueue: (messages: ReadonlyArray<Outgoing>) => Effect.Effect<Enqueued, BrokerError>
  /** Applies `request.settle`, then leases up to `request.max` due messages, waiting up to `request.wait` for one. */
  readonly take: (request: TakeRequest) => Effect.Effect<Taken, BrokerError>
  /** Applies settlements. Returns the ids whose lease was no longer current (they changed nothing). */
  readonly settle: (settlements: ReadonlyArray<Settlement>) => Effect.Effect<ReadonlyArray<string>, BrokerError>
  /**
   * Extends the leases of deliveries (one call for all of a worker's in-flight messages). Returns the ids whose lease
   * was already lost: their handler's outcome will be rejected.
   */
  readonly extend: (
    deliveries: ReadonlyArray<Delivery>,
    lease: Duration.Input
  ) => Effect.Effect<ReadonlyArray<string>, BrokerError>
  /** Current sizes of a queue. */
  readonly stats: (queue: string) => Effect.Effect<QueueStats, BrokerError>
  /** Lists a queue's dead letters, oldest first: at most `limit` (default all), after skipping `offset` (default 0). */
  readonly deadLetters: (
    queue: string,
    options?: DeadLetterPage
  ) => Effect.Effect<ReadonlyArray<DeadLetter>, BrokerError>
  /** Moves dead letters back to their queue, ready at once with `attempts` reset to 0. Returns how many moved. */
  readonly requeueDeadLetters: (queue: string, selection?: DeadLetterSelection) => Effect.Effect<number, BrokerError>
  /** Deletes dead letters. Returns how many were deleted. */
  readonly purgeDeadLetters: (queue: string, selection?: DeadLetterSelection) => Effect.Effect<number, BrokerError>
  /** Deletes every message of a queue: ready, delayed, in flight and dead, and its idempotency keys. */
  readonly flush: (queue: string) => Effect.Effect<void, BrokerError>
  /**
   * Removes ready or delayed messages of a queue, atomically, releasing their idempotency keys; a leased message is
   * left alone. Returns one outcome per id, in order.
   */
  readonly cancel: (
    queue: string,
    ids: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<CancelOutcome>, BrokerError>
  /**
   * Records, atomically, that a member of a group of `size` members succeeded (`succeeded: true`) or failed for good,
   * **once per member** however often it is recorded (a member redelivered after a lost lease records nothing new),
   * and returns the group's counts after it, with the member whose record completed the group (every member
   * succeeded) and the first member that failed, as the record keeps them. The record lives `ttl` after its last
   * change. `Group.run`'s callbacks are sent by those two members only, so a group completes once even when its
   * members run on many workers.
   */
  readonly recordGroupMember: (
    group: string,
    member: string,
    succeeded: boolean,
    size: number,
    ttl: Duration.Input
  ) => Effect.Effect<GroupCounts, BrokerError>
  /**
   * The names of the queues messages were enqueued to, sorted; a flushed queue is no longer listed (until its next
   * enqueue). For admin tools (`errand queues`); a broker may also list queues that were only taken from.
   */
  readonly queues: Effect.Effect<ReadonlyArray<string>, BrokerError>
  /**
   * Claims slot `slot` (epoch milliseconds) of the schedule named `schedule` and enqueues `message`, as one atomic
   * step, unless that slot or a later one of the schedule was already claimed. Returns whether this call claimed it
   * (and enqueued). Any number of schedulers, in any processes, calling it for the same slot enqueue one message. The
   * last claimed slot is kept per schedule name and queue (`message.queue`); it survives `flush`. The claim is the
   * message's deduplication: its idempotency key, if any, is not used. An invalid message (as `enqueue` refuses it) fails
   * with a `BrokerError` (`applied: "no"`) and claims nothing.
   */
  readonly claimSlot: (schedule: string, slot: number, message: Outgoing) => Effect.Effect<boolean, BrokerError>
  /** One dead letter of a queue by message id, or `undefined` when the queue holds no dead letter with that id. */
  readonly deadLetter: (queue: string, id: string) => Effect.Effect<DeadLetter | undefined, BrokerError>
  /**
   * Stores a process's heartbeat under `heartbeat.id`, replacing its previous one, until `heartbeat.expiresAt`. One
   * call per process every few seconds (never per message): `Heartbeat.layer` sends them, the dashboard reads them.
   * An empty id or a non-finite `expiresAt` (`refuseInvalidHeartbeat`) fails with a `BrokerError` (`applied: "no"`).
   */
  readonly heartbeat: (heartbeat: Heartbeat) => Effect.Effect<void, BrokerError>
  /** The heartbeats that have not expired (by `Clock`), sorted by id. Expired ones are dropped. */
  readonly heartbeats: Effect.Effect<ReadonlyArray<Heartbeat>, BrokerError>
}>()("@errand/core/Broker") {}
