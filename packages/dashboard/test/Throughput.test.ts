/**
 * Throughput from heartbeats: rates are differences of cumulative totals over a window, and a worker that stops
 * leaves its totals behind, so a rate never goes negative or jumps when workers come and go.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Heartbeat } from "@errand/core"
import { Throughput } from "../src/internal/throughput.ts"

const report = (id: string, at: number, succeeded: number, failed: number, runMillis = 0): Heartbeat.Report => ({
  id,
  host: "h",
  pid: 1,
  startedAt: 0,
  at,
  queues: ["q"],
  inFlight: 0,
  actors: [{
    actor: "a",
    queue: "q",
    started: succeeded + failed,
    succeeded,
    failed,
    runs: succeeded + failed,
    runMillis
  }],
  schedules: []
})

describe("Throughput", () => {
  it("rates are the totals' differences over the smoothing window, with the mean handler time", () => {
    const throughput = new Throughput(60_000)
    throughput.record(0, [report("w1", 0, 0, 0)])
    throughput.record(5_000, [report("w1", 5_000, 40, 10, 500)])
    throughput.record(10_000, [report("w1", 10_000, 90, 10, 1_000)])
    const series = throughput.series(60_000, 10_000)
    assert.deepStrictEqual(series.at(-1), { at: 10_000, processed: 10, failed: 1, meanMillis: 10 })
    assert.deepStrictEqual(throughput.actors(10_000), [
      { actor: "a", queue: "q", processed: 100, failed: 10, perSecond: 10, meanMillis: 10 }
    ])
  })

  it("keeps a stopped worker's totals, and counts a new worker's from its start", () => {
    const throughput = new Throughput(60_000)
    throughput.record(0, [report("w1", 0, 100, 0)])
    // w1 stops; w2 starts and finishes 20
    throughput.record(10_000, [report("w2", 10_000, 20, 0)])
    const [point] = throughput.series(60_000, 10_000)
    assert.deepStrictEqual(point, { at: 10_000, processed: 2, failed: 0, meanMillis: 0 })
    throughput.record(20_000, [report("w2", 20_000, 50, 0)])
    assert.strictEqual(throughput.series(60_000, 10_000).at(-1)?.processed, 3)
  })

  it("drops samples older than it keeps, and lists nothing before two samples", () => {
    const throughput = new Throughput(10_000)
    assert.deepStrictEqual(throughput.series(60_000, 10_000), [])
    throughput.record(0, [])
    assert.deepStrictEqual(throughput.actors(60_000), [])
    for (let at = 1_000; at <= 60_000; at += 1_000) throughput.record(at, [report("w", at, at / 1_000, 0)])
    const series = throughput.series(60_000, 5_000)
    assert.isAtMost(series.length, 12)
    assert.deepStrictEqual(series.at(-1), { at: 60_000, processed: 1, failed: 0, meanMillis: 0 })
  })
})
