/**
 * The broker on a real Redis Cluster of three masters (started by this file, stopped after it): the shared conformance
 * suite, queues spread over the nodes by their hash slots, and blocking takes woken by an enqueue.
 */
import { assert, describe, it } from "@effect/vitest"
import { Actor, Broker } from "@errand/core"
import { BrokerConformance, ResultsConformance } from "@errand/core/testing"
import { RedisBroker } from "@errand/redis"
import { Context, Duration, Effect, Exit, Fiber, Layer, Redacted, Result, Schema } from "effect"
import { afterAll } from "vitest"
import * as Keys from "../src/internal/keys.ts"
import { type RedisCluster, startRedisCluster } from "./utils/redisCluster.ts"
import { blockedClients, freePort, hasRedisServer, untilBlocked, waitFor } from "./utils/redisServer.ts"
import { ack, describeWithRedisServer, message, redisUrl, uniquePrefix } from "./utils/testing.ts"

/** Registers the tests against a running cluster. */
const clusterTests = (cluster: RedisCluster): void => {
  const clusterLayer = (options: Partial<RedisBroker.RedisBrokerOptions> = {}) =>
    RedisBroker.layer({ url: cluster.url, cluster: true, prefix: uniquePrefix(), ...options })

  BrokerConformance.suite("redis cluster", clusterLayer())
  ResultsConformance.suite("redis cluster", clusterLayer())

  /** The port of the master serving each slot, from `CLUSTER NODES`. */
  const slotOwners = (): Map<number, number> => {
    const owners = new Map<number, number>()
    for (const line of cluster.cli(cluster.ports[0]!, "CLUSTER", "NODES").split("\n")) {
      const fields = line.trim().split(" ")
      if (fields.length < 9 || !fields[2]!.includes("master")) continue
      const port = Number(/:(\d+)@/.exec(fields[1]!)![1])
      for (const range of fields.slice(8)) {
        const [from, to] = range.split("-").map(Number)
        for (let slot = from!; slot <= (to ?? from!); slot++) owners.set(slot, port)
      }
    }
    return owners
  }

  /** One queue name per master: each queue's keys live on a different node. */
  const queuePerNode = (prefix: string): Array<{ readonly queue: string; readonly port: number }> => {
    const owners = slotOwners()
    const byPort = new Map<number, string>()
    for (let i = 0; byPort.size < cluster.ports.length; i++) {
      const queue = `q${i}`
      const port = owners.get(Keys.slot(Keys.make(prefix, queue).ready))!
      if (!byPort.has(port)) byPort.set(port, queue)
    }
    return Array.from(byPort, ([port, queue]) => ({ queue, port }))
  }

  const brokerOf = <E>(layer: Layer.Layer<Broker.Broker, E>) =>
    Effect.map(Layer.build(layer), (context) => Context.get(context, Broker.Broker))

  describe("RedisBroker on a Redis Cluster (3 private masters)", () => {
    it("computes the same hash slots as Redis", () => {
      for (const key of ["{errand:jobs}:r", "{t-1:emails}:w", "plain", "a{}b", "{user1000}.following", "ünï{cödé}"]) {
        assert.strictEqual(Keys.slot(key), Number(cluster.cli(cluster.ports[0]!, "CLUSTER", "KEYSLOT", key).trim()))
      }
    })

    it.live("queues on different nodes: one batch enqueue, take, settle, stats, dead letters and flush", () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const broker = yield* brokerOf(clusterLayer({ prefix }))
        const queues = queuePerNode(prefix)
        assert.strictEqual(new Set(queues.map((q) => q.port)).size, 3)
        // One call across three hash slots on three nodes (a single script would fail with CROSSSLOT).
        yield* broker.enqueue(queues.flatMap(({ queue }) => [message(queue), message(queue), message(queue)]))
        for (const { queue, port } of queues) {
          const keys = Keys.make(prefix, queue)
          assert.strictEqual(cluster.cli(port, "LLEN", keys.ready).trim(), "3", `${queue} lives on node ${port}`)
          const taken = yield* broker.take({ queue, max: 3, lease: "30 seconds" })
          assert.strictEqual(taken.deliveries.length, 3)
          const [first, second, third] = taken.deliveries
          const rejected = yield* broker.settle([
            ack(first!),
            { _tag: "DeadLetter", delivery: second!, reason: { tag: "Boom", message: "no" } }
          ])
          assert.deepStrictEqual(rejected, [])
          assert.deepStrictEqual(yield* broker.stats(queue), { ready: 0, delayed: 0, inFlight: 1, dead: 1 })
          assert.deepStrictEqual((yield* broker.deadLetters(queue)).map((d) => d.id), [second!.id])
          assert.strictEqual(yield* broker.requeueDeadLetters(queue), 1)
          assert.deepStrictEqual(yield* broker.stats(queue), { ready: 1, delayed: 0, inFlight: 1, dead: 0 })
          assert.deepStrictEqual(yield* broker.extend([third!], "1 minute"), [])
          yield* broker.flush(queue)
          assert.deepStrictEqual(yield* broker.stats(queue), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
          assert.strictEqual(cluster.cli(port, "EXISTS", ...keys.all).trim(), "0")
        }
        // Settlements across queues in one call are split per queue too.
        yield* broker.enqueue(queues.map(({ queue }) => message(queue)))
        const deliveries: Array<Broker.Delivery> = []
        for (const { queue } of queues) {
          deliveries.push(...(yield* broker.take({ queue, max: 1, lease: "30 seconds" })).deliveries)
        }
        assert.deepStrictEqual(yield* broker.settle(deliveries.map(ack)), [])
        for (const { queue } of queues) assert.strictEqual((yield* broker.stats(queue)).inFlight, 0)
      }).pipe(Effect.scoped))

    it.live("concurrent first commands to every node right after connecting all succeed", () =>
      Effect.gen(function*() {
        // ioredis opens a node's connection on its first command and rejects the commands that reach the node while it
        // opens (no offline queue): the broker connects every master before it is ready
        const prefix = uniquePrefix()
        const broker = yield* brokerOf(clusterLayer({ prefix }))
        const calls = queuePerNode(prefix).flatMap(({ queue }) => Array.from({ length: 5 }, () => broker.stats(queue)))
        const stats = yield* Effect.all(calls, { concurrency: "unbounded" })
        assert.deepStrictEqual(stats.map((s) => s.ready), Array.from({ length: 15 }, () => 0))
      }).pipe(Effect.scoped))

    it.live("ten fresh producers send at full speed to queues on every node the moment they are built: 0 failed", () =>
      Effect.gen(function*() {
        // the start-up race of a fresh client (a node's connection opening while commands reach it) must not fail a
        // single send: each producer is a new broker, and sends 300 messages with 100 in flight at once
        const prefix = uniquePrefix()
        const queues = queuePerNode(prefix).map(({ queue }) => queue)
        const actors = queues.map((queue) =>
          Actor.make(`startup_${queue}`, { queue, payload: Schema.Struct({ n: Schema.Number }) })
        )
        const producer = (p: number) =>
          Effect.gen(function*() {
            const broker = yield* brokerOf(clusterLayer({ prefix }))
            return yield* Effect.forEach(
              Array.from({ length: 300 }, (_, n) => n),
              (n) =>
                Effect.result(
                  Effect.provideService(actors[n % actors.length]!.send({ n: p * 1000 + n }), Broker.Broker, broker)
                ),
              { concurrency: 100 }
            )
          })
        const results = (yield* Effect.all(
          Array.from({ length: 10 }, (_, p) => producer(p)),
          { concurrency: "unbounded" }
        ))
          .flat()
        const failed = results.filter(Result.isFailure)
        assert.strictEqual(failed.length, 0, failed.map((f) => String(f.failure)).slice(0, 3).join("\n"))
        const broker = yield* brokerOf(clusterLayer({ prefix }))
        let total = 0
        for (const queue of queues) {
          total += (yield* broker.stats(queue)).ready
          yield* broker.flush(queue)
        }
        assert.strictEqual(total, 3_000)
      }).pipe(Effect.scoped))

    it.live("sends coalesced across three nodes meet a paused master: only its queue's sends fail, as maybe applied", () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const queues = queuePerNode(prefix)
        const paused = queues[0]!
        const payload = Schema.Struct({ n: Schema.Number })
        const actors = queues.map(({ queue }) => Actor.make(`perNode_${queue}`, { queue, payload }))
        // commandTimeout bounds how long the paused node's part waits for its reply
        const context = yield* Layer.build(clusterLayer({ prefix, commandTimeout: "2 seconds" }))
        const broker = Context.get(context, Broker.Broker)
        cluster.signal(paused.port, "SIGSTOP")
        const results = yield* Effect.forEach(
          Array.from({ length: 30 }, (_, n) => n),
          (n) => Effect.result(actors[n % 3]!.send({ n })),
          { concurrency: "unbounded" }
        ).pipe(
          Effect.provide(context),
          Effect.ensuring(Effect.sync(() => cluster.signal(paused.port, "SIGCONT")))
        )
        for (const [n, result] of results.entries()) {
          if (n % 3 === 0) {
            // written to the paused node, no reply in time: it may have been applied (and here it will be)
            assert.isTrue(Result.isFailure(result), `send ${n} to the paused node's queue fails`)
            const error = (result as Result.Failure<unknown, { _tag: string; applied?: string; message: string }>)
              .failure
            assert.strictEqual(error._tag, "BrokerError")
            assert.strictEqual(error.applied, "unknown")
            assert.include(error.message, "may or may not have been applied")
          } else {
            assert.isTrue(Result.isSuccess(result), `send ${n} to a healthy node's queue succeeds`)
          }
        }
        for (const { queue } of queues.slice(1)) assert.strictEqual((yield* broker.stats(queue)).ready, 10)
        // Resumed, the node runs the script it had received: the failed sends were enqueued after all ("unknown")
        yield* Effect.promise(() =>
          waitFor(
            () => Effect.runPromise(Effect.map(broker.stats(paused.queue), (s) => s.ready === 10)).catch(() => false),
            "the paused node's queue holds its 10 messages"
          )
        )
      }).pipe(Effect.scoped))

    it.live("a blocking take on each node wakes within milliseconds of an enqueue from another broker", () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const consumer = yield* brokerOf(clusterLayer({ prefix }))
        const producer = yield* brokerOf(clusterLayer({ prefix }))
        const queues = queuePerNode(prefix)
        const fibers = yield* Effect.forEach(queues, ({ queue }) =>
          Effect.forkChild(
            Effect.timed(consumer.take({ queue, max: 1, lease: "30 seconds", wait: "10 seconds" }))
          ))
        // Every take is blocked on its node
        for (const { port } of queues) {
          yield* Effect.promise(() => untilBlocked((...args) => cluster.cli(port, ...args)))
        }
        const sent = yield* Effect.forEach(queues, ({ queue }) => Effect.as(producer.enqueue([message(queue)]), queue))
        for (const [i, fiber] of fibers.entries()) {
          const [elapsed, taken] = yield* Fiber.join(fiber)
          assert.strictEqual(taken.deliveries.length, 1)
          assert.strictEqual(taken.deliveries[0]!.queue, sent[i])
          // Woken by the enqueue (within milliseconds when idle), not when its 10 s wait ran out
          assert.isBelow(Duration.toMillis(elapsed), 5_000)
        }
      }).pipe(Effect.scoped))

    it.live("an interrupted blocking take is unblocked on the node that serves its queue", () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const broker = yield* brokerOf(clusterLayer({ prefix }))
        for (const { queue, port } of queuePerNode(prefix)) {
          const unblocks = () =>
            Number(/cmdstat_client\|unblock:calls=(\d+)/.exec(cluster.cli(port, "INFO", "commandstats"))?.[1] ?? 0)
          const before = unblocks()
          const fiber = yield* Effect.forkChild(broker.take({ queue, max: 1, lease: "30 seconds", wait: "30 seconds" }))
          yield* Effect.promise(() => untilBlocked((...args) => cluster.cli(port, ...args)))
          const [elapsed] = yield* Effect.timed(Fiber.interrupt(fiber))
          // Ended by the interruption (a few ms idle), not by the 30 s wait
          assert.isBelow(Duration.toMillis(elapsed), 5_000)
          assert.strictEqual(unblocks(), before + 1)
          // The connection is reused and the queue still works.
          yield* broker.enqueue([message(queue)])
          const taken = yield* broker.take({ queue, max: 1, lease: "30 seconds", wait: "1 second" })
          assert.strictEqual(taken.deliveries.length, 1)
        }
      }).pipe(Effect.scoped))

    it.live(
      "sends during a 4 s slot migration (TRYAGAIN/ASK past the client's redirection limit) wait for it: 0 failed, 0 lost",
      () =>
        Effect.gen(function*() {
          const prefix = uniquePrefix()
          const [source, target] = queuePerNode(prefix)
          const { queue } = source!
          const keys = Keys.make(prefix, queue)
          const slot = String(Keys.slot(keys.ready))
          const idOf = (port: number) => cluster.cli(port, "CLUSTER", "MYID").trim()
          const broker = yield* brokerOf(clusterLayer({ prefix }))
          yield* broker.enqueue([message(queue)]) // some of the queue's keys exist on the source, others not
          // The slot starts migrating: the source answers TRYAGAIN (some keys there) or ASK, the target TRYAGAIN
          cluster.cli(target!.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", idOf(source!.port))
          cluster.cli(source!.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", idOf(target!.port))
          const sends = yield* Effect.forkChild(
            Effect.forEach(
              Array.from({ length: 20 }, (_, n) => n),
              (n) => Effect.delay(Effect.result(broker.enqueue([message(queue)])), `${n * 100} millis`),
              { concurrency: "unbounded" }
            )
          )
          // The window: 4 s, more than twice the client's own redirection limit (16 × 100 ms)
          yield* Effect.sleep("4 seconds")
          const moved = cluster.cli(source!.port, "CLUSTER", "GETKEYSINSLOT", slot, "100").split("\n").filter((k) =>
            k !== ""
          )
          assert.isAbove(moved.length, 0)
          cluster.cli(source!.port, "MIGRATE", "127.0.0.1", String(target!.port), "", "0", "5000", "KEYS", ...moved)
          for (const port of cluster.ports) cluster.cli(port, "CLUSTER", "SETSLOT", slot, "NODE", idOf(target!.port))
          const results = yield* Fiber.join(sends)
          const failed = results.filter((r) => r._tag === "Failure")
          assert.deepStrictEqual(failed, [], "no send failed")
          assert.strictEqual(cluster.cli(target!.port, "LLEN", keys.ready).trim(), "21", "every message is there")
          assert.strictEqual((yield* broker.stats(queue)).ready, 21)
        }).pipe(Effect.scoped),
      60_000
    )

    it.live("several seed URLs: a start with the first seed down and the second up succeeds", () =>
      Effect.gen(function*() {
        const down = `redis://127.0.0.1:${yield* Effect.promise(freePort)}` // nothing listens there
        const up = `redis://127.0.0.1:${cluster.ports[1]}`
        for (const url of [`${down},${up}`, [down, Redacted.make(up)]]) {
          const prefix = uniquePrefix()
          const broker = yield* brokerOf(RedisBroker.layer({ url, cluster: true, prefix }))
          const queues = queuePerNode(prefix)
          yield* broker.enqueue(queues.map(({ queue }) => message(queue)))
          for (const { queue } of queues) assert.strictEqual((yield* broker.stats(queue)).ready, 1)
        }
        // Every seed down: the start fails, naming them all (redacted)
        const error = yield* Effect.flip(
          brokerOf(
            RedisBroker.layer({ url: `${down},redis://127.0.0.1:1`, cluster: true, connectTimeout: "3 seconds" })
          )
        )
        assert.strictEqual(error.reason, "ConnectFailed")
        assert.strictEqual(error.url, `${down},redis://127.0.0.1:1`)
        // Several URLs need cluster mode, and the same credentials
        const standalone = yield* Effect.flip(brokerOf(RedisBroker.layer({ url: `${up},${down}` })))
        assert.strictEqual(standalone.reason, "InvalidOptions")
        const mixed = yield* Effect.flip(
          brokerOf(RedisBroker.layer({ url: [up, "redis://:other@127.0.0.1:1"], cluster: true }))
        )
        assert.strictEqual(mixed.reason, "InvalidOptions")
        assert.notInclude(JSON.stringify(mixed), "other")
      }).pipe(Effect.scoped))

    it.live("fails with ConnectFailed on a server without cluster support", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(brokerOf(RedisBroker.layer({ url: redisUrl, cluster: true })))
        assert.strictEqual(error._tag, "RedisBrokerError")
        assert.strictEqual(error.reason, "ConnectFailed")
        assert.include(error.message, "cluster support disabled")
      }).pipe(Effect.scoped))

    it.live(
      "a password-protected cluster: the URL's password reaches every node, and never shows",
      () =>
        Effect.gen(function*() {
          const secured = yield* Effect.acquireRelease(
            Effect.promise(() => startRedisCluster({ password: "s3cret" })),
            (c) => Effect.promise(() => c.dispose())
          )
          const url = (password: string) => Redacted.make(secured.url.replace("//", `//:${password}@`))
          // Connecting may be slow on a loaded machine: a timeout must not hide what is tested (the password's effect)
          const connectTimeout = "30 seconds"
          const broker = yield* brokerOf(
            RedisBroker.layer({ url: url("s3cret"), cluster: true, prefix: "auth", connectTimeout })
          )
          for (const queue of ["a", "b", "c", "d", "e"]) {
            // A blocking take on the queue's node (its own authenticated connection), woken by the enqueue
            const waiting = yield* Effect.forkChild(
              broker.take({ queue, max: 1, lease: "30 seconds", wait: "20 seconds" })
            )
            yield* Effect.promise(() =>
              waitFor(
                async () => secured.ports.some((port) => blockedClients((...args) => secured.cli(port, ...args)) > 0),
                `a take on ${queue} blocked`
              )
            )
            yield* broker.enqueue([message(queue)])
            assert.strictEqual((yield* Fiber.join(waiting)).deliveries.length, 1)
          }
          const exit = yield* Effect.exit(
            brokerOf(RedisBroker.layer({ url: url("wr0ng"), cluster: true, connectTimeout }))
          )
          const text = JSON.stringify(exit)
          assert.include(text, "ConnectFailed")
          assert.include(text, "WRONGPASS")
          assert.notInclude(text, "wr0ng")
        }).pipe(Effect.scoped),
      120_000
    ) // starts a second 3-node cluster: ~2 s idle, far more on a loaded machine (and up to three attempts)

    it.live("rejects a database index, and never shows the password", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(
          brokerOf(
            RedisBroker.layer({ url: Redacted.make(`redis://u:s3cret@127.0.0.1:${cluster.ports[0]}/2`), cluster: true })
          )
        )
        assert.isTrue(Exit.isFailure(exit))
        const text = JSON.stringify(exit)
        assert.include(text, "InvalidOptions")
        assert.notInclude(text, "s3cret")
      }).pipe(Effect.scoped))
  })
}

// Without redis-server on PATH (tests run against REDIS_URL), the file fails saying so, like the other private-server tests.
const cluster = hasRedisServer() ? await startRedisCluster() : undefined
if (cluster === undefined) {
  describeWithRedisServer("RedisBroker on a Redis Cluster", () => {})
} else {
  afterAll(() => cluster.dispose())
  clusterTests(cluster)
}
