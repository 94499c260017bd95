/**
 * The in-memory broker: a real broker, not a mock, for tests and for single-process apps.
 *
 * It implements the whole `Broker` contract of `@errand/core`: priorities (lower first, FIFO among equals),
 * delays, fenced leases that lapse and come back, retries with a recorded error, a dead-letter set, stats and
 * blocking takes. Time is read from Effect's `Clock`, so `TestClock` drives delays and leases in tests.
 *
 * **Guarantees**
 *
 * - Everything the `Broker` contract promises. What came due (delayed messages, lapsed leases) moves to the ready
 *   lanes, in the order it came due, when the queue is next used. Nothing runs in the background, except one timer
 *   fiber per queue while takes wait on it.
 * - A lease is checked by its token only. A lapsed lease is noticed when its queue is next used (a take, an enqueue,
 *   `stats`, or the queue's alarm while takes wait), which moves the message back to the ready lanes; until then a
 *   late settlement or `extend` with that token still succeeds. Once the message is back, the old token is rejected.
 * - Nothing is kept for a settled message, and every operation costs O(1) amortized per message, plus O(log n) in
 *   the number of delayed or in-flight messages. A take of N messages is one synchronous step.
 * - A waiting take wakes only when there is a message for it: ready messages are handed to waiting takes one at a
 *   time, first come first served, so idle consumers cost nothing.
 *
 * **Gotchas**
 *
 * Not durable: messages live in the process and are gone when it exits.
 *
 * @since 0.1.0
 */
import { Broker, Results } from "@errand/core"
import { Clock, Context, Data, Duration, Effect, type Fiber, Layer } from "effect"
import { type Alarm, type QueueState, Store, Waiter } from "./internal/store.ts"
import * as MemoryResults from "./MemoryResults.ts"

/**
 * Options of `join`.
 *
 * @category models
 * @since 0.1.0
 */
export interface JoinOptions {
  /**
   * Fail with `DeadLettered` as soon as a message of the queue is dead-lettered, instead of waiting for the queue
   * to drain and returning the dead letters.
   */
  readonly failFast?: boolean | undefined
}

/**
 * A message was dead-lettered while `join` waited with `failFast`.
 *
 * @category errors
 * @since 0.1.0
 */
export class DeadLettered extends Data.TaggedError("DeadLettered")<{
  readonly queue: string
  /** The dead letters of the queue recorded since `join` started, oldest first. */
  readonly deadLetters: ReadonlyArray<Broker.DeadLetter>
}> {
  override get message(): string {
    const reasons = this.deadLetters.map((letter) => `${letter.id} (${letter.reason.tag}: ${letter.reason.message})`)
    return `${this.deadLetters.length} message(s) of queue "${this.queue}" dead-lettered: ${reasons.join(", ")}`
  }
}

/**
 * Inspection of an in-memory broker, for tests: sizes, dead letters, and `join`, which waits for a queue to drain
 * (like Dramatiq's `StubBroker.join`).
 *
 * @category services
 * @since 0.1.0
 */
export class MemoryBroker extends Context.Service<MemoryBroker, {
  /** The broker itself, as provided under `Broker`. */
  readonly broker: Broker.Broker["Service"]
  /** The names of the queues used so far. */
  readonly queues: Effect.Effect<ReadonlyArray<string>>
  /** Current sizes of a queue. */
  readonly stats: (queue: string) => Effect.Effect<Broker.QueueStats>
  /** How many messages of a queue are not finished: ready, delayed and in flight (dead letters excluded). */
  readonly size: (queue: string) => Effect.Effect<number>
  /** A queue's dead letters, oldest first. */
  readonly deadLetters: (queue: string) => Effect.Effect<ReadonlyArray<Broker.DeadLetter>>
  /**
   * Waits until a queue has nothing ready, delayed or in flight, then returns what was dead-lettered meanwhile
   * (oldest first). With `failFast`, fails with `DeadLettered` as soon as a message is dead-lettered.
   *
   * **Gotchas**
   *
   * Under `TestClock`, delayed messages and retries come due only when the clock moves: fork the `join` and
   * `TestClock.adjust` while it waits.
   */
  readonly join: (
    queue: string,
    options?: JoinOptions | undefined
  ) => Effect.Effect<ReadonlyArray<Broker.DeadLetter>, DeadLettered>
}>()("@errand/memory/MemoryBroker") {}

