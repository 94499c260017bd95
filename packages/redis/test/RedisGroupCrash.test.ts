/**
 * A worker process SIGKILLed between a group member's success (recorded in Redis) and the group's callback: after
 * the member's lease lapses, another worker runs it again, finds it counted, and sends the callback, exactly once.
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker, Group } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Context, Effect, Layer, Schedule } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { memberActor, summaryActor } from "./fixtures/actors.ts"
import { redisUrl, uniquePrefix } from "./utils/testing.ts"

const fixture = fileURLToPath(new URL("./fixtures/group-worker.ts", import.meta.url))

/** Spawns a group worker process (SIGKILLed with the scope), collecting its stdout lines. */
const spawnWorker = (env: Record<string, string>) =>
  Effect.gen(function*() {
    const child = spawn(process.execPath, [fixture], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
    yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
    const lines: Array<string> = []
    let buffered = ""
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString()
      const parts = buffered.split("\n")
      buffered = parts.pop()!
      lines.push(...parts)
    })
    child.stderr.resume()
    return { lines, exited }
  })

/** Waits (polling every 20 ms of real time, up to 30 s) until `condition` holds. */
const until = (what: string, condition: () => boolean) =>
  Effect.suspend(() => condition() ? Effect.void : Effect.fail(what)).pipe(
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ duration: "30 seconds" }))),
    Effect.orDie
  )

describe("Groups on Redis, across a crash", () => {
  it.live(
    "a worker killed after recording the completing member sends no callback; the next worker sends it once",
    () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const [members, summaries] = ["members", "summaries"]
        const broker = yield* Effect.map(
          Layer.build(RedisBroker.layer({ url: redisUrl, prefix })),
          (context) => Context.get(context, Broker.Broker)
        )
        yield* Effect.addFinalizer(() => Effect.ignore(Effect.all([broker.flush(members), broker.flush(summaries)])))
        const env = { REDIS_URL: redisUrl, ERRAND_PREFIX: prefix, ERRAND_QUEUE: members, ERRAND_LEASE_MS: "1000" }
        // Given a worker that dies right after the broker recorded the member that completes the group
        const doomed = yield* spawnWorker({ ...env, ERRAND_CRASH_ON_COMPLETE: "1" })
        yield* until("the first worker is ready", () => doomed.lines.includes("ready"))
        const group = yield* Effect.provideService(
          Effect.gen(function*() {
            const member = memberActor(members)
            return yield* Group.run(
              [yield* member.message({ n: 1 }), yield* member.message({ n: 2 }), yield* member.message({ n: 3 })],
              { onComplete: yield* summaryActor(summaries).message({ group: "g" }) }
            )
          }),
          Broker.Broker,
          broker
        )
        assert.strictEqual(group.members.length, 3)
        // When it runs the group and is killed before sending the callback
        const code = yield* Effect.promise(() => doomed.exited)
        assert.strictEqual(code, null) // killed by a signal
        assert.deepStrictEqual(yield* broker.stats(summaries), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
        // Then a second worker runs the member again once its lease lapses, and sends the callback once
        const survivor = yield* spawnWorker(env)
        yield* broker.stats(summaries).pipe(
          Effect.flatMap((stats) => stats.ready >= 1 ? Effect.void : Effect.fail("not yet")),
          Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "30 seconds" })))
        )
        yield* broker.stats(members).pipe(
          Effect.flatMap((stats) => stats.ready + stats.inFlight === 0 ? Effect.void : Effect.fail("not yet")),
          Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "30 seconds" })))
        )
        assert.deepStrictEqual(yield* broker.stats(summaries), { ready: 1, delayed: 0, inFlight: 0, dead: 0 })
        assert.isAtLeast(survivor.lines.filter((line) => line.startsWith("done ")).length, 1)
      }).pipe(Effect.scoped),
    60_000
  )
})
