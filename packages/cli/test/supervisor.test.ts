/**
 * `errand worker` as real processes: the supervisor's children, crash replacement, graceful stop, and the exit codes
 * of a bad module, bad flags and an unreachable broker.
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Effect, Layer } from "effect"
import { randomUUID } from "node:crypto"
import { hold } from "./fixtures/worker.ts"
import { bin, errand, fixture, redisUrl, start } from "./utils/cli.ts"

const uniquePrefix = () => `cli-${randomUUID().slice(0, 12)}`

/** Runs an effect against the Redis broker of `prefix`. */
const onRedis = <A, E>(prefix: string, effect: Effect.Effect<A, E, Broker.Broker>) =>
  Effect.runPromise(effect.pipe(Effect.provide(Layer.fresh(RedisBroker.layer({ url: redisUrl, prefix })))))

interface Started {
  readonly messageId: string
  readonly pid: number
}

/** Waits for the next "started" report of the fixture's `hold` handler. */
const nextStarted = (prefix: string): Promise<Started> =>
  onRedis(
    prefix,
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const taken = yield* broker.take({ queue: "cli_results", max: 1, lease: "30 seconds", wait: "40 seconds" })
      const delivery = taken.deliveries[0]
      if (delivery === undefined) return yield* Effect.die("no report within 40 s")
      yield* broker.settle([{ _tag: "Ack", delivery }])
      return (delivery.body as { readonly payload: Started }).payload
    })
  )

