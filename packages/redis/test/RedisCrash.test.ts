/**
 * Crashes: a consumer process SIGKILLed mid-job (its messages come back after the lease), and a Redis restart (with
 * persistence) under a running producer and blocking consumer (processing resumes, nothing is lost).
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker, Worker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Clock, Context, Deferred, Effect, Fiber, Layer, Schedule } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { slowActor } from "./fixtures/actors.ts"
import { spawnFixture } from "./utils/processes.ts"
import { startRedisServer } from "./utils/redisServer.ts"
import { ack, liveWithRedisServer, message, redisUrl, uniquePrefix } from "./utils/testing.ts"

const build = (options: RedisBroker.RedisBrokerOptions) =>
  Effect.map(Layer.build(RedisBroker.layer(options)), (context) => Context.get(context, Broker.Broker))

const fixture = fileURLToPath(new URL("./fixtures/consumer.ts", import.meta.url))
const workerFixture = fileURLToPath(new URL("./fixtures/worker.ts", import.meta.url))

/** Polls `condition` every 10 ms until it holds: waits for an event seen from outside (a process's output, a count). */
const until = (condition: () => boolean, what: string) =>
  Effect.sleep(10).pipe(
    Effect.repeat({ until: condition }),
    Effect.timeoutOrElse({
      duration: "30 seconds",
      orElse: () => Effect.die(new Error(`Timed out after 30 s waiting for ${what}`))
    })
  )

