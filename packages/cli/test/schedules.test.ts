/**
 * Schedules across processes: three worker processes (children of one supervisor) run the same schedules on one Redis,
 * and each slot of a seconds-level cron is sent once. `errand schedules` lists them.
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Effect, Layer } from "effect"
import { randomUUID } from "node:crypto"
import { bin, errand, fixture, redisUrl, start } from "./utils/cli.ts"

describe("errand schedules", () => {
  it("three worker processes on one Redis send each slot of '* * * * * *' once", async () => {
    const prefix = `cli-${randomUUID().slice(0, 12)}`
    const workers = start(bin, ["worker", fixture("worker.ts"), "--processes", "3", "--redis-prefix", prefix], {
      REDIS_URL: redisUrl,
      CLI_TICKS: "1"
    })
    await workers.waitFor(/Schedules started: every_second/, 3)
    // let the three schedulers race for a few slots (each second; the wait is for events, the count is bounded)
    await workers.waitFor(/Sent cli_tick \S+ for the .*schedule: 'every_second'/, 4)
    workers.child.kill("SIGTERM")
    assert.deepStrictEqual(await workers.exited, { code: 0, signal: null }, workers.output())
    const slots = await Effect.runPromise(
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const taken = yield* broker.take({ queue: "cli_ticks", max: 1000, lease: "1 minute" })
        return taken.deliveries
          .map((d) => (d.body as { readonly options: { readonly slot: number; readonly schedule: string } }).options)
          .filter((options) => options.schedule === "every_second") // not the nightly schedule's catch-up
          .map((options) => options.slot)
      }).pipe(Effect.provide(Layer.fresh(RedisBroker.layer({ url: redisUrl, prefix }))))
    )
    assert.isAtLeast(slots.length, 4)
    assert.strictEqual(new Set(slots).size, slots.length, `a slot was sent twice: ${slots.join(", ")}`)
    const sorted = [...slots].sort((a, b) => a - b)
    assert.deepStrictEqual(sorted.slice(1).map((slot, i) => slot - sorted[i]!), sorted.slice(1).map(() => 1_000))
    // the three processes took turns: who sent a slot is whoever claimed it first
    assert.strictEqual([...workers.output().matchAll(/Sent cli_tick .*every_second/g)].length, slots.length)
  })

  it("lists a module's schedules with their next runs", async () => {
    const result = await errand(["schedules", fixture("worker.ts"), "--json", "--count", "2"], { CLI_TICKS: "1" })
    assert.strictEqual(result.code, 0, result.output)
    const listed = JSON.parse(result.output) as ReadonlyArray<{ readonly name: string; readonly next: Array<string> }>
    assert.deepStrictEqual(listed.map((s) => s.name), ["every_second", "nightly"])
    assert.strictEqual(listed[1]!.next.length, 2)
    assert.match(listed[1]!.next[0]!, /T0[01]:00:00\.000Z$/) // 02:00 in Berlin is 00:00 or 01:00 UTC
  })
})