const noIds: ReadonlyArray<string> = []

const millisByInput = new Map<string, number>()

/** `Duration.toMillis`, remembering parsed strings: callers pass the same lease and wait on every take. */
const toMillis = (input: Duration.Input): number => {
  if (typeof input === "number") return input
  if (typeof input !== "string") return Duration.toMillis(input)
  let millis = millisByInput.get(input)
  if (millis === undefined) {
    millis = Duration.toMillis(input)
    if (millisByInput.size >= 64) millisByInput.clear()
    millisByInput.set(input, millis)
  }
  return millis
}

/** Group records (`recordGroupMember`): each member once, counted; expired by Clock when next touched. */
class Groups {
  private readonly records = new Map<
    string,
    {
      readonly members: Map<string, boolean>
      succeeded: number
      failed: number
      completedBy: string | undefined
      firstFailed: string | undefined
      expiresAt: number
    }
  >()
  private writes = 0

  record(
    group: string,
    member: string,
    succeeded: boolean,
    size: number,
    ttlMs: number,
    now: number
  ): Broker.GroupCounts {
    if (++this.writes % 1000 === 0) {
      for (const [id, entry] of this.records) if (entry.expiresAt <= now) this.records.delete(id)
    }
    let entry = this.records.get(group)
    if (entry === undefined || entry.expiresAt <= now) {
      entry = {
        members: new Map(),
        succeeded: 0,
        failed: 0,
        completedBy: undefined,
        firstFailed: undefined,
        expiresAt: 0
      }
      this.records.set(group, entry)
    }
    entry.expiresAt = now + ttlMs
    const recorded = !entry.members.has(member)
    if (recorded) {
      entry.members.set(member, succeeded)
      if (succeeded) entry.succeeded++
      else entry.failed++
      if (succeeded && entry.failed === 0 && entry.succeeded >= size) entry.completedBy ??= member
      if (!succeeded) entry.firstFailed ??= member
    }
    return {
      succeeded: entry.succeeded,
      failed: entry.failed,
      recorded,
      completedBy: entry.completedBy,
      firstFailed: entry.firstFailed
    }
  }
}

