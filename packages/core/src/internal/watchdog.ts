/**
 * Time limits for every running handler with one alarm, not a timer per message.
 *
 * Items are kept FIFO per time limit: items start in time order, so each FIFO is in deadline order and the earliest
 * deadline is at the head of one of them. Finished items are dropped lazily from the heads.
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
  const byLimit = new Map<number, Array<A>>()
  let alarmAt = Infinity
  let alarm: Fiber.Fiber<void> | undefined

  const dropFinished = (fifo: Array<A>) => {
    let head = 0
    while (head < fifo.length && fifo[head]!.finished) head++
    if (head > 0) fifo.splice(0, head)
  }
  const earliestDeadline = () => {
    let earliest = Infinity
    for (const fifo of byLimit.values()) {
      dropFinished(fifo)
      if (fifo.length > 0 && fifo[0]!.deadline < earliest) earliest = fifo[0]!.deadline
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
      dropFinished(fifo)
      while (fifo.length > 0 && fifo[0]!.deadline <= now) {
        const item = fifo.shift()!
        if (!item.finished) expired(item)
      }
    }
    arm(earliestDeadline())
  }

  return {
    watch: (item, limitMillis) => {
      let fifo = byLimit.get(limitMillis)
      if (fifo === undefined) byLimit.set(limitMillis, fifo = [])
      else dropFinished(fifo)
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
