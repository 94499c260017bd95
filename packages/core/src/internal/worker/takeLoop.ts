/**
 * The take loop of one queue: takes as many deliveries as the worker has room for, sending the queue's pending
 * settlements along; blocks on the broker when the queue looks empty; parks while the worker is full.
 *
 * @internal
 */
import { Effect, Exit } from "effect"
import type { BrokerError } from "../../ErrandError.ts"
import type { Job, QueueState, WorkerContext } from "./context.ts"
import { retryWithBackoff, type Settlements } from "./settlement.ts"

/**
 * Runs forever (until interrupted by shutdown). A failed take is retried after `brokerBackoff`; its settlements go
 * back to `pending`, to be sent again.
 *
 * @internal
 */
export const takeLoop = (
  ctx: WorkerContext,
  settlements: Settlements,
  dispatch: () => void,
  state: QueueState
): Effect.Effect<never> => {
  const { broker, capacity, state: worker } = ctx
  const { leaseMillis, idleWait } = ctx.settings

  /** Waits until a handler slot frees or a settlement arrives (re-checked when parking, so no wake-up is missed). */
  const park = Effect.callback<void>((resume) => {
    if (capacity - worker.held.length > 0 || (state.pending.length > 0 && !state.flushing)) {
      resume(Effect.void)
      return
    }
    state.wake = () => resume(Effect.void)
    return Effect.sync(() => {
      state.wake = undefined
    })
  })

  let expectMore = true
  const once: Effect.Effect<void, BrokerError> = Effect.suspend(() => {
    // Takes of different queues may overlap and together overshoot `capacity` a little; the surplus waits in
    // the buffer with its lease extended. Reserving capacity for a blocking take would starve the other queues.
    const free = capacity - worker.held.length
    if (free <= 0) {
      if (state.pending.length > 0 && !state.flushing) {
        state.flushing = true
        return settlements.flush(state)
      }
      return park
    }
    const settle = state.pending
    state.pending = []
    state.blocking = !expectMore
    return broker.take({
      queue: state.queue,
      max: free,
      lease: leaseMillis,
      wait: expectMore ? 0 : idleWait,
      settle
    }).pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          state.blocking = false
          if (Exit.isFailure(exit) && settle.length > 0) {
            settlements.retryLater(settle)
            state.pending = settle.concat(state.pending)
          }
        })
      ),
      Effect.flatMap((taken) => {
        // a full batch suggests more are ready: ask again at once; otherwise block until something arrives
        expectMore = taken.deliveries.length >= free
        for (const delivery of taken.deliveries) {
          const job: Job = {
            delivery,
            queue: state,
            heldIndex: -1,
            registered: undefined,
            message: undefined,
            startedAt: 0,
            deadline: Infinity,
            timedOut: false,
            finished: false,
            fiber: undefined,
            envelope: undefined
          }
          worker.hold(job)
          worker.pushBuffered(job)
        }
        dispatch()
        return settlements.outageEnded(state, settlements.recorded(settle, taken.rejected))
      }),
      Effect.tapError((error) => settlements.outageStarted(state, "take", error))
    )
  })
  return once.pipe(
    retryWithBackoff,
    Effect.catch(() => Effect.void),
    // No scheduler turn between takes: a take that follows a delivery starts at once, so a broker that hands a new
    // message to the waiting take (the memory broker) finds it waiting again. Effect still yields after its op
    // budget, so a loop whose takes all answer at once cannot starve the event loop.
    Effect.forever({ disableYield: true }),
    Effect.annotateLogs({ queue: state.queue })
  )
}