/**
 * Creates an in-memory broker and its inspection service. The broker is `MemoryBroker.broker`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: Effect.Effect<MemoryBroker["Service"]> = Effect.sync(() => {
  const store = new Store()
  const groups = new Groups()
  /** The last claimed slot of each schedule, by queue and schedule name (`claimSlot`). */
  const claimedSlots = new Map<string, number>()
  /** The live heartbeats by process id (`heartbeat`); expired ones are dropped when read. */
  const heartbeats = new Map<string, Broker.Heartbeat>()

  let idleCheckScheduled = false
  const stopIdleAlarms = () => {
    idleCheckScheduled = false
    store.stopIdleAlarms()
  }

  /** Ends a synchronous step: runs the resumptions it caused, and starts or stops the alarms it asked for. */
  const endStep = (fiber: Fiber.Fiber<unknown, unknown>): void => {
    store.drain()
    if (store.idleAlarms.length > 0 && !idleCheckScheduled) {
      idleCheckScheduled = true
      fiber.currentDispatcher.scheduleTask(stopIdleAlarms, 0)
    }
    const queues = store.alarmsToStart
    while (queues.length > 0) {
      const q = queues.pop()!
      const alarm = q.alarm
      if (alarm === undefined || alarm.fiber !== undefined) continue
      // A detached fiber with the caller's services, so that it sleeps on the caller's `Clock`.
      alarm.fiber = Effect.runForkWith(fiber.context)(runAlarm(q, alarm))
    }
  }

  /** A queue's alarm: sleeps until its time, lets the store fire it, and again, until the store says stop. */
  const runAlarm = (q: QueueState, alarm: Alarm): Effect.Effect<void> =>
    Effect.withFiber((fiber) => {
      if (q.alarm !== alarm) return Effect.void
      const delay = alarm.at - fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      return delay > 0 ? Effect.andThen(Effect.sleep(delay), fireAlarm(q, alarm)) : fireAlarm(q, alarm)
    })

  const fireAlarm = (q: QueueState, alarm: Alarm): Effect.Effect<void> =>
    Effect.withFiber((fiber) => {
      const next = store.fire(q, alarm, fiber.getRef(Clock.Clock).currentTimeMillisUnsafe())
      endStep(fiber)
      return next === Infinity ? Effect.void : runAlarm(q, alarm)
    })

  /** One synchronous step of the store at the current time. */
  const step = <A>(f: (now: number) => A): Effect.Effect<A> =>
    Effect.withFiber((fiber) => {
      const clock = fiber.getRef(Clock.Clock)
      const a = f(clock.currentTimeMillisUnsafe())
      endStep(fiber)
      return Effect.succeed(a)
    })

  const broker = Broker.Broker.of({
    name: "memory",
    enqueue: (messages) => {
      const refused = Broker.refuseInvalid("memory", messages)
      if (refused !== undefined) return Effect.fail(refused)
      return step((now) => {
        const duplicates = store.enqueue(messages, now)
        return duplicates === undefined ? Broker.allEnqueued : { duplicates }
      })
    },
    take: (request) =>
      Effect.withFiber((fiber) => {
        const clock = fiber.getRef(Clock.Clock)
        const now = clock.currentTimeMillisUnsafe()
        const rejected = request.settle === undefined || request.settle.length === 0
          ? noIds
          : store.settle(request.settle, now)
        const max = request.max >= 1 ? Math.floor(request.max) : 0
        const leaseMs = toMillis(request.lease)
        const deliveries = store.take(request.queue, max, leaseMs, now)
        endStep(fiber)
        const waitMs = request.wait === undefined ? 0 : toMillis(request.wait)
        if (deliveries.length > 0 || max === 0 || !(waitMs > 0)) {
          return Effect.succeed<Broker.Taken>({ deliveries, rejected })
        }
        const deadline = now + waitMs
        // Registering inside the callback makes "nothing to take, so wait" one step, with nothing in between.
        return Effect.callback<Broker.Taken>((resume) => {
          const now = clock.currentTimeMillisUnsafe()
          const deliveries = store.take(request.queue, max, leaseMs, now)
          if (deliveries.length > 0 || now >= deadline) {
            endStep(fiber)
            return resume(Effect.succeed({ deliveries, rejected }))
          }
          const q = store.queue(request.queue)
          const waiter = new Waiter(max, leaseMs, deadline, (deliveries) =>
            resume(Effect.succeed({ deliveries, rejected })))
          store.wait(q, waiter)
          endStep(fiber)
          return Effect.sync(() => {
            store.cancel(q, waiter, clock.currentTimeMillisUnsafe())
            endStep(fiber)
          })
        })
      }),
    settle: (settlements) => step((now) => store.settle(settlements, now)),
    extend: (deliveries, lease) => {
      const leaseMs = toMillis(lease)
      return step((now) => store.extend(deliveries, leaseMs, now))
    },
    stats: (queue) => step((now) => store.stats(queue, now)),
    deadLetters: (queue, options) => {
      const refused = Broker.refuseInvalidPage("memory", options)
      if (refused !== undefined) return Effect.fail(refused)
      return Effect.sync(() =>
        store.deadLetters(queue, options?.limit === undefined ? Infinity : options.limit, options?.offset ?? 0)
      )
    },
    deadLetter: (queue, id) => Effect.sync(() => store.deadLetter(queue, id)),
    heartbeat: (heartbeat) => {
      const refused = Broker.refuseInvalidHeartbeat("memory", heartbeat)
      if (refused !== undefined) return Effect.fail(refused)
      return Effect.sync(() => {
        heartbeats.set(heartbeat.id, heartbeat)
      })
    },
    heartbeats: Effect.map(Clock.currentTimeMillis, (now) => {
      for (const [id, heartbeat] of heartbeats) if (heartbeat.expiresAt <= now) heartbeats.delete(id)
      return [...heartbeats.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    }),
    requeueDeadLetters: (queue, selection) => step((now) => store.requeueDeadLetters(queue, selection?.ids, now)),
    purgeDeadLetters: (queue, selection) => Effect.sync(() => store.purgeDeadLetters(queue, selection?.ids)),
    flush: (queue) => step((now) => store.flush(queue, now)),
    cancel: (queue, ids) => step((now) => store.cancelMessages(queue, ids, now)),
    recordGroupMember: (group, member, succeeded, size, ttl) =>
      Effect.map(Clock.currentTimeMillis, (now) => groups.record(group, member, succeeded, size, toMillis(ttl), now)),
    queues: Effect.sync(() => [...store.queueNames()].sort()),
    claimSlot: (schedule, slot, message) => {
      const refused = Broker.refuseInvalid("memory", [message], "claimSlot")
      if (refused !== undefined) return Effect.fail(refused)
      return step((now) => {
        const key = `${message.queue}\u0000${schedule}`
        const last = claimedSlots.get(key)
        if (last !== undefined && last >= slot) return false
        claimedSlots.set(key, slot)
        // the slot claim is the message's deduplication: an idempotency key is not used here
        store.enqueue([message.key === undefined ? message : { ...message, key: undefined, keyTtl: undefined }], now)
        return true
      })
    }
  })

  const stats = (queue: string) => step((now) => store.stats(queue, now))
  return MemoryBroker.of({
    broker,
    queues: Effect.sync(() => store.queueNames()),
    stats,
    size: (queue) => Effect.map(stats(queue), (stats) => stats.ready + stats.delayed + stats.inFlight),
    deadLetters: (queue) => Effect.sync(() => store.deadLetters(queue, Infinity)),
    join: (queue, options) =>
      Effect.withFiber((fiber) => {
        const clock = fiber.getRef(Clock.Clock)
        return Effect.callback<ReadonlyArray<Broker.DeadLetter>, DeadLettered>((resume) => {
          const cancel = store.join(queue, {
            deadSeq: store.queue(queue).deadSeq,
            failFast: options?.failFast === true,
            onIdle: (deadLetters) => resume(Effect.succeed(deadLetters)),
            onDeadLetter: (deadLetters) => resume(Effect.fail(new DeadLettered({ queue, deadLetters })))
          }, clock.currentTimeMillisUnsafe())
          endStep(fiber)
          return Effect.sync(cancel)
        })
      })
  })
})

