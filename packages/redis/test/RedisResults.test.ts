/**
 * Results on Redis, end to end: a worker stores the outcome under its key with a TTL, and a producer waiting for it
 * is woken by the write (pub/sub), on the live clock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Actor, Worker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Effect, Layer, Schema } from "effect"
import { rawClient, redisUrl, uniquePrefix } from "./utils/testing.ts"

class OutOfStock extends Schema.TaggedError<OutOfStock>()("OutOfStock", { sku: Schema.String }) {}

const reserve = Actor.make("reserve_stock", {
  queue: "stock",
  payload: Schema.Struct({ sku: Schema.String, quantity: Schema.Number }),
  success: Schema.Struct({ reservationId: Schema.String }),
  error: OutOfStock,
  throws: ["OutOfStock"],
  storeResults: "1 minute"
})

const ReserveLive = reserve.handle(({ sku, quantity }) =>
  quantity > 10 ? Effect.fail(new OutOfStock({ sku })) : Effect.succeed({ reservationId: `r-${sku}-${quantity}` })
)

describe("Results on Redis", () => {
  it.live("a producer waiting for a result gets it typed, woken by the worker's write; the key has a TTL", () => {
    const prefix = uniquePrefix()
    const broker = RedisBroker.layer({ url: redisUrl, prefix })
    return Effect.gen(function*() {
      const ok = yield* reserve.send({ sku: "A", quantity: 2 })
      const missing = yield* reserve.send({ sku: "B", quantity: 99 })
      const [reserved, outOfStock] = yield* Effect.all([
        reserve.result(ok, { timeout: "10 seconds" }),
        Effect.flip(reserve.result(missing, { timeout: "10 seconds" }))
      ], { concurrency: 2 })
      assert.deepStrictEqual(reserved, { reservationId: "r-A-2" })
      assert.instanceOf(outOfStock, OutOfStock)
      const redis = yield* rawClient()
      const ttl = yield* Effect.promise(() => redis.pttl(`${prefix}:result:${ok.id}`))
      assert.isTrue(ttl > 0 && ttl <= 60_000, `PTTL ${ttl}`)
      yield* Effect.promise(() => redis.del(`${prefix}:result:${ok.id}`, `${prefix}:result:${missing.id}`))
    }).pipe(
      Effect.provide(
        Worker.layer({ handlers: [ReserveLive], idleWait: "200 millis" }).pipe(Layer.provideMerge(broker))
      ),
      Effect.scoped
    )
  })
})
