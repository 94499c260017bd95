/**
 * Coalesces concurrent single-message enqueues into one broker call: every `send` made in the same scheduler tick
 * (from any fiber) joins one `Broker.enqueue` batch. A producer that sends one message at a time with many in flight
 * then costs one round trip per batch, not per message.
 *
 * The first sender of a batch leads it: it yields once (letting the other fibers of the tick join), then makes the
 * broker call in its own fiber and context (so `Clock` and the broker's services are the sender's) and completes
 * every joined sender with the call's outcome (a batch spanning queues: one call per queue, at once, and each sender
 * gets its own queue's outcome). The lead is uninterruptible once the batch is open, so joined
 * senders are always completed. A joined sender that is interrupted stops waiting, but its message stays in the
 * batch (an interrupted `send` may or may not have enqueued its message).
 *
 * This is Effect's request batching specialised to one request type, without its per-request bookkeeping (about
 * 4 µs less per message).
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
}

/** The batch still open for joining, per broker. */
const open = new WeakMap<Broker["Service"], Batch>()

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
 * Runs a batch (called uninterruptibly). A batch spanning queues is sent as one broker call per queue, run at once, and
 * each sender gets the outcome of its own queue's call: a failure on one queue (a Cluster node down) fails only the
 * sends to that queue.
 */
const lead = (broker: Broker["Service"], batch: Batch): Effect.Effect<Enqueued, BrokerError> =>
  Effect.andThen(
    Effect.yieldNow,
    Effect.suspend(() => {
      if (open.get(broker) === batch) open.delete(broker)
      const parts = partsOf(batch.messages)
      if (parts === undefined) {
        return Effect.onExit(broker.enqueue(batch.messages), (exit) =>
          Effect.sync(() => {
            for (const resume of batch.waiters) resume(exit)
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
      ).pipe(Effect.andThen(Effect.suspend(() => own!)))
    })
  )

/**
 * Enqueues one message, batched with the other enqueues of the same tick. The answer is its queue's part of the batch:
 * look the message's id up in its `duplicates`. It fails only when its own queue's call failed.
 *
 * @internal
 */
export const enqueueOne = (broker: Broker["Service"], outgoing: Outgoing): Effect.Effect<Enqueued, BrokerError> =>
  // Uninterruptible from the decision on: a batch that was opened always gets its lead.
  Effect.uninterruptible(Effect.suspend(() => {
    const batch = open.get(broker)
    if (batch === undefined || batch.messages.length >= MAX_BATCH) {
      const fresh: Batch = { messages: [outgoing], waiters: [] }
      open.set(broker, fresh)
      return lead(broker, fresh)
    }
    batch.messages.push(outgoing)
    return Effect.interruptible(Effect.callback<Enqueued, BrokerError>((resume) => {
      batch.waiters.push(resume)
    }))
  }))
