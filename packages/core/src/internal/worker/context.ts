/**
 * What the parts of a worker share: its settings, its broker and clock, and its state (one event loop, so plain
 * mutable fields). `Worker.make` builds one `WorkerContext` and hands it to each part: the take loops
 * (`takeLoop.ts`), the runners (`runners.ts`), the outcomes of messages (`outcome.ts`), their settlement
 * (`settlement.ts`), the lease keeper (`leases.ts`) and shutdown (`shutdown.ts`).
 *
 * @internal
 */
import { type Clock, Context, type Effect, type Fiber, type Schema } from "effect"
import type * as Actor from "../../Actor.ts"
import type { Broker, Delivery, Settlement } from "../../Broker.ts"
import type { Envelope, Message } from "../../Message.ts"
import type { Middleware } from "../../Middleware.ts"
import type { Results } from "../../Results.ts"
import type { Event } from "../../Worker.ts"
import type * as Payload from "../payload.ts"
import type { RetryPolicy } from "../retry.ts"

/**
 * The message a handler is running, for code deep inside a handler (`yield* Worker.CurrentMessage`). The worker
 * provides it, so it never appears in the worker's requirements.
 *
 * @category services
 * @since 0.1.0
 */
export class CurrentMessage extends Context.Service<CurrentMessage, Message>()("@errand/core/Worker/CurrentMessage") {}

/** @internal */
export interface Registered {
  readonly actor: Actor.Any
  readonly run: (payload: unknown, message: Message) => Effect.Effect<unknown, unknown, unknown>
  readonly decodePayload: (encoded: unknown) => Effect.Effect<unknown, Schema.SchemaError, unknown>
  /**
   * The compiled decoder of simple payload codecs (`internal/payload.ts`): the decoded payload, or `invalid`, and then
   * `decodePayload` decides. `undefined` when the codec is not one it compiles.
   */
  readonly decodePayloadFast: Payload.Decode | undefined
  readonly retryPolicy: RetryPolicy<Actor.Failure<unknown>>
  /** How long outcomes are stored (`undefined`: not stored), and their encoders. */
  readonly resultTtlMillis: number | undefined
  readonly encodeSuccess: (value: unknown) => Effect.Effect<unknown, Schema.SchemaError, unknown>
  readonly encodeError: (error: unknown) => Effect.Effect<unknown, Schema.SchemaError, unknown>
}

/**
 * A worker's options, validated, with defaults applied; durations in milliseconds.
 *
 * @internal
 */
export interface Settings {
  readonly concurrency: number
  readonly prefetch: number
  readonly leaseMillis: number
  readonly idleWait: number
  readonly shutdownTimeout: number
  readonly releaseTimeout: number
  readonly maxLostLeases: number
}

/**
 * A delivery the worker holds: made when it is taken, waiting in the buffer, then run.
 *
 * @internal
 */
export interface Job {
  readonly delivery: Delivery
  /** Its queue's state. */
  readonly queue: QueueState
  /** Its position in `WorkerState.held`, -1 once it is no longer held. */
  heldIndex: number
  registered: Registered | undefined
  message: Message | undefined
  startedAt: number
  /** When its time limit runs out (Infinity: none). */
  deadline: number
  /** Interrupted by the time-limit watchdog. */
  timedOut: boolean
  /** The handler has finished (or never ran): the watchdog leaves it alone. */
  finished: boolean
  fiber: Fiber.Fiber<void> | undefined
  /** Its envelope, once decoded: callbacks, pipeline and group ride in it. */
  envelope: Envelope | undefined
}

/**
 * One consumed queue: the outcomes waiting to be recorded, and its take loop's state.
 *
 * @internal
 */
export interface QueueState {
  readonly queue: string
  /** Settlements not sent yet: they go with the next take, or by `settle` while the take loop blocks. */
  pending: Array<Settlement>
  /** The take loop is in a blocking take: settlements cannot ride on it. */
  blocking: boolean
  /** A `flush` of `pending` is under way. */
  flushing: boolean
  /** Resumes the take loop parked on a full worker. */
  wake: (() => void) | undefined
  /** A broker call for this queue failed and none has succeeded since: the outage is logged once. */
  outage: boolean
}

