/**
 * Credential masking: no error message, error field or log line shows a password, whatever characters it holds
 * (`/`, `@`, `:`, `%`, `?`, `#`, percent-encoded or not), including in URLs that do not parse. What the broker treats
 * as the password is what ioredis sends: a private server with `requirepass` accepts the percent-encoded form.
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Context, Effect, Layer, Logger } from "effect"
import * as Url from "../src/internal/url.ts"
import { freePort, startRedisServer } from "./utils/redisServer.ts"
import { describeWithRedisServer, message, uniquePrefix } from "./utils/testing.ts"

/** Builds the broker layer and returns its failure, with every log line written while building. */
const buildError = (url: string, connectTimeout = 2_000) =>
  Effect.gen(function*() {
    const logs: Array<string> = []
    const collect = Logger.make(({ message }) => {
      logs.push(JSON.stringify(message))
    })
    const error = yield* Effect.flip(
      Effect.scoped(Layer.build(RedisBroker.layer({ url, prefix: uniquePrefix(), connectTimeout }))).pipe(
        Effect.provide(Logger.layer([collect]))
      )
    )
    return { error, logs }
  })

/** Asserts that no rendering of `error` (nor any log line) contains one of the secret fragments. */
const assertMasked = (
  error: RedisBroker.RedisBrokerError,
  logs: ReadonlyArray<string>,
  fragments: ReadonlyArray<string>
) => {
  const renderings = [String(error), JSON.stringify(error), error.message, error.url, String(error.cause), ...logs]
  for (const fragment of fragments) {
    for (const text of renderings) assert.notInclude(text, fragment, `"${fragment}" shown in ${text}`)
  }
}

