/**
 * The dashboard's JSON API on a real HTTP server: what it lists, what its actions do, and what it refuses — actions
 * without the token when it listens beyond loopback, every action in read-only mode, malformed queue names and ids.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@errand/core"
import { MemoryBroker } from "@errand/memory"
import { Clock, Context, Effect, Layer, Redacted } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import { Dashboard } from "../src/index.ts"
import { request, serveDashboard } from "./utils.ts"

/** Dead-letters `labels` in `queue` through the broker contract (enqueue, take, settle), oldest first. */
const deadLetters = (queue: string, labels: ReadonlyArray<string>, body = (label: string): unknown => ({
  id: label,
  actor: "send_email",
  queue,
  payload: { to: `${label}@example.com` },
  enqueuedAt: 1_764_000_000_000
})) =>
  Effect.gen(function*() {
    const broker = yield* Broker.Broker
    for (const label of labels) {
      const now = yield* Clock.currentTimeMillis
      yield* broker.enqueue([{ id: label, queue, priority: 0, eta: now, body: body(label) }])
      const [delivery] = (yield* broker.take({ queue, max: 1, lease: "1 minute" })).deliveries
      yield* broker.settle([{
        _tag: "DeadLetter",
        delivery: delivery!,
        reason: { tag: "SmtpError", message: `mailbox ${label} full` }
      }])
    }
  })

const token = "s3cret-token-123"

