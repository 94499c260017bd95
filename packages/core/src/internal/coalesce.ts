/**
 * Coalesces concurrent single-message enqueues into few broker calls, without delaying a lone send.
 *
 * A `send` made while no enqueue of its broker is in flight goes out at once, in its own fiber and context (so
 * `Clock` and the broker's services are the sender's): an awaited send, one per web request, pays no extra scheduler
 * turn. Sends made while a call is in flight join the next batch, which goes out as soon as that call returns — so a
 * producer with many sends in flight costs one round trip per batch (up to 1,000 messages), not per message, and
 * batches grow with the load by themselves (like TCP with Nagle's algorithm: nothing waits unless something is on the
 * wire).
 *
 * A batch is led by the fiber of its first sender: it is uninterruptible once the batch exists, so every joined sender
 * is completed with the call's outcome. A joined sender that is interrupted stops waiting, but its message stays in
 * the batch (an interrupted `send` may or may not have enqueued its message).
 *
 * This is Effect's request batching specialised to one request type, without its per-request bookkeeping.
 *
 * @internal
 */
import { Effect, type Exit } from "effect"
import type { Broker, Enqueued, Outgoing } from "../Broker.ts"
import type { BrokerError } from "../ErrandError.ts"

/** The most messages one coalesced broker call carries. */
const MAX_BATCH = 1_000

type Resume = (exit: Exit.Exit<Enqueued, BrokerError>) => void

interface Batch {
  readonly messages: Array<Outgoing>
  readonly waiters: Array<Resume>
  /** Resumes the batch's lead once the call in flight before it has returned. */
  start: (() => void) | undefined
}

/** Per broker: whether a call is in flight, and the batches waiting for it, oldest first. */
interface Lane {
  busy: boolean
  readonly waiting: Array<Batch>
}

const lanes = new WeakMap<Broker["Service"], Lane>()

/** The call in flight returned: the oldest waiting batch goes next, or the lane is free. */
const next = (lane: Lane): void => {
  const batch = lane.waiting.shift()
  if (batch === undefined) {
    lane.busy = false
    return
  }
  const start = batch.start
  batch.start = undefined
  start?.()
}

/** Runs a batch's broker call and completes its senders (called uninterruptibly, by its lead). */
const run = (broker: Broker["Service"], lane: Lane, batch: Batch): Effect.Effect<Enqueued, BrokerError> =>
  Effect.onExit(broker.enqueue(batch.messages), (exit) =>
    Effect.sync(() => {
      // The senders are resumed before the next batch's lead: a sender that sends again right away (a producer
      // keeping N sends in flight) joins that batch before it goes out, so batches stay full under load.
      for (const resume of batch.waiters) resume(exit)
      next(lane)
    }))

/**
 * Enqueues one message: at once if its broker has no enqueue in flight, else with the next batch. The answer is the
 * whole batch's: look the message's id up in its `duplicates`.
 *
 * @internal
 */
export const enqueueOne = (broker: Broker["Service"], outgoing: Outgoing): Effect.Effect<Enqueued, BrokerError> =>
  // Uninterruptible from the decision on: a batch that was opened always gets its lead.
  Effect.uninterruptible(Effect.suspend(() => {
    let lane = lanes.get(broker)
    if (lane === undefined) lanes.set(broker, lane = { busy: false, waiting: [] })
    if (!lane.busy) {
      lane.busy = true
      return run(broker, lane, { messages: [outgoing], waiters: [], start: undefined })
    }
    const last = lane.waiting[lane.waiting.length - 1]
    if (last !== undefined && last.messages.length < MAX_BATCH) {
      last.messages.push(outgoing)
      return Effect.interruptible(Effect.callback<Enqueued, BrokerError>((resume) => {
        last.waiters.push(resume)
      }))
    }
    // the first sender of a new waiting batch leads it, once the calls before it returned
    const batch: Batch = { messages: [outgoing], waiters: [], start: undefined }
    const current = lane
    current.waiting.push(batch)
    return Effect.andThen(
      Effect.callback<void>((resume) => {
        batch.start = () => resume(Effect.void)
      }),
      Effect.suspend(() => run(broker, current, batch))
    )
  }))
