import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Clock, Effect, Layer, References, Schema } from "effect"
import { TestClock } from "effect/testing"
import { Actor, Worker } from "../src/index.ts"

const Job = Schema.Struct({ n: Schema.Number, user: Schema.String })

/** The largest number of intervals open at once. */
const maxOverlap = (intervals: ReadonlyArray<readonly [number, number]>) => {
  const events = intervals.flatMap(([start, end]) => [[start, 1], [end, -1]] as const)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1])
  let open = 0
  let max = 0
  for (const [, delta] of events) max = Math.max(max, open += delta)
  return max
}

describe("Actor limits, enforced by the broker", () => {
  it.effect("rateLimit 10/s: 200 messages, at most 10 starts in any second; held-back messages wait, none retried", () => {
    const ping = Actor.make("ping", { queue: "limited", payload: Job, rateLimit: { limit: 10, window: "1 second" } })
    const starts: Array<number> = []
    const handler = ping.handle(() =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => starts.push(now)))
    )
    return Effect.gen(function*() {
      yield* ping.sendBatch(Array.from({ length: 200 }, (_, n) => ({ n, user: "u" })))
      yield* TestClock.adjust("25 seconds")
      assert.strictEqual(starts.length, 200)
      assert.isAtLeast(Math.max(...starts) - Math.min(...starts), 19_000) // 200 at 10 per second: held back, not lost
      for (const start of starts) {
        assert.isAtMost(starts.filter((other) => other >= start && other < start + 1_000).length, 10)
      }
      assert.deepStrictEqual(yield* MemoryBroker.join("limited"), []) // nothing dead-lettered
    }).pipe(
      Effect.provide(
        Worker.layer({ handlers: [handler], concurrency: 16 }).pipe(Layer.provideMerge(MemoryBroker.layer))
      )
    )
  })

  it.effect("concurrency with a key: never more than `limit` running per key; a retry is not caused by the limit", () => {
    const work = Actor.make("work", {
      queue: "limited",
      payload: Job,
      concurrency: { limit: 2, key: ({ user }) => user }
    })
    const runs = new Map<string, Array<[number, number]>>()
    const handler = work.handle(({ n, user }) =>
      Effect.gen(function*() {
        const start = yield* Clock.currentTimeMillis
        yield* Effect.sleep(100 + (n % 3) * 50)
        const list = runs.get(user) ?? []
        list.push([start, yield* Clock.currentTimeMillis])
        runs.set(user, list)
      })
    )
    return Effect.gen(function*() {
      yield* work.sendBatch(Array.from({ length: 30 }, (_, n) => ({ n, user: `user-${n % 3}` })))
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual([...runs.values()].map((list) => list.length), [10, 10, 10])
      for (const list of runs.values()) assert.strictEqual(maxOverlap(list), 2)
      assert.deepStrictEqual(yield* MemoryBroker.join("limited"), [])
    }).pipe(
      Effect.provide(
        Worker.layer({ handlers: [handler], concurrency: 16 }).pipe(Layer.provideMerge(MemoryBroker.layer))
      ),
      Effect.provideService(References.MinimumLogLevel, "Warn")
    )
  })
})
