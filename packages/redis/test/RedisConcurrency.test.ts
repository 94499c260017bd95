/**
 * Several brokers (as several processes would have: their own connections) producing and consuming one queue at once
 * with blocking takes: every message is processed exactly once, none is stranded, and waiters keep waking up.
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Context, Effect, Layer, Random } from "effect"
import { ack, message, redisUrl, uniquePrefix } from "./utils/testing.ts"

const build = (prefix: string) =>
  Effect.map(
    Layer.build(RedisBroker.layer({ url: redisUrl, prefix })),
    (context) => Context.get(context, Broker.Broker)
  )

describe("RedisBroker concurrency", () => {
  it.live(
    "4 brokers × 3 blocking consumers and 2 producers process 3,000 messages exactly once",
    () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const queue = "busy"
        const brokers = yield* Effect.all(Array.from({ length: 4 }, () => build(prefix)))
        yield* Effect.addFinalizer(() => Effect.ignore(brokers[0]!.flush(queue)))
        const total = 3_000
        const messages = Array.from(
          { length: total },
          (_, i) => message(queue, { priority: i % 7 === 0 ? (i % 3) - 1 : 0 })
        )
        const seen = new Map<string, number>()
        let produced = false

        const producer = (broker: Broker.Broker["Service"], part: ReadonlyArray<Broker.Outgoing>) =>
          Effect.gen(function*() {
            for (let i = 0; i < part.length;) {
              const size = yield* Random.nextIntBetween(1, 40)
              yield* broker.enqueue(part.slice(i, i + size))
              i += size
              if ((yield* Random.nextIntBetween(0, 4)) === 0) yield* Effect.sleep(1)
            }
          })

        const consumer = (broker: Broker.Broker["Service"]) =>
          Effect.gen(function*() {
            let settle: ReadonlyArray<Broker.Settlement> = []
            for (;;) {
              const max = yield* Random.nextIntBetween(1, 20)
              const taken = yield* broker.take({ queue, max, lease: "1 minute", wait: "200 millis", settle })
              assert.deepStrictEqual(taken.rejected, [])
              for (const d of taken.deliveries) seen.set(d.id, (seen.get(d.id) ?? 0) + 1)
              settle = taken.deliveries.map(ack)
              if (taken.deliveries.length === 0 && produced && seen.size === total) return
            }
          })

        const consumers = Effect.all(
          brokers.flatMap((broker) => [consumer(broker), consumer(broker), consumer(broker)]),
          {
            concurrency: "unbounded"
          }
        )
        const producers = Effect.all([
          producer(brokers[0]!, messages.slice(0, total / 2)),
          producer(brokers[1]!, messages.slice(total / 2))
        ], { concurrency: "unbounded" }).pipe(Effect.andThen(Effect.sync(() => produced = true)))

        // About 0.4 s idle: the timeout only turns a hang into a failure, with room for a loaded machine
        yield* Effect.all([consumers, producers], { concurrency: "unbounded" }).pipe(Effect.timeout("60 seconds"))
        assert.strictEqual(seen.size, total)
        assert.deepStrictEqual([...seen.values()].filter((n) => n !== 1), [])
        assert.deepStrictEqual(yield* brokers[2]!.stats(queue), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
      }),
    90_000
  )
})