/**
 * An in-memory broker, provided as the `Broker`, as its `MemoryBroker` inspection service, and with an in-memory
 * `Results` store (see `MemoryResults`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer: Layer.Layer<Broker.Broker | MemoryBroker | Results.Results> = Layer.effectContext(
  Effect.map(
    Effect.all([make, MemoryResults.make]),
    ([memory, results]) =>
      Context.make(MemoryBroker, memory).pipe(
        Context.add(Broker.Broker, memory.broker),
        Context.add(Results.Results, results)
      )
  )
)

/**
 * Current sizes of a queue of the provided memory broker.
 *
 * @category accessors
 * @since 0.1.0
 */
export const stats = (queue: string): Effect.Effect<Broker.QueueStats, never, MemoryBroker> =>
  MemoryBroker.use((memory) => memory.stats(queue))

/**
 * How many messages of a queue of the provided memory broker are not finished (ready, delayed or in flight).
 *
 * @category accessors
 * @since 0.1.0
 */
export const size = (queue: string): Effect.Effect<number, never, MemoryBroker> =>
  MemoryBroker.use((memory) => memory.size(queue))

/**
 * The dead letters of a queue of the provided memory broker, oldest first: `yield* MemoryBroker.deadLetters("email")`.
 *
 * @category accessors
 * @since 0.1.0
 */
export const deadLetters = (queue: string): Effect.Effect<ReadonlyArray<Broker.DeadLetter>, never, MemoryBroker> =>
  MemoryBroker.use((memory) => memory.deadLetters(queue))

/**
 * Waits until a queue of the provided memory broker has drained; see `MemoryBroker.join`.
 *
 * @category accessors
 * @since 0.1.0
 */
export const join = (
  queue: string,
  options?: JoinOptions | undefined
): Effect.Effect<ReadonlyArray<Broker.DeadLetter>, DeadLettered, MemoryBroker> =>
  MemoryBroker.use((memory) => memory.join(queue, options))