describe("Dashboard API", () => {
  it.live("lists queues with their counts, and dead letters with payload, error and attempts", () =>
    Effect.gen(function*() {
      const base = yield* serveDashboard()
      yield* deadLetters("email", ["m1", "m2", "m3"])
      const broker = yield* Broker.Broker
      yield* broker.enqueue([{ id: "r1", queue: "email", priority: 0, eta: 0, body: {} }])
      yield* broker.enqueue([{ id: "later", queue: "reports", priority: 0, eta: Date.now() + 3_600_000, body: {} }])

      const queues = yield* request(`${base}/api/queues`)
      assert.strictEqual(queues.status, 200)
      assert.deepStrictEqual(queues.body.queues, [
        { queue: "email", ready: 1, delayed: 0, inFlight: 0, dead: 3 },
        { queue: "reports", ready: 0, delayed: 1, inFlight: 0, dead: 0 }
      ])

      const page = yield* request(`${base}/api/queues/email/dead-letters?offset=1&limit=1`)
      assert.strictEqual(page.status, 200)
      assert.strictEqual(page.body.total, 3)
      assert.deepStrictEqual(page.body.deadLetters.map((letter: { id: string }) => letter.id), ["m2"])
      const [letter] = page.body.deadLetters
      assert.deepInclude(letter, { actor: "send_email", attempts: 1, queue: "email" })
      assert.deepStrictEqual(letter.reason, { tag: "SmtpError", message: "mailbox m2 full" })
      // its attempt history: the one failure that dead-lettered it, at its dead-letter time
      assert.deepStrictEqual(letter.history, [{ at: letter.deadAt, tag: "SmtpError", message: "mailbox m2 full" }])
      assert.deepStrictEqual(letter.body.payload, { to: "m2@example.com" })

      const one = yield* request(`${base}/api/queues/email/dead-letters/m3`)
      assert.strictEqual(one.status, 200)
      assert.strictEqual(one.body.id, "m3")
      assert.strictEqual((yield* request(`${base}/api/queues/email/dead-letters/nope`)).status, 404)
      assert.strictEqual((yield* request(`${base}/api/queues/email/dead-letters/r1`)).status, 404) // ready, not dead

      const info = yield* request(`${base}/api/info`)
      assert.deepInclude(info.body, { broker: "memory", readOnly: false, tokenRequired: false })
    }).pipe(Effect.scoped, Effect.provide(MemoryBroker.layer)))

  it.live("requeues and deletes one dead letter, a selection, or all", () =>
    Effect.gen(function*() {
      const base = yield* serveDashboard()
      yield* deadLetters("email", ["a", "b", "c", "d", "e"])
      const act = (action: string, body: unknown) =>
        request(`${base}/api/queues/email/dead-letters/${action}`, { method: "POST", body })
      assert.deepStrictEqual((yield* act("requeue", { ids: ["a"] })).body, { queue: "email", requeued: 1 })
      assert.deepStrictEqual((yield* act("delete", { ids: ["b", "c", "unknown"] })).body, {
        queue: "email",
        deleted: 2
      })
      const stats = yield* Broker.Broker.use((broker) => broker.stats("email"))
      assert.deepStrictEqual(stats, { ready: 1, delayed: 0, inFlight: 0, dead: 2 })
      assert.deepStrictEqual((yield* act("requeue", { all: true })).body, { queue: "email", requeued: 2 })
      yield* deadLetters("email", ["f", "g"])
      assert.deepStrictEqual((yield* act("delete", { all: true })).body, { queue: "email", deleted: 2 })
      assert.deepStrictEqual(yield* Broker.Broker.use((broker) => broker.stats("email")), {
        ready: 3,
        delayed: 0,
        inFlight: 0,
        dead: 0
      })
      // a malformed selection changes nothing
      for (const body of [{}, { ids: [] }, { all: false }, { ids: ["x\"y"] }, "all"]) {
        const answer = yield* act("delete", body)
        assert.strictEqual(answer.status, 400, JSON.stringify(body))
        assert.strictEqual(answer.body.error, "RequestRefused")
      }
    }).pipe(Effect.scoped, Effect.provide(MemoryBroker.layer)))

  it.live("refuses actions without its request header (a cross-site form cannot act)", () =>
    Effect.gen(function*() {
      const base = yield* serveDashboard()
      yield* deadLetters("email", ["a"])
      const answer = yield* request(`${base}/api/queues/email/dead-letters/delete`, {
        method: "POST",
        body: { all: true },
        action: false
      })
      assert.strictEqual(answer.status, 403)
      assert.strictEqual((yield* Broker.Broker.use((broker) => broker.stats("email"))).dead, 1)
    }).pipe(Effect.scoped, Effect.provide(MemoryBroker.layer)))

  it.live("bound beyond loopback: actions answer 401 without the token or with a wrong one, and work with it", () =>
    Effect.gen(function*() {
      const base = yield* serveDashboard({ host: "0.0.0.0", token: Redacted.make(token) })
      yield* deadLetters("email", ["a", "b"])
      const url = `${base}/api/queues/email/dead-letters/requeue`
      const without = yield* request(url, { method: "POST", body: { ids: ["a"] } })
      assert.strictEqual(without.status, 401)
      assert.strictEqual(without.headers.get("www-authenticate"), "Bearer realm=\"errand-dashboard\"")
      assert.strictEqual(
        (yield* request(url, { method: "POST", body: { ids: ["a"] }, token: "wrong-token-000" })).status,
        401
      )
      assert.strictEqual(
        (yield* request(url, { method: "POST", body: { ids: ["a"] }, token: `${token}x` })).status,
        401
      )
      assert.strictEqual((yield* Broker.Broker.use((broker) => broker.stats("email"))).dead, 2)
      const granted = yield* request(url, { method: "POST", body: { ids: ["a"] }, token })
      assert.deepStrictEqual([granted.status, granted.body.requeued], [200, 1])
      // reading needs no token
      assert.strictEqual((yield* request(`${base}/api/queues`)).status, 200)
      assert.deepInclude((yield* request(`${base}/api/info`)).body, { tokenRequired: true })
    }).pipe(Effect.scoped, Effect.provide(MemoryBroker.layer)))

  it.live("refuses to listen beyond loopback with actions allowed and no token", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(serveDashboard({ host: "0.0.0.0" }))
      assert.strictEqual(error._tag, "InvalidDashboardOptions")
      assert.include(error.message, "token")
      // read-only is fine beyond loopback
      yield* serveDashboard({ host: "0.0.0.0", readOnly: true })
    }).pipe(Effect.scoped, Effect.provide(MemoryBroker.layer)))

  it.live("refuses a port that is not an integer from 0 to 65535", () =>
    Effect.gen(function*() {
      for (const port of [-1, 65_536, 80.5]) {
        const error = yield* Effect.flip(serveDashboard({ port }))
        assert.strictEqual(error._tag, "InvalidDashboardOptions")
        assert.include(error.message, "port")
      }
    }).pipe(Effect.scoped, Effect.provide(MemoryBroker.layer)))

  it.live("read-only mode refuses every action and changes nothing", () =>
    Effect.gen(function*() {
      const base = yield* serveDashboard({ readOnly: true, token: Redacted.make(token) })
      yield* deadLetters("email", ["a", "b"])
      for (const action of ["requeue", "delete"]) {
        for (const body of [{ ids: ["a"] }, { all: true }]) {
          const answer = yield* request(`${base}/api/queues/email/dead-letters/${action}`, {
            method: "POST",
            body,
            token
          })
          assert.strictEqual(answer.status, 403)
          assert.include(answer.body.message, "read-only")
        }
      }
      assert.strictEqual((yield* Broker.Broker.use((broker) => broker.stats("email"))).dead, 2)
      assert.deepInclude((yield* request(`${base}/api/info`)).body, { readOnly: true })
      assert.strictEqual((yield* request(`${base}/api/queues/email/dead-letters`)).body.total, 2)
    }).pipe(Effect.scoped, Effect.provide(MemoryBroker.layer)))

  it.live("refuses malformed queue names, ids and paging", () =>
    Effect.gen(function*() {
      const base = yield* serveDashboard()
      for (
        const path of [
          "/api/queues/%7Bother%7D%3Aq/dead-letters",
          "/api/queues/a%20b/dead-letters",
          "/api/queues/email/dead-letters?limit=100000",
          "/api/queues/email/dead-letters?offset=-1",
          "/api/queues/email/dead-letters/x%22y"
        ]
      ) {
        const answer = yield* request(base + path)
        assert.strictEqual(answer.status, 400, path)
        assert.strictEqual(answer.body.error, "RequestRefused")
      }
    }).pipe(Effect.scoped, Effect.provide(MemoryBroker.layer)))

  it.live("serves the page and its assets with a policy that allows only its own script", () =>
    Effect.gen(function*() {
      const base = yield* serveDashboard()
      const page = yield* request(`${base}/`)
      assert.strictEqual(page.status, 200)
      assert.include(page.body, "<base href=\"/\">")
      const policy = page.headers.get("content-security-policy") ?? ""
      assert.include(policy, "script-src 'self'")
      assert.notInclude(policy, "unsafe-inline")
      const script = yield* request(`${base}/assets/app.js`)
      assert.strictEqual(script.status, 200)
      assert.include(script.headers.get("content-type") ?? "", "javascript")
      assert.notInclude(script.body, "innerHTML")
      assert.strictEqual((yield* request(`${base}/assets/style.css`)).status, 200)
    }).pipe(Effect.scoped, Effect.provide(MemoryBroker.layer)))

  it.live("mounts under a prefix in the user's own server, beside the user's routes", () =>
    Effect.gen(function*() {
      const app = HttpRouter.serve(
        Layer.mergeAll(
          Dashboard.layer({ prefix: "/admin/errand" }),
          HttpRouter.add("GET", "/hello", Effect.succeed(HttpServerResponse.text("hello")))
        ),
        { disableLogger: true }
      ).pipe(Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })))
      const context = yield* Layer.build(app)
      const address = Context.get(context, HttpServer.HttpServer).address
      const origin = address._tag === "InetAddressV4" ? `http://127.0.0.1:${address.port}` : ""
      yield* deadLetters("email", ["a"])
      const page = yield* request(`${origin}/admin/errand`)
      assert.strictEqual(page.status, 200)
      assert.strictEqual((yield* request(`${origin}/admin/errand/`)).status, 200)
      assert.include(page.body, "<base href=\"/admin/errand/\">")
      assert.strictEqual((yield* request(`${origin}/admin/errand/assets/app.js`)).status, 200)
      assert.strictEqual((yield* request(`${origin}/admin/errand/api/queues/email/dead-letters`)).body.total, 1)
      assert.strictEqual((yield* request(`${origin}/hello`)).body, "hello")
      assert.strictEqual((yield* request(`${origin}/api/queues`)).status, 404)
      const bad = yield* Effect.flip(
        Layer.build(Dashboard.layer({ prefix: "no-slash" }).pipe(Layer.provide(HttpRouter.layer)))
      )
      assert.strictEqual(bad._tag, "InvalidDashboardOptions")
    }).pipe(Effect.scoped, Effect.provide(MemoryBroker.layer)))
})