describe("Redis URL masking", () => {
  describe("URLs the broker refuses", () => {
    // Each password is made of fragments found nowhere else in the URL, so any leak of any part of it shows.
    const cases: ReadonlyArray<{ url: string; fragments: ReadonlyArray<string>; redacted: string; why: string }> = [
      {
        url: "redis://:topQ/secretQ@127.0.0.1:6379",
        fragments: ["topQ", "secretQ"],
        redacted: "redis://***@127.0.0.1:6379",
        why: "unencoded \"/\""
      },
      {
        url: "redis://app:topQ/secretQ@127.0.0.1:6379/2",
        fragments: ["topQ", "secretQ"],
        redacted: "redis://***@127.0.0.1:6379/2",
        why: "unencoded \"/\""
      },
      {
        // parses (host "u", port 1234, path "/5678@…"): the parse must not be trusted
        url: "redis://u:1234/5678@127.0.0.1:6379",
        fragments: ["1234", "5678"],
        redacted: "redis://***@127.0.0.1:6379",
        why: "unencoded \"/\""
      },
      {
        url: "redis://:topQ?secretQ@127.0.0.1:6379",
        fragments: ["topQ", "secretQ"],
        redacted: "redis://***@127.0.0.1:6379",
        why: "unencoded \"/\""
      },
      {
        url: "redis://:topQ#secretQ@127.0.0.1:6379",
        fragments: ["topQ", "secretQ"],
        redacted: "redis://***@127.0.0.1:6379",
        why: "unencoded \"/\""
      },
      {
        url: "redis://:top@Q/sec:retQ@127.0.0.1:6379?db=1#x",
        fragments: ["top@Q", "sec:retQ", "retQ"],
        redacted: "redis://***@127.0.0.1:6379",
        why: "unencoded \"/\""
      },
      {
        url: "redis://:50%offQ@127.0.0.1:6379",
        fragments: ["50%offQ", "offQ"],
        redacted: "redis://:***@127.0.0.1:6379",
        why: "percent-encoded byte"
      },
      {
        url: "redis://:secretQ",
        fragments: ["secretQ"],
        redacted: `redis://${Url.unparseable}`,
        why: "does not parse"
      },
      {
        url: "user:secretQ@127.0.0.1:6379",
        fragments: ["secretQ"],
        redacted: Url.unparseable,
        why: "no host"
      },
      {
        url: "http://user:secretQ@localhost:6379",
        fragments: ["secretQ"],
        redacted: "http://user:***@localhost:6379",
        why: "scheme"
      },
      {
        url: "redis://:secretQ@localhost:6379/abc",
        fragments: ["secretQ"],
        redacted: "redis://:***@localhost:6379/abc",
        why: "database index"
      },
      {
        url: "redis://:secretQ@127.0.0.1:notaport",
        fragments: ["secretQ"],
        redacted: "redis://***@127.0.0.1:notaport",
        why: "does not parse"
      },
      { url: "::", fragments: [], redacted: Url.unparseable, why: "does not parse" }
    ]
    for (const { fragments, redacted, url, why } of cases) {
      it.effect(`${url} → ${redacted}`, () =>
        Effect.gen(function*() {
          const { error, logs } = yield* buildError(url)
          assert.strictEqual(error._tag, "RedisBrokerError")
          assert.strictEqual(error.reason, "InvalidUrl")
          assert.strictEqual(error.url, redacted)
          assert.include(error.message, `Invalid Redis URL ${redacted}: `)
          assert.include(error.message, why)
          assertMasked(error, logs, fragments)
        }))
    }
  })

  describe("URLs that parse: connection failures name the redacted URL", () => {
    // Valid URLs, each password written as it may legally appear (":" and "@" need no encoding in the password).
    const cases: ReadonlyArray<{ auth: string; fragments: ReadonlyArray<string>; shown: string }> = [
      { auth: ":p@ssQ", fragments: ["p@ssQ", "ssQ", "p%40ssQ"], shown: ":***@" },
      { auth: "app:pa:ssQ", fragments: ["pa:ssQ", "ssQ", "pa%3AssQ"], shown: "app:***@" },
      { auth: ":50%25offQ", fragments: ["50%25offQ", "50%offQ", "offQ"], shown: ":***@" },
      { auth: ":topQ%2FsecretQ", fragments: ["topQ", "secretQ"], shown: ":***@" },
      { auth: ":topQ%40secretQ", fragments: ["topQ", "secretQ"], shown: ":***@" },
      // a lone user name may be meant as a password: it is masked too
      { auth: "secretQ", fragments: ["secretQ"], shown: "***@" }
    ]
    for (const { auth, fragments, shown } of cases) {
      it.live(`redis://${auth}@… is shown as redis://${shown}…`, () =>
        Effect.gen(function*() {
          const port = yield* Effect.promise(freePort)
          const { error, logs } = yield* buildError(`redis://${auth}@127.0.0.1:${port}/1`)
          assert.strictEqual(error.reason, "ConnectFailed")
          assert.strictEqual(error.url, `redis://${shown}127.0.0.1:${port}/1`)
          assert.include(error.message, `redis://${shown}127.0.0.1:${port}/1`)
          assertMasked(error, logs, fragments)
        }))
    }
  })

  describeWithRedisServer("against a private server with requirepass", () => {
    const password = "p@ss:w/rd%Q?#"
    it.live("connects with the percent-encoded password, and refuses the unencoded one without showing it", () =>
      Effect.gen(function*() {
        const server = yield* Effect.acquireRelease(
          Effect.promise(() => startRedisServer({ args: ["--requirepass", password] })),
          (server) => Effect.promise(() => server.dispose())
        )
        const encoded = `redis://:${encodeURIComponent(password)}@127.0.0.1:${server.port}`
        const context = yield* Layer.build(RedisBroker.layer({ url: encoded, prefix: uniquePrefix() }))
        const broker = Context.get(context, Broker.Broker)
        yield* broker.enqueue([message("q")])
        assert.strictEqual((yield* broker.stats("q")).ready, 1)
        const { error, logs } = yield* buildError(`redis://:${password}@127.0.0.1:${server.port}`)
        assert.strictEqual(error.reason, "InvalidUrl")
        assert.strictEqual(error.url, `redis://***@127.0.0.1:${server.port}`)
        assertMasked(error, logs, ["p@ss", "w/rd", encodeURIComponent(password)])
      }))
  })
})
