/**
 * The memory broker's engine: plain mutable structures driven by synchronous operations. Every public operation of
 * `MemoryBroker` is one call into a `Store` inside a single `Effect.sync`-like step, so a take of N messages is one
 * critical section (JavaScript is single-threaded; no locks are needed).
 *
 * **Structures, per queue**
 *
 * - ready: one FIFO ring buffer per priority level, and a small sorted array of the levels in use;
 * - delayed: a min-heap by eta;
 * - in flight: a min-heap by lease expiry (indexed, so acks remove in O(log n), nothing stale). A delivery carries a
 *   private link to its entry (`MemoryDelivery`), so settling and extending need no index by id; an entry is in flight
 *   exactly while its `lease` is set. A delivery without the link (built by hand) is found through an index by id
 *   built for that one operation;
 * - dead: a map by id in dead-lettering order;
 * - waiters: a doubly linked list of waiting takes, served first come, first served;
 * - idempotency keys: a map key → `KeyHold` (the holder's id, and when the hold ends: `Infinity` while the holder is
 *   queued or running), and a min-heap of the finished holders' windows, pruned when keys are used.
 *
 * **Time**
 *
 * Each operation first moves what has come due (delayed messages whose eta passed, leases that lapsed) to the ready
 * lanes, in the order they came due. Only while takes are waiting does a queue need a timer: its `Alarm`, one
 * detached fiber per queue, sleeping on `Clock` until the earliest of the next due time and the earliest waiter
 * deadline. It hands what came due to waiters and sends expired waiters home empty-handed, then sleeps again. A new
 * alarm fiber is started only when the wake-up time must move earlier; waiters themselves need no timer.
 *
 * **Waking**
 *
 * Messages that become ready are handed directly to waiting takes, one waiter per batch of up to its `max`
 * messages, so exactly as many waiters wake as there is work for. Resumptions run after the state is consistent
 * (`drain`), because a resumed fiber runs synchronously and may call back into the store.
 *
 * @internal
 */
import { Broker, type Message } from "@errand/core"
import type { Fiber } from "effect"
import { Deque } from "./Deque.ts"
import { Heap, type HeapItem } from "./Heap.ts"

type Delivery = Broker.Delivery
type LastError = Message.LastError

/** A message while it lives in the broker. One mutable record, moved between structures. @internal */
export class Entry implements HeapItem {
  readonly id: string
  readonly queue: string
  readonly priority: number
  readonly body: unknown
  attempts = 0
  deliveries = 0
  lastError: LastError | undefined = undefined
  /** The failures recorded by `Retry` settlements, then the dead-letter reason, oldest first (bounded). */
  history: Array<Broker.AttemptRecord> | undefined = undefined
  /**
   * The eta while delayed; the lease expiry while in flight. Epoch milliseconds are not small integers, so this field
   * (and `deadAt`) starts as a non-integer number: V8 then stores it as a double from the start, instead of migrating
   * every live entry's hidden class on the first assignment.
   */
  due = Number.NaN
  /** Tie-breaker among equal `due`: the order of arrival. */
  seq = 0
  /** The current lease's token while in flight, `""` otherwise. */
  lease = ""
  heapIndex = -1
  deadAt = Number.NaN
  deadSeq = 0
  reason: LastError | undefined = undefined
  /** Its idempotency key, if any, and how long the key stays held after it finished. */
  key: string | undefined = undefined
  keyTtl = 0
  /** Limits checked when it is taken (`Broker.Limits`). */
  limits: Broker.Limits | undefined = undefined

  constructor(id: string, queue: string, priority: number, body: unknown) {
    this.id = id
    this.queue = queue
    this.priority = priority
    this.body = body
  }
}

const emptyDeliveries: ReadonlyArray<Delivery> = []

/**
 * A delivery of the memory broker: the `Broker.Delivery` fields, and a private link to the entry it leases. The link
 * only saves a lookup: a delivery is current when its entry's lease is still its `lease`.
 *
 * @internal
 */
export class MemoryDelivery implements Delivery {
  readonly id: string
  readonly queue: string
  readonly body: unknown
  readonly attempts: number
  readonly deliveries: number
  readonly lastError: LastError | undefined
  readonly lease: string
  readonly leaseExpiresAt: number
  readonly #entry: Entry

