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
 * is completed with its outcome (a batch spanning queues: one call per queue, at once, and each sender gets its own
 * queue's outcome). A joined sender that is interrupted stops waiting, but its message stays in
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

type Outcome = Exit.Exit<Enqueued, BrokerError>
type Resume = (exit: Outcome) => void

interface Batch {
  readonly messages: Array<Outgoing>
  /** The joined senders: `waiters[i]` sent `messages[i + 1]` (the lead sent `messages[0]`). */
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

/** The indices of `messages` per queue, or `undefined` when they all share one queue (the usual case). */
const partsOf = (messages: ReadonlyArray<Outgoing>): Array<Array<number>> | undefined => {
  const first = messages[0]!.queue
  if (messages.every((message) => message.queue === first)) return undefined
  const parts = new Map<string, Array<number>>()
  for (let i = 0; i < messages.length; i++) {
    const queue = messages[i]!.queue
    const part = parts.get(queue)
    if (part === undefined) parts.set(queue, [i])
    else part.push(i)
  }
  return Array.from(parts.values())
}

/**
 * Runs a batch's broker call and completes its senders (called uninterruptibly, by its lead). A batch spanning queues
 * is sent as one broker call per queue, run at once, and each sender gets the outcome of its own queue's call: a
 * failure on one queue (a Cluster node down) fails only the sends to that queue.
 *
 * The senders are resumed before the next batch's lead: a sender that sends again right away (a producer keeping N
 * sends in flight) joins that batch before it goes out, so batches stay full under load.
 */
const run = (broker: Broker["Service"], lane: Lane, batch: Batch): Effect.Effect<Enqueued, BrokerError> => {
  const parts = partsOf(batch.messages)
  if (parts === undefined) {
    return Effect.onExit(broker.enqueue(batch.messages), (exit) =>
      Effect.sync(() => {
        for (const resume of batch.waiters) resume(exit)
        next(lane)
      }))
  }
  let own: Outcome | undefined
  const complete = (indices: ReadonlyArray<number>, exit: Outcome) => {
    for (const index of indices) {
      if (index === 0) own = exit
      else batch.waiters[index - 1]!(exit)
    }
  }
  return Effect.forEach(
    parts,
    (indices) =>
      Effect.flatMap(
        Effect.exit(broker.enqueue(indices.map((index) => batch.messages[index]!))),
        (exit) => Effect.sync(() => complete(indices, exit))
      ),
    { concurrency: "unbounded", discard: true }
  ).pipe(
    Effect.ensuring(Effect.sync(() => next(lane))),
    Effect.andThen(Effect.suspend(() => own!))
  )
}

/**
 * Enqueues one message: at once if its broker has no enqueue in flight, else with the next batch. The answer is its
 * queue's part of the batch: look the message's id up in its `duplicates`. It fails only when its own queue's call
 * failed.
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
