/**
 * Time limits for every running handler with one alarm, not a timer per message.
 *
 * Items are kept FIFO per time limit: items start in time order, so each FIFO is in deadline order and the earliest
 * deadline is at the head of one of them. Finished items are dropped lazily from the heads (by moving a head index:
 * a `splice` per watch shifted the whole FIFO and allocated the removed items' array).
 *
 * @internal
 */
import { Clock, Effect, type Fiber } from "effect"

/** @internal */
export interface Watched {
  /** When its time runs out, epoch milliseconds (by `Clock`). */
  readonly deadline: number
  /** Finished (or past the point where a time limit applies): the watchdog leaves it alone. */
  readonly finished: boolean
}

/** @internal */
export interface Watchdog<A extends Watched> {
  /** Starts watching `item`, whose deadline is `limitMillis` after its start. */
  readonly watch: (item: A, limitMillis: number) => void
  /** Stops the alarm (shutdown). */
  readonly stop: () => void
}

/**
 * Creates a watchdog that calls `expired` for each unfinished item whose deadline has passed. `fork` runs the alarm
 * fiber (a `Clock.sleep`, so `TestClock` drives it).
 *
 * @internal
 */
export const make = <A extends Watched>(options: {
  readonly clock: Clock.Clock
  readonly fork: (effect: Effect.Effect<void>) => Fiber.Fiber<void>
  readonly expired: (item: A) => void
}): Watchdog<A> => {
  const { clock, expired, fork } = options
  const byLimit = new Map<number, Fifo<A>>()
  let alarmAt = Infinity
  let alarm: Fiber.Fiber<void> | undefined

  const earliestDeadline = () => {
    let earliest = Infinity
    for (const fifo of byLimit.values()) {
      fifo.dropFinished()
      const head = fifo.peek()
      if (head !== undefined && head.deadline < earliest) earliest = head.deadline
    }
    return earliest
  }
  const arm = (at: number) => {
    alarm?.interruptUnsafe()
    alarmAt = at
    alarm = at === Infinity ? undefined : fork(
      Effect.andThen(Effect.sleep(Math.max(0, at - clock.currentTimeMillisUnsafe())), Effect.sync(fire))
    )
  }
  const fire = () => {
    alarm = undefined
    const now = clock.currentTimeMillisUnsafe()
    for (const fifo of byLimit.values()) {
      fifo.dropFinished()
      for (let item = fifo.peek(); item !== undefined && item.deadline <= now; item = fifo.peek()) {
        fifo.shift()
        if (!item.finished) expired(item)
      }
    }
    arm(earliestDeadline())
  }

  return {
    watch: (item, limitMillis) => {
      let fifo = byLimit.get(limitMillis)
      if (fifo === undefined) byLimit.set(limitMillis, fifo = new Fifo())
      else fifo.dropFinished()
      fifo.push(item)
      if (item.deadline < alarmAt) arm(item.deadline)
    },
    stop: () => {
      alarm?.interruptUnsafe()
      alarm = undefined
      alarmAt = Infinity
    }
  }
}

/**
 * A FIFO in an array that keeps its backing store: read from `head`, written at `tail`, rewound when it empties and
 * compacted when a write finds the array full with a consumed prefix of at least half of it.
 */
class Fifo<A extends Watched> {
  private readonly items: Array<A | undefined> = []
  private head = 0
  private tail = 0

  peek(): A | undefined {
    return this.head < this.tail ? this.items[this.head] : undefined
  }

  push(item: A): void {
    const items = this.items
    if (this.tail === items.length && this.head > 0 && this.head * 2 >= this.tail) {
      items.copyWithin(0, this.head, this.tail)
      items.fill(undefined, this.tail - this.head, this.tail)
      this.tail -= this.head
      this.head = 0
    }
    if (this.tail === items.length) items.push(item)
    else items[this.tail] = item
    this.tail++
  }

  shift(): void {
    this.items[this.head++] = undefined
    if (this.head === this.tail) this.head = this.tail = 0
  }

  /** Drops the finished items at the head. */
  dropFinished(): void {
    for (let item = this.peek(); item !== undefined && item.finished; item = this.peek()) this.shift()
  }
}