describe("errand worker --processes", () => {
  it("starts N workers, replaces a SIGKILLed one (its message is redelivered after the lease), drains on SIGTERM", async () => {
    const prefix = uniquePrefix()
    const supervisor = start(bin, [
      "worker",
      fixture("worker.ts"),
      "--processes",
      "2",
      "--lease",
      "1s",
      "--shutdown-timeout",
      "1s",
      "--redis-prefix",
      prefix
    ], { REDIS_URL: redisUrl })
    await supervisor.waitFor(/Worker started on cli_jobs/, 2)
    const pids = [...supervisor.output().matchAll(/Started worker process \d \(pid (\d+)\)/g)].map((m) => Number(m[1]))
    assert.strictEqual(pids.length, 2)

    await onRedis(prefix, hold.send({ millis: 120_000 }))
    const first = await nextStarted(prefix)
    assert.include(pids, first.pid)
    process.kill(first.pid, "SIGKILL")
    await supervisor.waitFor(/Worker process \d \(pid \d+\) was killed by SIGKILL; restarting it in/)

    // its lease (1 s) lapses and another worker process runs it
    const again = await nextStarted(prefix)
    assert.strictEqual(again.messageId, first.messageId)
    assert.notStrictEqual(again.pid, first.pid)
    await supervisor.waitFor(/Worker started on cli_jobs/, 3) // the replacement

    supervisor.child.kill("SIGTERM")
    const exit = await supervisor.exited
    assert.deepStrictEqual(exit, { code: 0, signal: null }, supervisor.output())
    // every worker drained; the one running the long message released it when the shutdown timeout ran out
    assert.strictEqual(
      [...supervisor.output().matchAll(/Worker process \d \(pid \d+\) stopped with code 0/g)].length,
      2
    )
    assert.match(supervisor.output(), /Worker stopped: 0 messages finished .*, 1 released/, supervisor.output())
  })

  it("recycles a worker process after --max-messages: it drains, and a fresh one starts at once", async () => {
    const prefix = uniquePrefix()
    const supervisor = start(bin, [
      "worker",
      fixture("worker.ts"),
      "--processes",
      "2",
      "--max-messages",
      "2",
      "--redis-prefix",
      prefix
    ], { REDIS_URL: redisUrl })
    await supervisor.waitFor(/Worker started on cli_jobs/, 2)
    await onRedis(prefix, hold.sendBatch(Array.from({ length: 6 }, () => ({ millis: 10 }))))
    const ids = new Set<string>()
    while (ids.size < 6) ids.add((await nextStarted(prefix)).messageId)
    await supervisor.waitFor(/recycled: 2 messages finished \(--max-messages 2\); starting a fresh one/)
    supervisor.child.kill("SIGTERM")
    assert.deepStrictEqual(await supervisor.exited, { code: 0, signal: null }, supervisor.output())
    assert.isAtLeast([...supervisor.output().matchAll(/Started worker process/g)].length, 3)
    assert.notMatch(supervisor.output(), /restarting it in/, supervisor.output()) // a recycle is not a crash: no backoff
  })

  it("a second SIGTERM while workers drain kills them (SIGKILL) and exits 130", async () => {
    const prefix = uniquePrefix()
    const supervisor = start(bin, [
      "worker",
      fixture("worker.ts"),
      "--processes",
      "2",
      "--shutdown-timeout",
      "1m",
      "--redis-prefix",
      prefix
    ], { REDIS_URL: redisUrl })
    await supervisor.waitFor(/Worker started on cli_jobs/, 2)
    await onRedis(prefix, hold.send({ millis: 120_000 }))
    const busy = await nextStarted(prefix)
    supervisor.child.kill("SIGTERM") // the busy worker waits for its handler (up to a minute)
    await supervisor.waitFor(/Worker process \d \(pid \d+\) stopped with code 0/) // the idle one drained
    supervisor.child.kill("SIGTERM")
    assert.deepStrictEqual(await supervisor.exited, { code: 130, signal: null }, supervisor.output())
    assert.include(supervisor.output(), "Second signal: killing 1 worker process(es)")
    // it is gone, not orphaned (SIGKILL is asynchronous and init reaps it: poll, generously bounded)
    const alive = () => {
      try {
        process.kill(busy.pid, 0)
        return true
      } catch {
        return false
      }
    }
    for (let i = 0; i < 100 && alive(); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    assert.isFalse(alive())
  })

  it("exits 3 with the module's error when it throws at import, without starting any worker", async () => {
    const result = await errand(["worker", fixture("throws.ts"), "--processes", "2"], { REDIS_URL: redisUrl })
    assert.strictEqual(result.code, 3, result.output)
    assert.include(result.output, "the database password is not set")
    assert.notInclude(result.output, "Started worker process")
    assert.notInclude(result.output, "    at ") // no stack dump for a user mistake
  })

  it("exits 3 when the module exports no worker definition", async () => {
    const result = await errand(["worker", fixture("empty.ts"), "--broker", "memory"])
    assert.strictEqual(result.code, 3, result.output)
    assert.include(result.output, "exports no worker definition")
  })

  it("exits 2 on bad flags and 4 when the broker is unreachable or not configured", async () => {
    const [badFlag, noUrl, unreachable] = await Promise.all([
      errand(["worker", fixture("worker.ts"), "--concurrency", "many"]),
      errand(["worker", fixture("worker.ts")]),
      errand(["worker", fixture("worker.ts"), "--redis-url", "redis://127.0.0.1:1"])
    ])
    assert.strictEqual(badFlag.code, 2, badFlag.output)
    assert.strictEqual(noUrl.code, 4, noUrl.output)
    assert.include(noUrl.output, "set REDIS_URL or pass --redis-url")
    assert.strictEqual(unreachable.code, 4, unreachable.output)
  })

  it("a worker run the README's way (Layer.launch + runMain) exits 0 on SIGTERM, after its stop line", async () => {
    const worker = start(fixture("worker.ts"), [])
    await worker.waitFor(/Worker started on cli_jobs/)
    worker.child.kill("SIGTERM")
    const exit = await worker.exited
    assert.deepStrictEqual(exit, { code: 0, signal: null }, worker.output())
    assert.match(worker.output(), /Worker stopped: 0 messages finished/)
  })
})
