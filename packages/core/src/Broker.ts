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
 * - Within a queue, a lower `priority` is taken first, and messages of equal priority are taken in the order they
 *   became due (FIFO). A message is not taken before its `eta`.
 * - Leases are fenced: a settlement or extension carrying a lease token that is no longer current (the lease lapsed and
 *   the message was taken again) is rejected and changes nothing.
 * - Time is read from Effect's `Clock`, so `TestClock` drives delays and leases in tests.
 *
 * @since 0.1.0
 */
import { Context, type Duration, type Effect } from "effect"
import type { BrokerError } from "./ErrandError.ts"
import type { LastError } from "./Message.ts"

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
  /** How many times the message has been leased, this time included: above `attempts + 1` after lost leases. */
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
 * - `DeadLetter`: failed for good; moved to the queue's dead-letter set with `reason`.
 * - `Release`: put back, ready at once, with `attempts` unchanged (used on shutdown: no attempt is burned).
 *
 * @category models
 * @since 0.1.0
 */
export type Settlement =
  | { readonly _tag: "Ack"; readonly delivery: Delivery }
  | { readonly _tag: "Retry"; readonly delivery: Delivery; readonly eta: number; readonly error: LastError }
  | { readonly _tag: "DeadLetter"; readonly delivery: Delivery; readonly reason: LastError }
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
  /** Failed attempts at the time it was dead-lettered. */
  readonly attempts: number
  readonly reason: LastError
  /** When it was dead-lettered, epoch milliseconds. */
  readonly deadAt: number
}

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
 * The broker service. Adapters implement it with `Broker.of({...})` and provide it as a Layer.
 *
 * @category services
 * @since 0.1.0
 */
export class Broker extends Context.Service<Broker, {
  /** The adapter's name, for logs and errors (`"memory"`, `"redis"`). */
  readonly name: string
  /** Enqueues messages, atomically as one batch where the backend allows. Ids are unique by construction. */
  readonly enqueue: (messages: ReadonlyArray<Outgoing>) => Effect.Effect<void, BrokerError>
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
  /** Lists a queue's dead letters, oldest first. */
  readonly deadLetters: (
    queue: string,
    options?: { readonly limit?: number | undefined }
  ) => Effect.Effect<ReadonlyArray<DeadLetter>, BrokerError>
  /** Moves dead letters back to their queue, ready at once with `attempts` reset to 0. Returns how many moved. */
  readonly requeueDeadLetters: (queue: string, selection?: DeadLetterSelection) => Effect.Effect<number, BrokerError>
  /** Deletes dead letters. Returns how many were deleted. */
  readonly purgeDeadLetters: (queue: string, selection?: DeadLetterSelection) => Effect.Effect<number, BrokerError>
  /** Deletes every message of a queue: ready, delayed, in flight and dead. */
  readonly flush: (queue: string) => Effect.Effect<void, BrokerError>
  /**
   * The names of the queues messages were enqueued to, sorted; a flushed queue is no longer listed (until its next
   * enqueue). For admin tools (`errand queues`); a broker may also list queues that were only taken from.
   */
  readonly queues: Effect.Effect<ReadonlyArray<string>, BrokerError>
  /**
   * Claims slot `slot` (epoch milliseconds) of the schedule named `schedule` and enqueues `message`, as one atomic
   * step, unless that slot or a later one of the schedule was already claimed. Returns whether this call claimed it
   * (and enqueued). Any number of schedulers, in any processes, calling it for the same slot enqueue one message. The
   * last claimed slot is kept per schedule name and queue (`message.queue`); it survives `flush`.
   */
  readonly claimSlot: (schedule: string, slot: number, message: Outgoing) => Effect.Effect<boolean, BrokerError>
}>()("@errand/core/Broker") {}