describe("RedisBroker crashes", () => {
  it.live(
    "redelivers the messages of a consumer SIGKILLed mid-job once their lease lapses, none lost",
    () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const queue = "crash"
        const leaseMs = 1_000
        const broker = yield* build({ url: redisUrl, prefix })
        yield* Effect.addFinalizer(() => Effect.ignore(broker.flush(queue)))
        const messages = Array.from({ length: 5 }, () => message(queue))
        yield* broker.enqueue(messages)
        // A child process takes them and hangs mid-job: its lease starts after this instant
        const spawnedAt = yield* Clock.currentTimeMillis
        const child = spawn(process.execPath, [fixture], {
          env: {
            ...process.env,
            REDIS_URL: redisUrl,
            ERRAND_PREFIX: prefix,
            ERRAND_QUEUE: queue,
            ERRAND_LEASE_MS: String(leaseMs)
          },
          stdio: ["ignore", "pipe", "inherit"]
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
        const line = yield* Effect.callback<string>((resume) => {
          let output = ""
          child.stdout.on("data", (chunk: Buffer) => {
            output += chunk.toString()
            if (output.includes("\n")) resume(Effect.succeed(output.split("\n")[0]!))
          })
        }).pipe(Effect.timeout("30 seconds")) // a node process starts in ~0.3 s idle, far slower on a loaded machine
        const takenAt = yield* Clock.currentTimeMillis
        assert.deepStrictEqual((JSON.parse(line) as Array<string>).sort(), messages.map((m) => m.id).sort())
        assert.deepStrictEqual(yield* broker.stats(queue), { ready: 0, delayed: 0, inFlight: 5, dead: 0 })
        // When the consumer is killed
        const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
        child.kill("SIGKILL")
        yield* Effect.promise(() => exited)
        // Then a second consumer gets every message back after the lease, as a second delivery
        const taken = yield* broker.take({ queue, max: 10, lease: "30 seconds", wait: "20 seconds" })
        const returnedAt = yield* Clock.currentTimeMillis
        assert.deepStrictEqual(taken.deliveries.map((d) => d.id).sort(), messages.map((m) => m.id).sort())
        assert.deepStrictEqual(taken.deliveries.map((d) => d.deliveries), [2, 2, 2, 2, 2])
        // Not before the child's lease lapsed (it was taken after spawnedAt) ...
        assert.isAtLeast(returnedAt - spawnedAt, leaseMs)
        // ... and woken when it lapsed, not when the 20 s wait ran out (about leaseMs idle; generous under load)
        assert.isBelow(returnedAt - takenAt, leaseMs + 8_000)
        assert.deepStrictEqual(yield* broker.settle(taken.deliveries.map(ack)), [])
        assert.deepStrictEqual(yield* broker.stats(queue), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
      }),
    60_000
  )

  it.live(
    "a Worker SIGKILLed mid-job holds its leases while alive; another Worker gets the messages after the lease",
    () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const queue = "worker-crash"
        // Extended every third of it: a loaded machine may delay the child's extension by a second without losing it
        const leaseMs = 2_000
        const BrokerLive = RedisBroker.layer({ url: redisUrl, prefix })
        const broker = yield* build({ url: redisUrl, prefix })
        yield* Effect.addFinalizer(() => Effect.ignore(broker.flush(queue)))
        const actor = slowActor(queue)
        const sent = yield* actor.sendBatch([1, 2, 3, 4, 5].map((n) => ({ n }))).pipe(Effect.provide(BrokerLive))
        const ids = sent.map((m) => m.id).sort()
        // A worker process starts all five and hangs in them
        const child = yield* spawnFixture(workerFixture, {
          REDIS_URL: redisUrl,
          ERRAND_PREFIX: prefix,
          ERRAND_QUEUE: queue,
          ERRAND_LEASE_MS: String(leaseMs)
        })
        const started = () => child.lines.filter((line) => line.startsWith("started ")).map((line) => line.slice(8))
        yield* until(() => started().length >= 5, "the worker process to start five jobs")
        assert.deepStrictEqual(started().sort(), ids)
        // While it lives, its leases are extended past their first expiry: nothing is delivered twice
        yield* Effect.sleep(leaseMs * 1.5)
        assert.deepStrictEqual(yield* broker.stats(queue), { ready: 0, delayed: 0, inFlight: 5, dead: 0 })
        assert.strictEqual(started().length, 5)
        // When it is killed, a second worker runs every message once its lease lapses
        yield* child.kill
        const killedAt = yield* Clock.currentTimeMillis
        const done = yield* Deferred.make<void>()
        const ran = new Map<string, number>()
        const SecondLive = actor.handle((_, message) =>
          Effect.gen(function*() {
            ran.set(message.id, (ran.get(message.id) ?? 0) + 1)
            if (ran.size === 5) yield* Deferred.succeed(done, undefined)
          })
        )
        yield* Layer.build(
          Worker.layer({ handlers: [SecondLive], queues: [queue], lease: leaseMs }).pipe(Layer.provide(BrokerLive))
        )
        yield* Deferred.await(done).pipe(Effect.timeout("30 seconds"))
        const elapsed = (yield* Clock.currentTimeMillis) - killedAt
        assert.deepStrictEqual([...ran.keys()].sort(), ids)
        assert.deepStrictEqual([...ran.values()], [1, 1, 1, 1, 1])
        // Soon after the lease lapsed (about leaseMs idle; generous for a loaded machine)
        assert.isBelow(elapsed, leaseMs + 8_000)
        // The worker acks in the background: wait for it
        const drained = Effect.gen(function*() {
          for (;;) {
            const stats = yield* broker.stats(queue)
            if (stats.inFlight === 0) return stats
            yield* Effect.sleep(20)
          }
        })
        assert.deepStrictEqual(yield* Effect.timeout(drained, "30 seconds"), {
          ready: 0,
          delayed: 0,
          inFlight: 0,
          dead: 0
        })
      }),
    90_000
  )

  liveWithRedisServer(
    "a Worker keeps processing across a Redis restart: every message sent is handled, nothing is left",
    () =>
      Effect.gen(function*() {
        const server = yield* Effect.acquireRelease(
          Effect.promise(() => startRedisServer({ persistence: true })),
          (server) => Effect.promise(() => server.dispose())
        )
        const queue = "worker-restart"
        const BrokerLive = RedisBroker.layer({ url: server.url, prefix: "wr", commandTimeout: 1_000 })
        const brokerContext = yield* Layer.build(BrokerLive)
        const broker = Context.get(brokerContext, Broker.Broker)
        const actor = slowActor(queue)
        const total = 200
        const handled = new Map<string, number>()
        const Handler = actor.handle((_, message) =>
          Effect.sync(() => {
            handled.set(message.id, (handled.get(message.id) ?? 0) + 1)
          })
        )
        yield* Layer.build(Worker.layer({ handlers: [Handler], queues: [queue], lease: "2 seconds", concurrency: 4 }))
          .pipe(
            Effect.provideContext(brokerContext)
          )
        // A producer sends one message every 5 ms, retrying a send that failed
        const sent: Array<string> = []
        const producer = yield* Effect.forkChild(Effect.forEach(
          Array.from({ length: total }, (_, n) => n),
          (n) =>
            actor.send({ n }).pipe(
              Effect.provideContext(brokerContext),
              Effect.retry(Schedule.spaced(50)),
              Effect.tap((message) => Effect.sync(() => sent.push(message.id))),
              Effect.andThen(Effect.sleep(5))
            ),
          { discard: true }
        ))
        // Once the worker has handled something, Redis stops for 300 ms
        yield* until(() => handled.size > 0, "the worker's first message")
        const before = handled.size
        yield* Effect.promise(() => server.stop())
        yield* Effect.sleep(300)
        yield* Effect.promise(() => server.start())
        yield* Fiber.join(producer)
        const allHandled = Effect.gen(function*() {
          for (;;) {
            const stats = yield* Effect.result(broker.stats(queue))
            const idle = stats._tag === "Success" &&
              stats.success.ready + stats.success.delayed + stats.success.inFlight === 0
            if (idle && sent.every((id) => handled.has(id))) return
            yield* Effect.sleep(50)
          }
        })
        yield* Effect.timeout(allHandled, "60 seconds")
        process.stdout.write(
          `[redis restart, worker] ${before} handled before the restart; all ${sent.length} sent were handled, ` +
            `${[...handled.values()].filter((n) => n > 1).length} twice\n`
        )
        assert.isAbove(before, 0)
        assert.isBelow(before, total)
        assert.strictEqual(sent.length, total)
      }),
    120_000 // starts a server, and restarts it (each start retried on a loaded machine)
  )

  liveWithRedisServer(
    "resumes processing after a Redis restart under a running producer and blocking consumer, nothing lost",
    () =>
      Effect.gen(function*() {
        const server = yield* Effect.acquireRelease(
          Effect.promise(() => startRedisServer({ persistence: true })),
          (server) => Effect.promise(() => server.dispose())
        )
        const broker = yield* build({ url: server.url, prefix: "restart", commandTimeout: 1_000 })
        const queue = "jobs"
        const total = 300
        const messages = Array.from({ length: total }, () => message(queue))
        const retrying = Schedule.spaced(50)
        let failures = 0
        const counted = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          effect.pipe(Effect.tapError(() => Effect.sync(() => failures++)), Effect.retry(retrying))

        // A producer: one message every 5 ms, retrying a failed enqueue
        const producer = yield* Effect.forkChild(
          Effect.forEach(messages, (m) => Effect.andThen(counted(broker.enqueue([m])), Effect.sleep(5)), {
            discard: true
          })
        )

        // A blocking consumer: takes, acks in the next take, retrying a failed take (keeping its settlements)
        const seen = new Map<string, number>()
        const consumer = yield* Effect.forkChild(Effect.gen(function*() {
          let settle: ReadonlyArray<Broker.Settlement> = []
          for (;;) {
            const taken = yield* counted(
              broker.take({ queue, max: 10, lease: "1 second", wait: "500 millis", settle })
            )
            for (const d of taken.deliveries) seen.set(d.id, (seen.get(d.id) ?? 0) + 1)
            settle = taken.deliveries.map(ack)
            if (taken.deliveries.length === 0 && seen.size === total) {
              const stats = yield* counted(broker.stats(queue))
              if (stats.ready + stats.delayed + stats.inFlight === 0) return
            }
          }
        }))

        // When Redis restarts while both run (once the consumer has processed something)
        yield* until(() => seen.size > 0, "the consumer's first message")
        const before = seen.size
        yield* Effect.promise(() => server.stop())
        yield* Effect.sleep(300)
        yield* Effect.promise(() => server.start())

        // Then both carry on, and every message is processed
        yield* Fiber.join(producer)
        yield* Fiber.join(consumer).pipe(Effect.timeout("60 seconds"))
        const duplicates = [...seen.values()].filter((n) => n > 1).length
        process.stdout.write(
          `[redis restart] ${before} processed before the restart, ${failures} failed calls retried, ` +
            `${duplicates} delivered twice, all ${seen.size} processed\n`
        )
        assert.isAbove(before, 0)
        assert.isBelow(before, total)
        assert.isAbove(failures, 0)
        assert.deepStrictEqual(messages.filter((m) => !seen.has(m.id)).map((m) => m.id), [])
        assert.deepStrictEqual(yield* broker.stats(queue), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
      }),
    120_000 // starts a server, and restarts it
  )
})