  constructor(entry: Entry) {
    this.id = entry.id
    this.queue = entry.queue
    this.body = entry.body
    this.attempts = entry.attempts
    this.deliveries = entry.deliveries
    this.lastError = entry.lastError
    this.lease = entry.lease
    this.leaseExpiresAt = entry.due
    this.#entry = entry
  }

  /** The entry a delivery of this broker was taken from; `undefined` for any other object. */
  static entryOf(delivery: Delivery): Entry | undefined {
    return #entry in delivery ? delivery.#entry : undefined
  }
}

/** In-flight entries by id, built on first use by an operation that gets a delivery without a link, or an id. */
class InFlightIndex {
  private q: QueueState | undefined = undefined
  private byId: Map<string, Entry> | undefined = undefined

  get(q: QueueState, id: string): Entry | undefined {
    if (this.q !== q || this.byId === undefined) {
      const byId = new Map<string, Entry>()
      q.leases.forEach((entry) => byId.set(entry.id, entry))
      this.q = q
      this.byId = byId
    }
    return this.byId.get(id)
  }

  /** The entry `delivery` leases now, or `undefined` (settled, lapsed, taken again, or not of this queue). */
  current(q: QueueState, delivery: Delivery): Entry | undefined {
    const entry = MemoryDelivery.entryOf(delivery) ?? this.get(q, delivery.id)
    return entry !== undefined && entry.lease !== "" && entry.lease === delivery.lease && entry.id === delivery.id &&
        entry.queue === q.name
      ? entry
      : undefined
  }
}

/** Who holds an idempotency key of a queue, and until when (`Infinity` while the holder is queued or running). @internal */
export class KeyHold implements HeapItem {
  readonly key: string
  readonly holder: string
  releaseAt = Infinity
  heapIndex = -1

  constructor(key: string, holder: string) {
    this.key = key
    this.holder = holder
  }
}

const byReleaseAt = (a: KeyHold, b: KeyHold): boolean => a.releaseAt < b.releaseAt

const byDue = (a: Entry, b: Entry): boolean => a.due < b.due || (a.due === b.due && a.seq < b.seq)

const byDeadline = (a: Waiter, b: Waiter): boolean =>
  a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq)

/** A suspended `take`. @internal */
export class Waiter implements HeapItem {
  readonly max: number
  readonly leaseMs: number
  readonly deadline: number
  private readonly resume: (deliveries: ReadonlyArray<Delivery>) => void
  seq = 0
  heapIndex = -1
  prev: Waiter | undefined = undefined
  next: Waiter | undefined = undefined
  linked = false
  /** Resumed, or interrupted. */
  done = false
  /** What it gets: set when it is handed messages or its deadline passes, delivered by `drain`. */
  result: ReadonlyArray<Delivery> | undefined = undefined

  constructor(
    max: number,
    leaseMs: number,
    deadline: number,
    resume: (deliveries: ReadonlyArray<Delivery>) => void
  ) {
    this.max = max
    this.leaseMs = leaseMs
    this.deadline = deadline
    this.resume = resume
  }

  readonly wake = (): void => {
    if (this.done) return
    this.done = true
    this.resume(this.result ?? emptyDeliveries)
  }
}

/**
 * A queue's timer while takes wait: a detached fiber (started by `MemoryBroker`) that sleeps until `at`, then calls
 * `Store.fire`. @internal
 */
export class Alarm {
  at: number
  fiber: Fiber.Fiber<unknown, unknown> | undefined = undefined

  constructor(at: number) {
    this.at = at
  }
}

/** A suspended `join`. @internal */
export interface Joiner {
  readonly deadSeq: number
  readonly failFast: boolean
  readonly onIdle: (deadLetters: ReadonlyArray<Broker.DeadLetter>) => void
  readonly onDeadLetter: (deadLetters: ReadonlyArray<Broker.DeadLetter>) => void
}