/**
 * The mutable state of a worker.
 *
 * @internal
 */
export class WorkerState {
  /** Shutdown has begun: take nothing more. */
  stopping = false
  /** Messages run to an outcome, by outcome, for the stop line. */
  succeededCount = 0
  retriedCount = 0
  deadLetteredCount = 0
  /** Messages put back unrun or unfinished, for the stop line. */
  releasedCount = 0
  /** Handlers running now. */
  running = 0
  /** Called when `running` drops to 0 while shutting down. */
  onIdle: (() => void) | undefined = undefined
  /** Every job whose delivery this worker holds a lease on, in no particular order (see `hold` and `release`). */
  readonly held: Array<Job> = []
  /** The consumed queues, in a list for iterating without an iterator object per settlement. */
  readonly queues: ReadonlyArray<QueueState>
  readonly byName: ReadonlyMap<string, QueueState>
  /** Taken, waiting for a free handler slot: a FIFO read from `head`. */
  private buffer: Array<Job> = []
  private head = 0

  constructor(queueNames: ReadonlyArray<string>) {
    this.queues = queueNames.map((queue) => ({
      queue,
      pending: [],
      blocking: false,
      flushing: false,
      wake: undefined,
      outage: false
    }))
    this.byName = new Map(this.queues.map((state) => [state.queue, state]))
  }

  /** How many deliveries wait in the buffer. */
  buffered(): number {
    return this.buffer.length - this.head
  }

  /** Adds a taken job to the buffer. */
  pushBuffered(job: Job): void {
    this.buffer.push(job)
  }

  /** Takes the oldest buffered job, if any. */
  nextBuffered(): Job | undefined {
    if (this.head >= this.buffer.length) return undefined
    const job = this.buffer[this.head]!
    this.buffer[this.head++] = undefined as unknown as Job
    if (this.head >= 1024 && this.head * 2 >= this.buffer.length) {
      this.buffer = this.buffer.slice(this.head)
      this.head = 0
    }
    return job
  }

  /** Records a job as held (its lease counts against the worker's capacity and is extended). */
  hold(job: Job): void {
    job.heldIndex = this.held.length
    this.held.push(job)
  }

  /** Stops holding a job, in O(1) (the last held job takes its place); a job no longer held is left alone. */
  release(job: Job): void {
    const index = job.heldIndex
    if (index < 0) return
    const held = this.held
    const last = held.pop()!
    if (last !== job) {
      held[index] = last
      last.heldIndex = index
    }
    job.heldIndex = -1
  }

  /** Resumes every take loop parked on a full worker (a slot or a settlement is there for it). */
  wakeAll(): void {
    const queues = this.queues
    for (let i = 0; i < queues.length; i++) {
      const state = queues[i]!
      const wake = state.wake
      if (wake !== undefined) {
        state.wake = undefined
        wake()
      }
    }
  }
}

/**
 * What every part of a worker reads.
 *
 * @internal
 */
export interface WorkerContext {
  readonly broker: Broker["Service"]
  /** Where outcomes are stored, for actors with `storeResults` (provided by the broker layers). */
  readonly results: Results["Service"] | undefined
  readonly clock: Clock.Clock
  readonly settings: Settings
  /** How many deliveries the worker holds at most: running plus prefetched. */
  readonly capacity: number
  readonly registry: ReadonlyMap<string, Registered>
  readonly state: WorkerState
  /** The middleware in use (`Middleware.layer`), read when the worker starts. */
  readonly middlewares: ReadonlyArray<Middleware>
  /** Whether an `onEvent` listener is set (the usual path skips building events when not). */
  readonly listening: boolean
  /** Reports an event to `onEvent`; its failures are logged, never fatal. */
  readonly emit: (event: Event) => Effect.Effect<void>
  /** Runs the worker's own background fibers (time-limit alarm, flushes), outside the handlers' context. */
  readonly runSystem: (effect: Effect.Effect<void>) => Fiber.Fiber<void>
  /**
   * Runs handler fibers, with the services the handlers need. Not a `FiberSet`: its finalizer would await every
   * fiber, and a handler that ignores interruption would then hold shutdown past its deadline.
   */
  readonly runHandlers: (effect: Effect.Effect<never, never, unknown>) => Fiber.Fiber<never>
}
