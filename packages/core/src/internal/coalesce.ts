/**
 * Coalesces concurrent single-message enqueues into one broker call, with Effect's request batching: every `send`
 * made in the same scheduler tick (from any fiber) becomes one `Broker.enqueue` batch. A producer that sends
 * one message at a time with many in flight then costs one round trip per batch, not per message.
 *
 * @internal
 */
import { Effect, Exit, Request, RequestResolver } from "effect"
import type { Broker, Outgoing } from "../Broker.ts"
import type { BrokerError } from "../ErrandError.ts"

interface Enqueue extends Request.Request<void, BrokerError> {
  readonly _tag: "Enqueue"
  readonly outgoing: Outgoing
}

const Enqueue = Request.tagged<Enqueue>("Enqueue")

/** The most messages one coalesced broker call carries. */
const MAX_BATCH = 1_000

const resolvers = new WeakMap<Broker["Service"], RequestResolver.RequestResolver<Enqueue>>()

const resolverFor = (broker: Broker["Service"]): RequestResolver.RequestResolver<Enqueue> => {
  let resolver = resolvers.get(broker)
  if (resolver === undefined) {
    resolver = RequestResolver.makeWith<Enqueue>({
      batchKey: () => broker,
      delay: Effect.yieldNow,
      collectWhile: (entries) => entries.size < MAX_BATCH,
      runAll: (entries) =>
        Effect.map(Effect.exit(broker.enqueue(entries.map((entry) => entry.request.outgoing))), (exit) => {
          const done = Exit.isSuccess(exit) ? Exit.void : exit
          for (const entry of entries) entry.completeUnsafe(done)
        })
    })
    resolvers.set(broker, resolver)
  }
  return resolver
}

/**
 * Enqueues one message, batched with the other enqueues of the same tick.
 *
 * @internal
 */
export const enqueueOne = (broker: Broker["Service"], outgoing: Outgoing): Effect.Effect<void, BrokerError> =>
  Effect.request(Enqueue({ outgoing }), resolverFor(broker))