/** One queue's state. @internal */
export class QueueState {
  readonly name: string
  /** Priority levels in use, ascending; `lanes[i]` holds the ready messages of `levels[i]`. */
  readonly levels: Array<number> = []
  readonly lanes: Array<Deque<Entry>> = []
  readyCount = 0
  readonly delayed = new Heap<Entry>(byDue)
  readonly leases = new Heap<Entry>(byDue)
  readonly dead = new Map<string, Entry>()
  deadSeq = 0
  waitHead: Waiter | undefined = undefined
  waitTail: Waiter | undefined = undefined
  /** The linked waiters by deadline. */
  readonly deadlines = new Heap<Waiter>(byDeadline)
  alarm: Alarm | undefined = undefined
  /** In `Store.idleAlarms`. */
  idleCheck = false
  readonly joiners = new Set<Joiner>()
  readonly keys = new Map<string, KeyHold>()
  /** The holds whose holder finished, by the end of their window. */
  readonly windows = new Heap<KeyHold>(byReleaseAt)
  /** Rate limits: per key, the times of the takes in the current sliding window, oldest first. */
  readonly rateLog = new Map<string, Array<number>>()
  /** Concurrency limits: per key, how many of its messages are in flight. */
  readonly running = new Map<string, number>()
  /** Concurrency limits: per key, the messages waiting for a slot, in arrival order. */
  readonly parked = new Map<string, Deque<Entry>>()
  parkedCount = 0

  constructor(name: string) {
    this.name = name
  }

  get idle(): boolean {
    return this.readyCount === 0 && this.delayed.size === 0 && this.leases.size === 0 && this.parkedCount === 0
  }

  /** When the alarm must fire: the next due time or the earliest waiter deadline, whichever comes first. */
  wakeUpAt(): number {
    const waiter = this.deadlines.peek()
    const due = this.nextDue()
    return waiter === undefined || due < waiter.deadline ? due : waiter.deadline
  }

  nextDue(): number {
    const delayed = this.delayed.peek()
    const lease = this.leases.peek()
    const a = delayed === undefined ? Infinity : delayed.due
    const b = lease === undefined ? Infinity : lease.due
    return a < b ? a : b
  }
}

const toDeadLetter = (entry: Entry): Broker.DeadLetter => ({
  id: entry.id,
  queue: entry.queue,
  body: entry.body,
  attempts: entry.attempts,
  reason: entry.reason!,
  deadAt: entry.deadAt,
  history: entry.history === undefined ? [] : entry.history.slice()
})

/** Appends a failure to an entry's attempt history, keeping the last `Broker.maxAttemptHistory`. */
const recordAttempt = (entry: Entry, error: LastError, at: number): void => {
  const history = (entry.history ??= [])
  history.push({ at, tag: error.tag, message: error.message })
  if (history.length > Broker.maxAttemptHistory) history.splice(0, history.length - Broker.maxAttemptHistory)
}

/** The whole broker. @internal */
export class Store {
  private readonly queues = new Map<string, QueueState>()
  private readonly pending = new Deque<() => void>()
  /** Queues whose new `alarm` has no fiber yet: `MemoryBroker` starts them after each operation. */
  readonly alarmsToStart: Array<QueueState> = []
  /**
   * Queues whose last waiter was just served: their alarm stops unless a take waits again soon (`stopIdleAlarms`,
   * which `MemoryBroker` runs as a separate task). A consumer that takes again right after being served keeps the
   * alarm, so the alarm fiber is not restarted for every message.
   */
  readonly idleAlarms: Array<QueueState> = []
  private seq = 0
  private tokens = 0

  queue(name: string): QueueState {
    let state = this.queues.get(name)
    if (state === undefined) {
      state = new QueueState(name)
      this.queues.set(name, state)
    }
    return state
  }

  queueNames(): ReadonlyArray<string> {
    return Array.from(this.queues.keys())
  }

  /** Runs the resumptions collected by the last operation. Call after every operation, outside any iteration. */
  drain(): void {
    const pending = this.pending
    let resume = pending.shift()
    while (resume !== undefined) {
      resume()
      resume = pending.shift()
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  // operations

  /** Enqueues messages; returns the keyed ones left out (id → holder of their key), or `undefined` when none was. */
  enqueue(messages: ReadonlyArray<Broker.Outgoing>, now: number): Map<string, string> | undefined {
    let q: QueueState | undefined = undefined
    let duplicates: Map<string, string> | undefined = undefined
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i]!
      if (q === undefined || q.name !== message.queue) {
        if (q !== undefined) this.finish(q, now)
        q = this.queue(message.queue)
        this.advance(q, now)
      }
      const entry = new Entry(message.id, message.queue, message.priority, message.body)
      const key = message.key
      if (key !== undefined) {
        const holder = this.holdKey(q, key, message.id, now)
        if (holder !== undefined) {
          ;(duplicates ??= new Map()).set(message.id, holder)
          continue
        }
        entry.key = key
        entry.keyTtl = message.keyTtl ?? 0
      }
      if (message.limits !== undefined) entry.limits = message.limits
      this.schedule(q, entry, message.eta, now)
    }
    if (q !== undefined) this.finish(q, now)
    return duplicates
  }

