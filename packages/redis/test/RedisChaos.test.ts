/**
 * The Redis chaos test (issue 7's "what it must show"), bounded for CI: 3 worker processes, a producer at 500
 * messages/s for 10 s, redis-server (append-only, fsync always) shut down for 1 s and later SIGKILLed for 2.5 s, and
 * one worker SIGKILLed (and replaced) in between. Every message completes (0 lost); duplicates only for messages in
 * flight at a kill (or whose send may have been applied twice); every worker exits 0 on SIGTERM at the end. The same
 * run at a larger size is `pnpm soak` (see `chaos/soak.ts`).
 */
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Chaos from "./chaos/chaos.ts"
import { describeWithRedisServer } from "./utils/testing.ts"

describeWithRedisServer("Redis chaos", () => {
  it.live(
    "3 workers, 500 messages/s, two Redis outages and a SIGKILLed worker: nothing lost, clean exits",
    () =>
      Effect.gen(function*() {
        const report = yield* Chaos.run({
          jobs: 5_000,
          rate: 500,
          workers: 3,
          outages: [{ how: "shutdown", downMs: 1_000 }, { how: "kill", downMs: 2_500 }],
          kills: 1,
          // above the longest outage: leases held through an outage are still current when Redis is back
          leaseMs: 5_000,
          concurrency: 16,
          workMs: 2,
          // generous on a loaded 2-core machine: a killed worker's messages alone take one lease (5 s) to come back
          drainTimeoutMs: 20_000,
          shutdownTimeoutMs: 5_000,
          log: () => {}
        })
        process.stdout.write(Chaos.render(report).map((line) => `[redis chaos] ${line}\n`).join(""))
        assert.strictEqual(report.sent, 5_000)
        assert.deepStrictEqual(report.lost, [])
        assert.strictEqual(report.completed, 5_000)
        assert.deepStrictEqual(report.unexplained, [])
        assert.isTrue(report.drained)
        assert.deepStrictEqual(report.stats, { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
        assert.deepStrictEqual(report.exits.map((exit) => exit.code), [0, 0, 0])
      }),
    // startup ~3 s, production 10 s, drain ≤ 20 s, stops ≤ 10 s: well inside 60 s even when the machine is loaded
    60_000
  )
})
