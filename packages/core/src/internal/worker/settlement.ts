/**
 * Recording outcomes: settlements wait per queue in `pending`, ride on the queue's next take, or are sent by
 * `settle` when the take loop blocks. A failed call is retried after `brokerBackoff`, never at once.
 *
 * @internal
 */
import { Effect, Schedule } from "effect"
import type { Settlement } from "../../Broker.ts"
import type { BrokerError } from "../../ErrandError.ts"
import type { Job, QueueState, WorkerContext } from "./context.ts"

/**
 * The wait between retries of a failed broker call (take, settle): exponential from 50 ms, capped at 2 s, jittered.
 * Every retry sleeps, so a broker that fails at once never starves timers, I/O or signal handlers.
 *
 * @internal
 */
export const brokerBackoff = Schedule.min([Schedule.exponential("50 millis"), Schedule.spaced("2 seconds")]).pipe(
  Schedule.jittered
)

/**
 * `Effect.retry(effect, brokerBackoff)`, with the schedule set up only once `effect` has failed: a broker call that
 * succeeds (every call but during an outage) pays for no schedule. The schedule sees the same failures, so the waits
 * are the same.
 *
 * @internal
 */
export const retryWithBackoff = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.catch(effect, (error) => {
    let failed = true
    return Effect.retry(
      Effect.suspend(() => {
        if (!failed) return effect
        failed = false
        return Effect.fail(error)
      }),
      brokerBackoff
    )
  })

/** @internal */
export interface Settlements {
  /** Records a job's settlement: pending on its queue, flushed at once if the take loop blocks. */
  readonly settled: (job: Job, settlement: Settlement) => void
  /** Sends a queue's pending settlements until none is left, backing off on failures. */
  readonly flush: (state: QueueState) => Effect.Effect<void>
  /** Logs the ids of a sent batch whose lease was lost (their messages will run again). */
  readonly recorded: (batch: ReadonlyArray<Settlement>, rejected: ReadonlyArray<string>) => Effect.Effect<void>
  /** Marks a batch whose call failed: it may have been applied, so a rejection of it on resend is expected. */
  readonly retryLater: (batch: ReadonlyArray<Settlement>) => void
  /** Logs the start of a queue's broker outage, once. */
  readonly outageStarted: (state: QueueState, operation: string, error: BrokerError) => Effect.Effect<void>
  /** After a successful broker call: logs the end of the queue's outage, once, then runs `next`. */
  readonly outageEnded: <A>(state: QueueState, next: Effect.Effect<A>) => Effect.Effect<A>
}

/** @internal */
export const make = (ctx: WorkerContext): Settlements => {
  const { broker, state: worker } = ctx

  /**
   * Settlements sent with a take that failed or was interrupted may or may not have been applied; they are sent
   * again, and a rejection of one of those is expected, not a lost lease.
   */
  const maybeApplied = new Set<string>()
  const recorded = (batch: ReadonlyArray<Settlement>, rejected: ReadonlyArray<string>): Effect.Effect<void> => {
    const lost = maybeApplied.size === 0 ? rejected : rejected.filter((id) => !maybeApplied.has(id))
    if (maybeApplied.size > 0) { for (const settlement of batch) maybeApplied.delete(settlement.delivery.id) }
    return lost.length === 0 ?
      Effect.void :
      Effect.forEach(
        lost,
        (messageId) =>
          Effect.logWarning("Lease lost before the outcome was recorded; the message will run again").pipe(
            Effect.annotateLogs({ messageId })
          ),
        { discard: true }
      )
  }
  const retryLater = (batch: ReadonlyArray<Settlement>) => {
    for (const settlement of batch) maybeApplied.add(settlement.delivery.id)
  }

  const outageStarted = (state: QueueState, operation: string, error: BrokerError) =>
    Effect.suspend(() => {
      if (state.outage) return Effect.void
      state.outage = true
      return Effect.logError(
        `Broker unavailable on queue "${state.queue}" (${operation}); retrying with backoff`,
        error
      )
    })
  const outageEnded = <A>(state: QueueState, next: Effect.Effect<A>): Effect.Effect<A> => {
    if (!state.outage) return next
    state.outage = false
    return Effect.andThen(Effect.logInfo(`Broker recovered on queue "${state.queue}"`), next)
  }

  /** One settle call of everything pending; on failure the batch goes back to the front of `pending`. */
  const settleOnce = (state: QueueState): Effect.Effect<void, BrokerError> =>
    Effect.suspend(() => {
      const batch = state.pending
      state.pending = []
      return broker.settle(batch).pipe(
        Effect.flatMap((rejected) => outageEnded(state, recorded(batch, rejected))),
        Effect.tapError((error) => {
          retryLater(batch)
          state.pending = batch.concat(state.pending)
          return outageStarted(state, "settle", error)
        })
      )
    })

  const flush = (state: QueueState): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (state.pending.length === 0) {
        state.flushing = false
        return Effect.void
      }
      return Effect.andThen(
        retryWithBackoff(settleOnce(state)).pipe(Effect.catch(() => Effect.void)),
        flush(state)
      )
    })

  const settled = (job: Job, settlement: Settlement) => {
    worker.release(job)
    const state = job.queue
    state.pending.push(settlement)
    if (state.blocking && !state.flushing) {
      state.flushing = true
      ctx.runSystem(flush(state))
    }
    worker.wakeAll()
  }

  return { settled, flush, recorded, retryLater, outageStarted, outageEnded }
}
