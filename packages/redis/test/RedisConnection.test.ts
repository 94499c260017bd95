/**
 * Connecting: URLs (TLS, credentials, database index), failing fast with tagged errors that never show the password,
 * `layerConfig`, and commands failing (not hanging) while Redis is down, then recovering.
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Clock, ConfigProvider, Context, Effect, Exit, Layer, Logger, Redacted, Schedule } from "effect"
import { readFileSync } from "node:fs"
import { freePort, type RedisServerOptions, selfSignedCertificate, startRedisServer } from "./utils/redisServer.ts"
import { describeWithRedisServer, liveWithOpenssl, message, redisUrl, uniquePrefix } from "./utils/testing.ts"

const secret = "hunter2-s3cret"

const privateServer = (options?: RedisServerOptions) =>
  Effect.acquireRelease(
    Effect.promise(() => startRedisServer(options)),
    (server) => Effect.promise(() => server.dispose())
  )

const build = (options: RedisBroker.RedisBrokerOptions) =>
  Effect.map(Layer.build(RedisBroker.layer(options)), (context) => Context.get(context, Broker.Broker))

/** Builds a layer that must fail, and returns its error with the time it took (one build). */
const buildError = (options: RedisBroker.RedisBrokerOptions) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const exit = yield* Effect.exit(Effect.scoped(build(options)))
    const elapsed = (yield* Clock.currentTimeMillis) - start
    assert.isTrue(Exit.isFailure(exit))
    const error = yield* Effect.flip(Effect.scoped(build(options)))
    return { error, elapsed }
  })

const assertNoSecret = (error: unknown) => {
  assert.notInclude(String(error), secret)
  assert.notInclude(JSON.stringify(error), secret)
  assert.notInclude((error as Error).message, secret)
}

