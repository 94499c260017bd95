/**
 * Worker processes on Redis under faults: a graceful stop while Redis is down, and a poison message whose handler
 * freezes every worker that takes it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Context, Effect, Layer, Schedule } from "effect"
import { fileURLToPath } from "node:url"
import { modeActor } from "./fixtures/actors.ts"
import { spawnFixture, until } from "./utils/processes.ts"
import { startRedisServer } from "./utils/redisServer.ts"
import { liveWithRedisServer } from "./utils/testing.ts"

const workerFixture = fileURLToPath(new URL("./fixtures/hardening-worker.ts", import.meta.url))

/** A worker process of the fixture (its logs on stderr are not asserted on). */
const spawnWorker = (env: Record<string, string>) => spawnFixture(workerFixture, env, { quiet: true })

const brokerOn = (url: string, prefix: string) =>
  Effect.map(Layer.build(RedisBroker.layer({ url, prefix })), (context) => Context.get(context, Broker.Broker))

describe("Worker processes on Redis under faults", () => {
  liveWithRedisServer(
    "a worker stopped by SIGTERM while Redis is down exits 0 within shutdownTimeout + releaseTimeout",
    () =>
      Effect.gen(function*() {
        const server = yield* Effect.acquireRelease(
          Effect.promise(() => startRedisServer()),
          (server) => Effect.promise(() => server.dispose())
        )
        const queue = "sigterm-down"
        const broker = yield* brokerOn(server.url, "hardening")
        const worker = yield* spawnWorker({
          REDIS_URL: server.url,
          ERRAND_PREFIX: "hardening",
          ERRAND_QUEUE: queue,
          ERRAND_LEASE_MS: "5000",
          ERRAND_MAX_LOST_LEASES: "5",
          ERRAND_SHUTDOWN_MS: "500",
          ERRAND_RELEASE_MS: "1000"
        })
        yield* until("the worker is ready", () => worker.lines.includes("ready"))
        // Given a worker running a handler that never finishes
        yield* Effect.provideService(modeActor(queue).send({ n: 1, mode: "hang" }), Broker.Broker, broker)
        yield* until("the handler started", () => worker.lines.includes("started 1"))
        // When Redis goes down, and then the worker is told to stop
        yield* Effect.promise(() => server.stop())
        const start = Date.now()
        worker.signal("SIGTERM")
        const code = yield* Effect.promise(() => worker.exited)
        const took = Date.now() - start
        console.log(`[hardening] SIGTERM with Redis down: exit ${code} after ${took} ms (deadline 500 + 1000 ms)`)
        // Then it exits 0 by its deadline (0.5 s + 1 s; generous bound for a loaded machine: it used to never exit)
        assert.strictEqual(code, 0)
        assert.isBelow(took, 8_000)
        assert.include(worker.lines, "stopped")
      }).pipe(Effect.scoped),
    60_000
  )

  liveWithRedisServer(
    "a handler that blocks the event loop freezes each worker that takes it, until maxLostLeases dead-letters it; the other workers keep going",
    () =>
      Effect.gen(function*() {
        const server = yield* Effect.acquireRelease(
          Effect.promise(() => startRedisServer()),
          (server) => Effect.promise(() => server.dispose())
        )
        const queue = "poison"
        const broker = yield* brokerOn(server.url, "hardening")
        const env = {
          REDIS_URL: server.url,
          ERRAND_PREFIX: "hardening",
          ERRAND_QUEUE: queue,
          ERRAND_LEASE_MS: "1000",
          ERRAND_MAX_LOST_LEASES: "1",
          ERRAND_SHUTDOWN_MS: "500",
          ERRAND_RELEASE_MS: "1000"
        }
        const workers = [yield* spawnWorker(env), yield* spawnWorker(env), yield* spawnWorker(env)]
        yield* until("every worker is ready", () => workers.every((worker) => worker.lines.includes("ready")))
        // Given a poison message among 30 ordinary ones
        const actor = modeActor(queue)
        const send = <A, E>(effect: Effect.Effect<A, E, Broker.Broker>) =>
          Effect.provideService(effect, Broker.Broker, broker)
        yield* send(actor.send({ n: 0, mode: "spin" }))
        yield* send(actor.sendBatch(Array.from({ length: 30 }, (_, i) => ({ n: i + 1, mode: "ok" as const }))))
        // When workers freeze on it (each lost lease lapses after 1 s), at most maxLostLeases + 1 = 2 of them
        const dead = yield* broker.deadLetters(queue).pipe(
          Effect.flatMap((letters) => letters.length > 0 ? Effect.succeed(letters) : Effect.fail("none yet")),
          Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo({ duration: "40 seconds" })))
        )
        // Then it is dead-lettered unrun, with its reason
        assert.strictEqual(dead.length, 1)
        assert.strictEqual(dead[0]!.reason.tag, "DeliveryLimitExceeded")
        assert.strictEqual(dead[0]!.attempts, 0)
        const spins = workers.filter((worker) => worker.lines.includes("spin 0")).length
        assert.strictEqual(spins, 2, "two workers froze on it")
        // And every ordinary message was handled by the workers still alive
        yield* until("all 30 ordinary messages are done", () => {
          const done = new Set(workers.flatMap((worker) => worker.lines.filter((line) => line.startsWith("done "))))
          return done.size === 30
        })
        const alive = workers.filter((worker) => !worker.lines.includes("spin 0"))
        assert.strictEqual(alive.length, 1)
        alive[0]!.signal("SIGTERM")
        assert.strictEqual(yield* Effect.promise(() => alive[0]!.exited), 0)
        assert.deepStrictEqual(yield* broker.stats(queue), { ready: 0, delayed: 0, inFlight: 0, dead: 1 })
      }).pipe(Effect.scoped),
    60_000
  )
})
