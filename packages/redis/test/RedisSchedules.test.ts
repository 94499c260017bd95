/**
 * Schedules on Redis: three schedulers, each with its own connection (as three processes would have), send each slot
 * of a seconds-level cron exactly once. The multi-process version runs in packages/cli (three `errand worker`s).
 */
import { assert, describe, it } from "@effect/vitest"
import { Actor, Broker, Schedules } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Effect, Layer, References, Schema } from "effect"
import { redisUrl, uniquePrefix } from "./utils/testing.ts"

const tick = Actor.make("tick", { queue: "ticks", payload: Schema.Struct({}) })

describe("RedisBroker schedules", () => {
  it.live("three schedulers on their own connections send each slot of '* * * * * *' once", () =>
    Effect.gen(function*() {
      const prefix = uniquePrefix()
      const broker = () => Layer.fresh(RedisBroker.layer({ url: redisUrl, prefix }))
      const entries = [{ name: "every_second", actor: tick, cron: "* * * * * *" }]
      // each scheduler's broker lives as long as the test's scope, like a process's
      const scheduler = Effect.flatMap(
        Layer.build(broker()),
        (context) => Effect.provide(Schedules.make(entries), context)
      )
      // three schedulers for about 3.5 s: each second's slot is claimed by one of them
      yield* Effect.all([scheduler, scheduler, scheduler], { concurrency: "unbounded" }).pipe(
        Effect.andThen(Effect.sleep("3500 millis")),
        Effect.scoped
      )
      const slots = yield* Effect.gen(function*() {
        const redis = yield* Broker.Broker
        const taken = yield* redis.take({ queue: "ticks", max: 100, lease: "1 minute" })
        return taken.deliveries.map((delivery) =>
          (delivery.body as { readonly options: { readonly slot: number } }).options.slot
        )
      }).pipe(Effect.provide(broker()))
      assert.strictEqual(new Set(slots).size, slots.length, `duplicate slots: ${slots.join(", ")}`)
      // the catch-up of the second before the start, then one per second (bounds for a loaded machine)
      assert.isAtLeast(slots.length, 3)
      assert.isAtMost(slots.length, 6)
      const sorted = [...slots].sort((a, b) => a - b)
      assert.deepStrictEqual(sorted.slice(1).map((slot, i) => slot - sorted[i]!), sorted.slice(1).map(() => 1_000))
    }).pipe(Effect.provideService(References.MinimumLogLevel, "Warn")))
})