describe("RedisBroker connection", () => {
  it.live("rejects a URL that is not redis:// or rediss:// with a tagged error that hides the password", () =>
    Effect.gen(function*() {
      for (const url of [`http://user:${secret}@localhost:6379`, `redis://:${secret}@localhost:6379/abc`, "::"]) {
        const { error } = yield* buildError({ url })
        assert.strictEqual(error._tag, "RedisBrokerError")
        assert.strictEqual(error.reason, "InvalidUrl")
        assert.include(error.message, "Invalid Redis URL")
        assertNoSecret(error)
      }
      const { error } = yield* buildError({ url: redisUrl, prefix: "a{b}" })
      assert.strictEqual(error.reason, "InvalidOptions")
    }))

  it.live("rejects duration options that are malformed, not above 0 or infinite, naming them", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<[string, Partial<RedisBroker.RedisBrokerOptions>]> = [
        ["connectTimeout", { connectTimeout: 0 }],
        ["commandTimeout", { commandTimeout: Number.NaN }],
        ["deadLetterTtl", { deadLetterTtl: Infinity }],
        ["slotMigrationTimeout", { slotMigrationTimeout: "5 bogus" as "5 seconds" }]
      ]
      for (const [option, options] of cases) {
        const { error } = yield* buildError({ url: redisUrl, ...options })
        assert.strictEqual(error.reason, "InvalidOptions", option)
        assert.include(error.message, option)
      }
    }))

  it.live("fails fast when nothing listens, naming the redacted URL", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const { elapsed, error } = yield* buildError({
        url: Redacted.make(`redis://user:${secret}@127.0.0.1:${port}/2`),
        connectTimeout: "30 seconds"
      })
      assert.strictEqual(error.reason, "ConnectFailed")
      assert.strictEqual(error.url, `redis://user:***@127.0.0.1:${port}/2`)
      assert.include(error.message, `redis://user:***@127.0.0.1:${port}/2`)
      assert.include(error.message, "ECONNREFUSED")
      assertNoSecret(error)
      // Failed on the refusal, not after connectTimeout (a few ms idle; generous for a loaded machine)
      assert.isBelow(elapsed, 10_000)
    }))

  it.live("gives up on a server that does not answer after connectTimeout", () =>
    Effect.gen(function*() {
      // A listening socket that never speaks Redis: the TCP connection opens, the handshake never completes
      const { createServer } = yield* Effect.promise(() => import("node:net"))
      const silent = createServer(() => {})
      const port = yield* Effect.promise(() =>
        new Promise<number>((resolve) =>
          silent.listen(0, "127.0.0.1", () => resolve((silent.address() as { port: number }).port))
        )
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => silent.close()))
      const { elapsed, error } = yield* buildError({ url: `redis://127.0.0.1:${port}`, connectTimeout: 300 })
      assert.include(["ConnectTimeout", "ConnectFailed"], error.reason)
      // Gave up after connectTimeout (300 ms), not the default 5 s and not never (generous for a loaded machine)
      assert.isBelow(elapsed, 4_000)
    }))

  describeWithRedisServer("against a private server", () => {
    it.live("authenticates with username and password and uses the database index of the URL", () =>
      Effect.gen(function*() {
        const server = yield* privateServer()
        server.cli("ACL", "SETUSER", "errand", "on", `>${secret}`, "~*", "&*", "+@all")
        const port = server.port
        const broker = yield* build({ url: `redis://errand:${secret}@127.0.0.1:${port}/3`, prefix: "db" })
        yield* broker.enqueue([message("q")])
        assert.strictEqual(server.cli("-n", "3", "LLEN", "{db:q}:r").trim(), "1")
        assert.strictEqual(server.cli("-n", "0", "EXISTS", "{db:q}:r").trim(), "0")
        // A wrong password is a tagged error without the password
        const { error } = yield* buildError({ url: `redis://errand:wrong-${secret}@127.0.0.1:${port}` })
        assert.strictEqual(error.reason, "ConnectFailed")
        assert.include(error.message, "WRONGPASS")
        assertNoSecret(error)
      }))

    it.live("warns when Redis may evict keys (maxmemory-policy other than noeviction)", () =>
      Effect.gen(function*() {
        const server = yield* privateServer({ args: ["--maxmemory-policy", "allkeys-lru"] })
        const warnings: Array<string> = []
        const collect = Logger.make(({ logLevel, message }) => {
          if (logLevel === "Warn") warnings.push(String(message))
        })
        yield* build({ url: server.url, prefix: uniquePrefix() }).pipe(Effect.provide(Logger.layer([collect])))
        assert.strictEqual(warnings.length, 1)
        assert.include(warnings[0], "maxmemory-policy allkeys-lru")
        server.cli("CONFIG", "SET", "maxmemory-policy", "noeviction")
        yield* build({ url: server.url, prefix: uniquePrefix() }).pipe(Effect.provide(Logger.layer([collect])))
        assert.strictEqual(warnings.length, 1)
      }))

    it.live("authenticates with a password only (requirepass)", () =>
      Effect.gen(function*() {
        const server = yield* privateServer({ args: ["--requirepass", secret] })
        const broker = yield* build({ url: `redis://:${secret}@127.0.0.1:${server.port}`, prefix: uniquePrefix() })
        yield* broker.enqueue([message("q")])
        assert.strictEqual((yield* broker.stats("q")).ready, 1)
        const { error } = yield* buildError({ url: `redis://127.0.0.1:${server.port}` })
        assert.strictEqual(error.reason, "ConnectFailed")
      }))

    liveWithOpenssl("connects over TLS with rediss://", () =>
      Effect.gen(function*() {
        const tls = selfSignedCertificate()
        const server = yield* privateServer({ tls })
        const broker = yield* build({
          url: server.url,
          prefix: uniquePrefix(),
          redisOptions: { tls: { ca: readFileSync(tls.ca, "utf8") } }
        })
        yield* broker.enqueue([message("q")])
        const taken = yield* broker.take({ queue: "q", max: 1, lease: "1 minute", wait: "1 second" })
        assert.strictEqual(taken.deliveries.length, 1)
        // A plain redis:// client cannot talk to it: a clear, bounded failure
        const { elapsed, error } = yield* buildError({
          url: `redis://localhost:${server.port}`,
          connectTimeout: 500
        })
        assert.strictEqual(error._tag, "RedisBrokerError")
        // Bounded by connectTimeout (500 ms), not the default 5 s (generous for a loaded machine)
        assert.isBelow(elapsed, 4_000)
      }))

    it.live("fails commands at once while Redis is down, and recovers by itself when it is back", () =>
      Effect.gen(function*() {
        const server = yield* privateServer()
        // A commandTimeout far above the bound below: failing "at once" must not mean "after commandTimeout"
        const broker = yield* build({ url: server.url, prefix: uniquePrefix(), commandTimeout: 30_000 })
        yield* broker.enqueue([message("q")])
        yield* Effect.promise(() => server.stop())
        const start = yield* Clock.currentTimeMillis
        const down = yield* Effect.flip(broker.enqueue([message("q")]))
        assert.strictEqual(down._tag, "BrokerError")
        assert.strictEqual(down.broker, "redis")
        assert.strictEqual(down.operation, "enqueue")
        assert.include(down.message, "not connected to Redis")
        const takeDown = yield* Effect.flip(broker.take({ queue: "q", max: 1, lease: "1 minute", wait: "1 second" }))
        assert.strictEqual(takeDown.operation, "take")
        // At once: a few ms idle; generous for a loaded machine, and far below commandTimeout
        assert.isBelow((yield* Clock.currentTimeMillis) - start, 10_000)
        // Back up (empty: no persistence): the same broker works again, blocking takes included. ioredis reconnects
        // with a backoff of up to 2 s; 30 s covers a loaded machine.
        yield* Effect.promise(() => server.start())
        yield* broker.enqueue([message("q")]).pipe(
          Effect.retry({ schedule: Schedule.spaced(100), times: 300 })
        )
        const taken = yield* broker.take({ queue: "q", max: 10, lease: "1 minute", wait: "1 second" })
        assert.strictEqual(taken.deliveries.length, 1)
        const empty = yield* broker.take({ queue: "q", max: 10, lease: "1 minute", wait: 200 })
        assert.strictEqual(empty.deliveries.length, 0)
      }))
  })

  it.effect("layerConfig reads REDIS_URL", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(RedisBroker.layerConfig({ prefix: uniquePrefix() })).pipe(
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ REDIS_URL: redisUrl })))
      )
      const broker = Context.get(context, Broker.Broker)
      assert.strictEqual(broker.name, "redis")
      yield* broker.enqueue([message("q")])
      assert.strictEqual((yield* broker.stats("q")).ready, 1)
      yield* broker.flush("q")
      const missing = yield* Effect.flip(
        Effect.scoped(Layer.build(RedisBroker.layerConfig())).pipe(
          Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({})))
        )
      )
      assert.strictEqual(missing._tag, "ConfigError")
    }))
})