  /**
   * Removes ready, delayed or parked messages (a linear search of the queue: cancelling is rare) and releases their
   * keys; leased ones are left alone.
   */
  cancelMessages(name: string, ids: ReadonlyArray<string>, now: number): Array<Broker.CancelOutcome> {
    const q = this.queues.get(name)
    const outcomes = new Array<Broker.CancelOutcome>(ids.length).fill("notFound")
    if (q === undefined) return outcomes
    this.advance(q, now)
    const inFlight = new InFlightIndex()
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!
      if (inFlight.get(q, id) !== undefined) {
        outcomes[i] = "running"
        continue
      }
      const matches = (entry: Entry) => entry.id === id
      let entry = q.delayed.find(matches)
      if (entry !== undefined) {
        q.delayed.remove(entry)
      } else {
        for (let l = 0; l < q.lanes.length && entry === undefined; l++) entry = q.lanes[l]!.removeFirst(matches)
        if (entry !== undefined) q.readyCount--
        else entry = this.unpark(q, matches)
        if (entry === undefined) continue
      }
      if (entry.key !== undefined) {
        const hold = q.keys.get(entry.key)
        if (hold !== undefined && hold.holder === entry.id) this.dropHold(q, hold)
      }
      outcomes[i] = "cancelled"
    }
    this.finish(q, now)
    return outcomes
  }

  /** Removes the first parked message (waiting for a concurrency slot) that matches. */
  private unpark(q: QueueState, matches: (entry: Entry) => boolean): Entry | undefined {
    for (const [key, parked] of q.parked) {
      const entry = parked.removeFirst(matches)
      if (entry === undefined) continue
      q.parkedCount--
      if (parked.length === 0) q.parked.delete(key)
      return entry
    }
    return undefined
  }

  /** Leases up to `max` ready messages of a queue. */
  take(name: string, max: number, leaseMs: number, now: number): ReadonlyArray<Delivery> {
    const q = this.queue(name)
    this.advance(q, now)
    if (q.readyCount === 0 || max <= 0) {
      this.finish(q, now)
      return emptyDeliveries
    }
    const out: Array<Delivery> = []
    this.takeReady(q, max, leaseMs, now, out)
    this.finish(q, now)
    return out
  }

  /** Applies settlements; returns the ids whose lease was not current. */
  settle(settlements: ReadonlyArray<Broker.Settlement>, now: number): ReadonlyArray<string> {
    let rejected: Array<string> | undefined = undefined
    let q: QueueState | undefined = undefined
    const inFlight = new InFlightIndex()
    for (let i = 0; i < settlements.length; i++) {
      const settlement = settlements[i]!
      const delivery = settlement.delivery
      if (q === undefined || q.name !== delivery.queue) {
        if (q !== undefined) this.finish(q, now)
        q = this.queues.get(delivery.queue)
      }
      const entry = q === undefined ? undefined : inFlight.current(q, delivery)
      if (q === undefined || entry === undefined) {
        ;(rejected ??= []).push(delivery.id)
        continue
      }
      entry.lease = ""
      q.leases.remove(entry)
      // it ends: its key stays held for its window
      if (entry.key !== undefined && (settlement._tag === "Ack" || settlement._tag === "DeadLetter")) {
        this.startWindow(q, entry, now)
      }
      if (entry.limits !== undefined) this.freeSlot(q, entry)
      switch (settlement._tag) {
        case "Ack": {
          // Nothing more: it has left the broker.
          break
        }
        case "Retry": {
          entry.attempts++
          entry.lastError = settlement.error
          recordAttempt(entry, settlement.error, now)
          this.schedule(q, entry, settlement.eta, now)
          break
        }
        case "DeadLetter": {
          // A dead letter counts handler runs: this delivery's counts when it ran.
          if (settlement.ran !== false) entry.attempts++
          entry.reason = settlement.reason
          recordAttempt(entry, settlement.reason, now)
          entry.deadAt = now
          entry.deadSeq = ++q.deadSeq
          q.dead.set(entry.id, entry)
          break
        }
        case "Release": {
          // a released lease is not a lost one: it does not count in `deliveries`
          entry.deliveries--
          this.pushReady(q, entry)
          break
        }
      }
    }
    if (q !== undefined) this.finish(q, now)
    return rejected ?? []
  }

  /** Extends current leases to `now + leaseMs`; returns the ids whose lease was lost. */
  extend(deliveries: ReadonlyArray<Delivery>, leaseMs: number, now: number): ReadonlyArray<string> {
    let lost: Array<string> | undefined = undefined
    const inFlight = new InFlightIndex()
    for (let i = 0; i < deliveries.length; i++) {
      const delivery = deliveries[i]!
      const q = this.queues.get(delivery.queue)
      const entry = q === undefined ? undefined : inFlight.current(q, delivery)
      if (q === undefined || entry === undefined) {
        ;(lost ??= []).push(delivery.id)
        continue
      }
      entry.due = now + leaseMs
      q.leases.update(entry)
      this.updateAlarm(q)
    }
    return lost ?? []
  }

  stats(name: string, now: number): Broker.QueueStats {
    const q = this.queues.get(name)
    if (q === undefined) return { ready: 0, delayed: 0, inFlight: 0, dead: 0 }
    this.advance(q, now)
    this.finish(q, now)
    return {
      ready: q.readyCount,
      delayed: q.delayed.size + q.parkedCount,
      inFlight: q.leases.size,
      dead: q.dead.size
    }
  }

  deadLetters(name: string, limit: number, offset = 0): ReadonlyArray<Broker.DeadLetter> {
    const q = this.queues.get(name)
    const out: Array<Broker.DeadLetter> = []
    if (q === undefined || limit <= 0) return out
    let skip = offset
    for (const entry of q.dead.values()) {
      if (skip > 0) {
        skip--
        continue
      }
      out.push(toDeadLetter(entry))
      if (out.length >= limit) break
    }
    return out
  }

  deadLetter(name: string, id: string): Broker.DeadLetter | undefined {
    const entry = this.queues.get(name)?.dead.get(id)
    return entry === undefined ? undefined : toDeadLetter(entry)
  }

  requeueDeadLetters(name: string, ids: ReadonlyArray<string> | undefined, now: number): number {
    const q = this.queues.get(name)
    if (q === undefined) return 0
    this.advance(q, now)
    const entries = this.selectDead(q, ids)
    for (const entry of entries) {
      q.dead.delete(entry.id)
      entry.attempts = 0
      entry.deliveries = 0
      entry.lastError = undefined
      entry.reason = undefined
      entry.history = undefined
      this.pushReady(q, entry)
    }
    this.finish(q, now)
    return entries.length
  }

  purgeDeadLetters(name: string, ids: ReadonlyArray<string> | undefined): number {
    const q = this.queues.get(name)
    if (q === undefined) return 0
    const entries = this.selectDead(q, ids)
    for (const entry of entries) {
      q.dead.delete(entry.id)
    }
    return entries.length
  }

  flush(name: string, now: number): void {
    const q = this.queues.get(name)
    if (q === undefined) return
    for (const lane of q.lanes) lane.clear()
    q.levels.length = 0
    q.lanes.length = 0
    q.readyCount = 0
    q.delayed.clear()
    // their deliveries are no longer current
    q.leases.forEach((entry) => {
      entry.lease = ""
    })
    q.leases.clear()
    q.dead.clear()
    q.keys.clear()
    q.windows.clear()
    q.rateLog.clear()
    q.running.clear()
    q.parked.clear()
    q.parkedCount = 0
    this.finish(q, now)
    // Forget the queue unless a take or a join still refers to it.
    if (q.waitHead === undefined && q.joiners.size === 0) this.queues.delete(name)
  }

  // ---------------------------------------------------------------------------------------------------------------
  // waiting takes

  /** Suspends a take that found nothing, in the same synchronous step. */
  wait(q: QueueState, waiter: Waiter): void {
    waiter.seq = ++this.seq
    this.link(q, waiter)
    q.deadlines.push(waiter)
    this.updateAlarm(q)
  }

  /** The waiting fiber was interrupted: put back anything handed to it that it never got, and leave. */
  cancel(q: QueueState, waiter: Waiter, now: number): void {
    if (waiter.done) return
    waiter.done = true
    const result = waiter.result
    if (result !== undefined) {
      const inFlight = new InFlightIndex()
      for (let i = result.length - 1; i >= 0; i--) {
        const delivery = result[i]!
        const entry = inFlight.current(q, delivery)
        if (entry === undefined) continue
        entry.lease = ""
        q.leases.remove(entry)
        entry.deliveries--
        if (entry.limits !== undefined) this.freeSlot(q, entry)
        this.pushReady(q, entry, true)
      }
    }
    this.unlink(q, waiter)
    if (q.waitHead === undefined) this.stopAlarm(q)
    this.finish(q, now)
  }

  /**
   * The alarm's time came: hand over what came due, send expired waiters home. Returns when to fire next, or
   * `Infinity` when the alarm is done.
   */
  fire(q: QueueState, alarm: Alarm, now: number): number {
    if (q.alarm !== alarm) return Infinity
    this.advance(q, now)
    this.finish(q, now)
    let waiter = q.deadlines.peek()
    while (waiter !== undefined && waiter.deadline <= now) {
      this.unlink(q, waiter)
      waiter.result = emptyDeliveries
      this.pending.push(waiter.wake)
      waiter = q.deadlines.peek()
    }
    const at = q.waitHead === undefined ? Infinity : q.wakeUpAt()
    if (at === Infinity) q.alarm = undefined
    else alarm.at = at
    return at
  }

  // ---------------------------------------------------------------------------------------------------------------
  // join

  join(name: string, joiner: Joiner, now: number): () => void {
    const q = this.queue(name)
    this.advance(q, now)
    q.joiners.add(joiner)
    this.finish(q, now)
    return () => {
      q.joiners.delete(joiner)
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  // internals

  /**
   * Takes an idempotency key for `id`, unless it is held: then returns the holder's id. Expired windows are dropped
   * first.
   */
  private holdKey(q: QueueState, key: string, id: string, now: number): string | undefined {
    this.pruneWindows(q, now)
    const hold = q.keys.get(key)
    if (hold !== undefined) return hold.holder
    q.keys.set(key, new KeyHold(key, id))
    return undefined
  }

  /** The holder of a key ended: it keeps the key for its window (or releases it now, for a window of 0). */
  private startWindow(q: QueueState, entry: Entry, now: number): void {
    const hold = q.keys.get(entry.key!)
    if (hold === undefined || hold.holder !== entry.id) return
    if (entry.keyTtl > 0) {
      hold.releaseAt = now + entry.keyTtl
      // a requeued dead letter ends again: its hold may already be in a window
      if (hold.heapIndex >= 0) q.windows.update(hold)
      else q.windows.push(hold)
    } else {
      q.keys.delete(hold.key)
    }
    this.pruneWindows(q, now)
  }

  private dropHold(q: QueueState, hold: KeyHold): void {
    q.keys.delete(hold.key)
    if (hold.heapIndex >= 0) q.windows.remove(hold)
  }

  /** Releases the keys whose window ended. */
  private pruneWindows(q: QueueState, now: number): void {
    let hold = q.windows.peek()
    while (hold !== undefined && hold.releaseAt <= now) {
      q.windows.pop()
      q.keys.delete(hold.key)
      hold = q.windows.peek()
    }
  }

  private nextToken(): string {
    return `lease-${++this.tokens}`
  }

  /** Puts a message where its eta says: ready now, or delayed. */
  private schedule(q: QueueState, entry: Entry, eta: number, now: number): void {
    if (eta > now) {
      entry.due = eta
      entry.seq = ++this.seq
      q.delayed.push(entry)
      this.updateAlarm(q)
    } else {
      this.pushReady(q, entry)
    }
  }

  private pushReady(q: QueueState, entry: Entry, front = false): void {
    const levels = q.levels
    const priority = entry.priority
    let index = 0
    // Few levels in practice: a linear scan beats a binary search here.
    while (index < levels.length && levels[index]! < priority) index++
    let lane: Deque<Entry>
    if (index < levels.length && levels[index] === priority) {
      lane = q.lanes[index]!
    } else {
      if (levels.length >= 16 && this.pruneLevels(q)) return this.pushReady(q, entry, front)
      lane = new Deque<Entry>()
      levels.splice(index, 0, priority)
      q.lanes.splice(index, 0, lane)
    }
    if (front) lane.unshift(entry)
    else lane.push(entry)
    q.readyCount++
  }

  /** Drops empty priority levels; returns whether any was dropped. */
  private pruneLevels(q: QueueState): boolean {
    let write = 0
    for (let read = 0; read < q.levels.length; read++) {
      if (q.lanes[read]!.length === 0) continue
      q.levels[write] = q.levels[read]!
      q.lanes[write] = q.lanes[read]!
      write++
    }
    const pruned = write < q.levels.length
    q.levels.length = write
    q.lanes.length = write
    return pruned
  }

  /** Moves what came due (delayed etas, lapsed leases) to the ready lanes, in the order it came due. */
  private advance(q: QueueState, now: number): void {
    const delayed = q.delayed
    const leases = q.leases
    while (true) {
      const d = delayed.peek()
      const l = leases.peek()
      if (d !== undefined && (l === undefined || byDue(d, l))) {
        if (d.due > now) return
        delayed.pop()
        this.pushReady(q, d)
      } else if (l !== undefined) {
        if (l.due > now) return
        leases.pop()
        l.lease = ""
        if (l.limits !== undefined) this.freeSlot(q, l)
        this.pushReady(q, l)
      } else {
        return
      }
    }
  }

  /**
   * Leases up to `max` ready messages into `out`. One take shares one lease token: a lease is checked by message and
   * token together, and a message taken again gets a later take's token, so the token still fences every delivery.
   */
  private takeReady(q: QueueState, max: number, leaseMs: number, now: number, out: Array<Delivery>): void {
    const lanes = q.lanes
    let lease: string | undefined = undefined
    for (let i = 0; i < lanes.length && out.length < max; i++) {
      const lane = lanes[i]!
      while (lane.length > 0 && out.length < max) {
        const entry = lane.shift()!
        q.readyCount--
        if (entry.limits !== undefined && !this.admit(q, entry, now)) continue
        entry.deliveries++
        entry.lease = lease ??= this.nextToken()
        entry.due = now + leaseMs
        entry.seq = ++this.seq
        q.leases.push(entry)
        out.push(new MemoryDelivery(entry))
      }
    }
  }

  /**
   * Checks a message's limits before it is leased, and counts it when it passes. A message over its rate waits in
   * the delayed heap until its window has room; one over its concurrency is parked until a slot of its key frees.
   */
  private admit(q: QueueState, entry: Entry, now: number): boolean {
    const { concurrency, rate } = entry.limits!
    let log: Array<number> | undefined
    if (rate !== undefined) {
      log = q.rateLog.get(rate.key)
      if (log !== undefined) {
        let expired = 0
        while (expired < log.length && log[expired]! + rate.windowMillis <= now) expired++
        if (expired > 0) log.splice(0, expired)
        if (log.length >= rate.limit) {
          entry.due = log[0]! + rate.windowMillis
          entry.seq = ++this.seq
          q.delayed.push(entry)
          this.updateAlarm(q)
          return false
        }
      }
    }
    if (concurrency !== undefined) {
      const running = q.running.get(concurrency.key) ?? 0
      if (running >= concurrency.limit) {
        let parked = q.parked.get(concurrency.key)
        if (parked === undefined) {
          parked = new Deque<Entry>()
          q.parked.set(concurrency.key, parked)
        }
        parked.push(entry)
        q.parkedCount++
        return false
      }
      q.running.set(concurrency.key, running + 1)
    }
    if (rate !== undefined) {
      if (log === undefined) q.rateLog.set(rate.key, [now])
      else log.push(now)
    }
    return true
  }

  /** A message with a concurrency limit left the in-flight set: its slot frees, and a parked message of its key is ready. */
  private freeSlot(q: QueueState, entry: Entry): void {
    const concurrency = entry.limits!.concurrency
    if (concurrency === undefined) return
    const running = (q.running.get(concurrency.key) ?? 1) - 1
    if (running > 0) q.running.set(concurrency.key, running)
    else q.running.delete(concurrency.key)
    const parked = q.parked.get(concurrency.key)
    const next = parked?.shift()
    if (next === undefined) return
    q.parkedCount--
    if (parked!.length === 0) q.parked.delete(concurrency.key)
    this.pushReady(q, next)
  }

  /** After every change to a queue: serve waiters, keep the alarm right, tell joiners. */
  private finish(q: QueueState, now: number): void {
    if (q.waitHead !== undefined) {
      if (q.readyCount > 0) this.dispatch(q, now)
      if (q.waitHead !== undefined) this.updateAlarm(q)
      else if (q.alarm !== undefined && !q.idleCheck) {
        q.idleCheck = true
        this.idleAlarms.push(q)
      }
    }
    if (q.joiners.size > 0) this.notifyJoiners(q)
  }

  /** Hands ready messages to waiters, first come first served, up to each waiter's `max`. */
  private dispatch(q: QueueState, now: number): void {
    let waiter = q.waitHead
    while (waiter !== undefined && q.readyCount > 0) {
      const next = waiter.next
      const out: Array<Delivery> = []
      this.takeReady(q, waiter.max, waiter.leaseMs, now, out)
      // every ready message was held back by its limit: the waiter keeps waiting
      if (out.length === 0) break
      this.unlink(q, waiter)
      waiter.result = out
      this.pending.push(waiter.wake)
      waiter = next
    }
  }

  /** Stops the alarms of the queues in `idleAlarms` where still nobody waits. */
  stopIdleAlarms(): void {
    const queues = this.idleAlarms
    while (queues.length > 0) {
      const q = queues.pop()!
      q.idleCheck = false
      if (q.waitHead === undefined) this.stopAlarm(q)
    }
  }

  /** Nobody waits any more: stop the timer, so that it keeps nothing (a process, a test run) alive. */
  private stopAlarm(q: QueueState): void {
    const alarm = q.alarm
    if (alarm === undefined) return
    q.alarm = undefined
    alarm.fiber?.interruptUnsafe()
  }

  /**
   * Makes sure the alarm fires by the time something is due or a waiter's deadline passes, while takes wait. A
   * running alarm that fires too early just sleeps again, so a new one is needed only to fire earlier.
   */
  private updateAlarm(q: QueueState): void {
    if (q.waitHead === undefined) return
    const at = q.wakeUpAt()
    if (at === Infinity) return
    const alarm = q.alarm
    if (alarm !== undefined) {
      if (alarm.at <= at) return
      alarm.fiber?.interruptUnsafe()
    }
    q.alarm = new Alarm(at)
    this.alarmsToStart.push(q)
  }

  private notifyJoiners(q: QueueState): void {
    const idle = q.idle
    for (const joiner of q.joiners) {
      if (idle) {
        q.joiners.delete(joiner)
        const deadLetters = this.deadSince(q, joiner.deadSeq)
        this.pending.push(() => joiner.onIdle(deadLetters))
      } else if (joiner.failFast && q.deadSeq > joiner.deadSeq) {
        const deadLetters = this.deadSince(q, joiner.deadSeq)
        if (deadLetters.length === 0) continue
        q.joiners.delete(joiner)
        this.pending.push(() => joiner.onDeadLetter(deadLetters))
      }
    }
  }

  private deadSince(q: QueueState, deadSeq: number): ReadonlyArray<Broker.DeadLetter> {
    const out: Array<Broker.DeadLetter> = []
    for (const entry of q.dead.values()) {
      if (entry.deadSeq > deadSeq) out.push(toDeadLetter(entry))
    }
    return out
  }

  private selectDead(q: QueueState, ids: ReadonlyArray<string> | undefined): Array<Entry> {
    if (ids === undefined) return Array.from(q.dead.values())
    const entries: Array<Entry> = []
    for (const id of new Set(ids)) {
      const entry = q.dead.get(id)
      if (entry !== undefined) entries.push(entry)
    }
    return entries.sort((a, b) => a.deadSeq - b.deadSeq)
  }

  private link(q: QueueState, waiter: Waiter): void {
    waiter.linked = true
    waiter.next = undefined
    waiter.prev = q.waitTail
    if (q.waitTail === undefined) q.waitHead = waiter
    else q.waitTail.next = waiter
    q.waitTail = waiter
  }

  private unlink(q: QueueState, waiter: Waiter): void {
    if (!waiter.linked) return
    waiter.linked = false
    const { next, prev } = waiter
    if (prev === undefined) q.waitHead = next
    else prev.next = next
    if (next === undefined) q.waitTail = prev
    else next.prev = prev
    waiter.prev = waiter.next = undefined
    q.deadlines.remove(waiter)
  }
}
