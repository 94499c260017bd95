/**
 * Limits across processes: three `errand worker` processes on one Redis never exceed an actor's rate limit or its
 * per-key concurrency, and no message is retried or dead-lettered because of a limit.
 */
import { assert, describe, it } from "@effect/vitest"
import { Actor, Broker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Effect, Layer } from "effect"
import { randomUUID } from "node:crypto"
import { keyed, rated } from "./fixtures/limits.ts"
import { bin, fixture, redisUrl, start } from "./utils/cli.ts"

interface Run {
  readonly actor: string
  readonly key: string
  readonly start: number
  readonly end: number
  readonly pid: number
  readonly attempts: number
}

/** The largest number of runs open at once. */
const maxOverlap = (runs: ReadonlyArray<Run>) => {
  const events = runs.flatMap((run) => [[run.start, 1], [run.end, -1]] as const)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1])
  let open = 0
  let max = 0
  for (const [, delta] of events) max = Math.max(max, open += delta)
  return max
}

describe("errand worker: limits across processes", () => {
  it("3 processes: at most 20 starts per second of a rate-limited actor, at most 2 running per key, nothing retried", async () => {
    const prefix = `cli-${randomUUID().slice(0, 12)}`
    const workers = start(bin, ["worker", fixture("limits.ts"), "--processes", "3", "--redis-prefix", prefix], {
      REDIS_URL: redisUrl
    })
    await workers.waitFor(/Worker started on cli_limited/, 3)
    const layer = Layer.fresh(RedisBroker.layer({ url: redisUrl, prefix }))
    const runs = await Effect.runPromise(
      Effect.gen(function*() {
        const messages = [
          ...yield* Effect.forEach(Array.from({ length: 60 }, (_, n) => n), (n) => rated.message({ n })),
          ...yield* Effect.forEach(
            Array.from({ length: 30 }, (_, n) => n),
            (n) => keyed.message({ n, user: `user-${n % 3}` })
          )
        ]
        yield* Actor.enqueue(messages)
        const broker = yield* Broker.Broker
        const runs: Array<Run> = []
        while (runs.length < messages.length) {
          // each report arrives as its handler finishes; 60 rated messages at 20/s take about 3 s
          const taken = yield* broker.take({ queue: "cli_limit_log", max: 100, lease: "1 minute", wait: "20 seconds" })
          if (taken.deliveries.length === 0) return yield* Effect.die(`only ${runs.length} runs reported in 20 s`)
          for (const delivery of taken.deliveries) runs.push((delivery.body as { readonly payload: Run }).payload)
        }
        return runs
      }).pipe(Effect.provide(layer))
    )
    workers.child.kill("SIGTERM")
    assert.deepStrictEqual(await workers.exited, { code: 0, signal: null }, workers.output())

    const ratedStarts = runs.filter((run) => run.actor === "rated").map((run) => run.start)
    assert.strictEqual(ratedStarts.length, 60)
    // The broker counts takes; a start follows its take within milliseconds (handlers are idle here), so any window
    // of 1 s less a generous 100 ms for that lag holds at most 20 starts.
    for (const from of ratedStarts) {
      assert.isAtMost(ratedStarts.filter((time) => time >= from && time < from + 900).length, 20)
    }
    assert.isAtLeast(Math.max(...ratedStarts) - Math.min(...ratedStarts), 2_000) // 60 at 20/s: held back, not dropped
    assert.isAbove(new Set(runs.map((run) => run.pid)).size, 1) // the work was spread over processes

    const keyedRuns = runs.filter((run) => run.actor === "keyed")
    for (const user of ["user-0", "user-1", "user-2"]) {
      const own = keyedRuns.filter((run) => run.key === user)
      assert.strictEqual(own.length, 10)
      assert.isAtMost(maxOverlap(own), 2, user)
    }
    assert.deepStrictEqual(runs.filter((run) => run.attempts > 0), []) // no run was a retry
    assert.notMatch(workers.output(), /retrying|Dead-lettered/)
  })
})
