/**
 * The startup check of ACL permissions: a Redis user lacking a command the broker or its scripts need, or the keys of
 * its prefix, fails layer construction with a `MissingPermissions` error naming what to grant (instead of starting and
 * then flapping "Broker unavailable / recovered"); a user with exactly the documented permissions runs the broker.
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Context, Effect, Fiber, Layer } from "effect"
import { type RedisServer, startRedisServer } from "./utils/redisServer.ts"
import { ack, describeWithRedisServer, message } from "./utils/testing.ts"

const password = "acl-s3cret/pw"

const privateServer = Effect.acquireRelease(
  Effect.promise(() => startRedisServer()),
  (server) => Effect.promise(() => server.dispose())
)

/** Creates an ACL user with `rules` (after `on >password`) and returns its broker URL. */
const user = (server: RedisServer, name: string, rules: ReadonlyArray<string>): string => {
  server.cli("ACL", "SETUSER", name, "reset", "on", `>${password}`, ...rules)
  return `redis://${name}:${encodeURIComponent(password)}@127.0.0.1:${server.port}`
}

const build = (url: string, prefix: string) =>
  Effect.map(Layer.build(RedisBroker.layer({ url, prefix })), (context) => Context.get(context, Broker.Broker))

const buildError = (url: string, prefix: string) => Effect.flip(Effect.scoped(build(url, prefix)))

/** The permissions the README documents (with `+info`, which is optional). */
const documented = (prefix: string) => [
  `~{${prefix}:*`,
  "+evalsha",
  "+eval",
  "+client|id",
  "+client|unblock",
  "+bzpopmin",
  "+rpush",
  "+llen",
  "+lpop",
  "+zadd",
  "+zcard",
  "+zcount",
  "+zrange",
  "+zrangebyscore",
  "+zpopmin",
  "+zrem",
  "+zremrangebyrank",
  "+hset",
  "+hmget",
  "+hlen",
  "+hdel",
  "+incr",
  "+incrby",
  "+exists",
  "+hget",
  "+hincrby",
  "+time",
  "+zrangebylex",
  "+sadd",
  "+srem",
  "+smembers",
  "+pexpire",
  "+del",
  "+zscore",
  "+hexists",
  "+lrange",
  "+lrem",
  "+info"
]

describeWithRedisServer("RedisBroker ACL permissions", () => {
  it.live("a user lacking `client` fails at startup, naming client|id and client|unblock", () =>
    Effect.gen(function*() {
      const server = yield* privateServer
      const url = user(server, "noclient", ["~*", "&*", "+@all", "-client"])
      const error = yield* buildError(url, "p")
      assert.strictEqual(error._tag, "RedisBrokerError")
      assert.strictEqual(error.reason, "MissingPermissions")
      assert.deepStrictEqual(error.permissions, ["client|id", "client|unblock"])
      assert.include(error.message, "cannot run client|id, client|unblock")
      assert.include(error.message, "ACL SETUSER <user> +client|id +client|unblock")
      assert.strictEqual(error.url, `redis://noclient:***@127.0.0.1:${server.port}`)
      for (const text of [String(error), JSON.stringify(error), error.message]) {
        assert.notInclude(text, password)
        assert.notInclude(text, encodeURIComponent(password))
      }
    }))

  it.live("a `+@all -@dangerous` user lacks client|unblock", () =>
    Effect.gen(function*() {
      const server = yield* privateServer
      const error = yield* buildError(user(server, "safe", ["~*", "&*", "+@all", "-@dangerous"]), "p")
      assert.strictEqual(error.reason, "MissingPermissions")
      assert.deepStrictEqual(error.permissions, ["client|unblock"])
    }))

  it.live("names the commands of the scripts and of the connection a user lacks, in one error", () =>
    Effect.gen(function*() {
      const server = yield* privateServer
      const error = yield* buildError(
        user(server, "partial", ["~*", "&*", "+@all", "-evalsha", "-rpush", "-hset", "-bzpopmin"]),
        "p"
      )
      assert.strictEqual(error.reason, "MissingPermissions")
      assert.deepStrictEqual(error.permissions, ["evalsha", "bzpopmin", "rpush", "hset"])
    }))

  it.live("a user whose keys exclude the prefix fails, naming the key pattern", () =>
    Effect.gen(function*() {
      const server = yield* privateServer
      const error = yield* buildError(user(server, "otherkeys", ["~{other:*", "&*", "+@all"]), "mine")
      assert.strictEqual(error.reason, "MissingPermissions")
      assert.deepStrictEqual(error.permissions, ["~{mine:*"])
      assert.include(error.message, "grant ~{mine:*")
    }))

  it.live("a user with exactly the documented permissions runs the broker, and the check leaves no key behind", () =>
    Effect.gen(function*() {
      const server = yield* privateServer
      const broker = yield* build(user(server, "minimal", documented("app")), "app")
      yield* broker.enqueue([message("q"), message("q", { priority: 3 }), message("q", { eta: Date.now() + 100 })])
      // Blocking takes (BZPOPMIN, CLIENT UNBLOCK on interruption), settlements, dead letters, stats, flush
      const first = yield* broker.take({ queue: "q", max: 10, lease: "1 minute", wait: "1 second" })
      assert.strictEqual(first.deliveries.length, 2)
      const [a, b] = first.deliveries
      yield* broker.settle([ack(a!), { _tag: "DeadLetter", delivery: b!, reason: { tag: "Boom", message: "" } }])
      const delayed = yield* broker.take({ queue: "q", max: 10, lease: "1 minute", wait: "2 seconds" })
      assert.strictEqual(delayed.deliveries.length, 1)
      assert.deepStrictEqual(yield* broker.extend(delayed.deliveries, "1 minute"), [])
      yield* broker.settle(delayed.deliveries.map(ack))
      assert.strictEqual(yield* broker.requeueDeadLetters("q"), 1)
      const interrupted = yield* Effect.forkChild(
        broker.take({ queue: "empty", max: 1, lease: "1 minute", wait: 5_000 })
      )
      yield* Effect.sleep(50)
      yield* Fiber.interrupt(interrupted)
      assert.deepStrictEqual(yield* broker.stats("q"), { ready: 1, delayed: 0, inFlight: 0, dead: 0 })
      // idempotency keys (a held key, its window after an ack) and cancel (a scan of the timers and the ready list)
      const keyed = { ...message("q", { eta: Date.now() + 60_000 }), key: "k", keyTtl: 60_000 }
      yield* broker.enqueue([keyed])
      const held = yield* broker.enqueue([{ ...message("q"), key: "k" }])
      assert.deepStrictEqual([...held.duplicates.values()], [keyed.id])
      assert.deepStrictEqual(yield* broker.cancel("q", [keyed.id, "unknown"]), ["cancelled", "notFound"])
      yield* broker.flush("q")
      assert.strictEqual(server.cli("KEYS", "*errand-permission-check*").trim(), "")
    }))
})
