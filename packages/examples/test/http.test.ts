/**
 * The HTTP API in one process: the real server on a free port, the embedded database, the in-memory broker, a worker
 * running every handler, and an SMTP capture the mailer sends to. Each route's happy path shows what it answers and
 * what the worker then does; bad bodies are 400 problems that name the field.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, describe, it, layer } from "@effect/vitest"
import { Broker, ErrandError, Worker } from "@errand/core"
import { MemoryBroker } from "@errand/memory"
import { ConfigProvider, type Duration, Effect, Layer, Schedule } from "effect"
import { HttpClient, HttpClientRequest, HttpRouter } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Database from "../src/db/Database.ts"
import { handlers } from "../src/handlers.ts"
import { Api } from "../src/http/Api.ts"
import * as Catalog from "../src/http/Catalog.ts"
import * as Server from "../src/http/Server.ts"
import { AppLive } from "../src/services.ts"
import * as AppConfig from "../src/services/AppConfig.ts"
import { Orders } from "../src/services/Orders.ts"
import * as SmtpCapture from "../src/services/SmtpCapture.ts"
import * as Storage from "../src/services/Storage.ts"
import * as Web from "../src/web.ts"

const storageDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "errand-http-test-"))
process.once("exit", () => Fs.rmSync(storageDir, { recursive: true, force: true }))

/** The app's services: embedded database (with the catalog), files in a temporary folder, SMTP to a capture. */
const services = Layer.mergeAll(
  AppLive.pipe(Layer.provideMerge(Layer.merge(Database.layerEmbedded(), Storage.layerDir(storageDir)))),
  SmtpCapture.layerWithMailer(),
  AppConfig.layer(AppConfig.defaults)
)

/** The API on a free port (with a client pointed at it), and a worker, over one memory broker and the services. */
const app = HttpRouter.serve(Server.routes, { disableLogger: true, disableListenLog: true }).pipe(
  Layer.provideMerge(NodeHttpServer.layerTest),
  Layer.merge(Worker.layer({ handlers, concurrency: 4 })),
  Layer.provide(Layer.effectDiscard(Catalog.ensure)),
  Layer.provideMerge(services),
  Layer.provideMerge(MemoryBroker.layer)
)

/** The typed client of the API. */
const client = HttpApiClient.make(Api)

/** A raw JSON request (bad bodies cannot be sent through the typed client): its status and JSON body. */
const postJson = (url: string, body: unknown) =>
  Effect.gen(function*() {
    const response = yield* HttpClient.execute(HttpClientRequest.post(url).pipe(HttpClientRequest.bodyJsonUnsafe(body)))
    return { status: response.status, body: yield* response.json }
  })

/** The `path`s of a 400 problem's errors, dotted (`payload.email`). */
const problemPaths = (body: unknown): Array<string> => {
  const problem = body as {
    readonly status: number
    readonly errors: ReadonlyArray<{ readonly path: ReadonlyArray<string> }>
  }
  assert.strictEqual(problem.status, 400)
  return problem.errors.map((error) => error.path.join("."))
}

/** Retries `check` every 50 ms until it succeeds, for up to `within`: for state a worker changes in the background. */
const eventually = <A, E, R>(check: Effect.Effect<A, E, R>, within: Duration.Input = "30 seconds") =>
  check.pipe(
    Effect.retry({ schedule: Schedule.spaced("50 millis") }),
    Effect.timeout(within)
  )

let counter = 0
/** A fresh email address per test. */
const freshEmail = (name: string) => `${name}.${process.pid}.${counter++}@example.com`

/** The server, worker and database are shared by the tests of this file (PGlite takes seconds to start). */
const timeout = 60_000

layer(app, { timeout: 120_000, excludeTestServices: true })("the HTTP API", (it) => {
  // the real clock (excludeTestServices): a real server, database and SMTP capture
  it.effect("POST /users signs the user up (201) and the worker mails the welcome", () =>
    Effect.gen(function*() {
      const api = yield* client
      const email = freshEmail("ada")
      const signedUp = yield* api.users.signUp({ payload: { email, name: "Ada" } })
      assert.strictEqual(signedUp.user.email, email)
      assert.strictEqual(signedUp.user.name, "Ada")
      assert.isAbove(signedUp.sessionId.length, 20)
      const mail = yield* (yield* SmtpCapture.SmtpCapture).awaitMail("the welcome", (mail) => mail.to.includes(email))
      assert.strictEqual(mail.subject, "Welcome to Errand Shop, Ada!")
    }), timeout)

  it.effect("POST /users with an email already signed up is a 409 EmailTaken", () =>
    Effect.gen(function*() {
      const api = yield* client
      const email = freshEmail("twice")
      yield* api.users.signUp({ payload: { email, name: "Once" } })
      const error = yield* Effect.flip(api.users.signUp({ payload: { email, name: "Twice" } }))
      assert.deepInclude(error, { _tag: "EmailTaken", email })
      const raw = yield* postJson("/users", { email, name: "Thrice" })
      assert.deepStrictEqual(raw, { status: 409, body: { _tag: "EmailTaken", email } })
    }), timeout)

  it.effect(
    "POST /password-resets mails a reset link holding a token; an unknown email gets the same 202",
    () =>
      Effect.gen(function*() {
        const api = yield* client
        const email = freshEmail("grace")
        yield* api.users.signUp({ payload: { email, name: "Grace" } })
        assert.deepStrictEqual(yield* api.users.requestPasswordReset({ payload: { email } }), { accepted: true })
        const mail = yield* (yield* SmtpCapture.SmtpCapture).awaitMail(
          "the reset link",
          (mail) => mail.to.includes(email) && mail.subject === "Reset your password"
        )
        assert.match(mail.text, /http:\/\/localhost:3000\/reset-password\?token=[\w-]{40,}/)
        const unknown = yield* postJson("/password-resets", { email: freshEmail("nobody") })
        assert.deepStrictEqual(unknown, { status: 202, body: { accepted: true } })
      }),
    timeout
  )

  it.effect(
    "POST /orders places the order (201) and starts its pipeline: paid, reserved, confirmed and mailed",
    () =>
      Effect.gen(function*() {
        const api = yield* client
        const email = freshEmail("alan")
        const { user } = yield* api.users.signUp({ payload: { email, name: "Alan" } })
        const placed = yield* api.orders.placeOrder({
          payload: { userId: user.id, items: [{ sku: "MUG", quantity: 2 }, { sku: "POSTER", quantity: 1 }] }
        })
        assert.strictEqual(placed.order.userId, user.id)
        assert.strictEqual(placed.order.status, "pending")
        assert.strictEqual(placed.order.totalCents, 2 * 1200 + 800)
        assert.isString(placed.messageId)
        const mail = yield* (yield* SmtpCapture.SmtpCapture).awaitMail(
          "the order confirmation",
          (mail) => mail.to.includes(email) && mail.subject === `Order #${placed.order.id} confirmed`
        )
        assert.include(mail.text, "2 x MUG")
        const orders = yield* Orders
        const order = yield* eventually(
          Effect.flatMap(orders.get(placed.order.id), (order) =>
            order.status === "confirmed" ? Effect.succeed(order) : Effect.fail(`still ${order.status}`))
        )
        assert.isString(order.paymentId)
      }),
    timeout
  )

  it.effect("POST /orders naming an unknown user or product is a 422 with the error", () =>
    Effect.gen(function*() {
      const api = yield* client
      const { user } = yield* api.users.signUp({ payload: { email: freshEmail("edsger"), name: "Edsger" } })
      const noProduct = yield* Effect.flip(
        api.orders.placeOrder({ payload: { userId: user.id, items: [{ sku: "NO-SUCH-SKU", quantity: 1 }] } })
      )
      assert.deepInclude(noProduct, { _tag: "ProductNotFound", product: "NO-SUCH-SKU" })
      const raw = yield* postJson("/orders", { userId: 999_999, items: [{ sku: "MUG", quantity: 1 }] })
      assert.deepStrictEqual(raw, { status: 422, body: { _tag: "UserNotFound", userId: 999_999 } })
    }), timeout)

  it.effect(
    "POST /exports returns the message id (202); GET /exports/:messageId turns from pending to done with the link",
    () =>
      Effect.gen(function*() {
        const api = yield* client
        const { user } = yield* api.users.signUp({ payload: { email: freshEmail("barbara"), name: "Barbara" } })
        yield* api.orders.placeOrder({ payload: { userId: user.id, items: [{ sku: "TEE", quantity: 1 }] } })
        const { messageId } = yield* api.exports.requestExport({ payload: { userId: user.id } })
        const status = yield* eventually(
          Effect.flatMap(api.exports.exportStatus({ params: { messageId } }), (status) =>
            status.status === "done" ? Effect.succeed(status) : Effect.fail(`still ${status.status}`))
        )
        assert.strictEqual(status.result.userId, user.id)
        assert.strictEqual(status.result.rows, 1)
        assert.match(status.result.url, /^file:\/\/.*\.csv$/)
        const csv = Fs.readFileSync(fileURLToPath(status.result.url), "utf8")
        assert.include(csv, "TEE")
        assert.deepStrictEqual(
          yield* api.exports.exportStatus({ params: { messageId: "no-such-message" } }),
          { status: "pending" }
        )
        const unknown = yield* Effect.flip(api.exports.requestExport({ payload: { userId: 999_999 } }))
        assert.deepInclude(unknown, { _tag: "UserNotFound", userId: 999_999 })
      }),
    timeout
  )

  it.effect("serves its OpenAPI document at /openapi.json", () =>
    Effect.gen(function*() {
      const response = yield* HttpClient.get("/openapi.json")
      const document = (yield* response.json) as {
        readonly info: { readonly title: string }
        readonly paths: Record<string, unknown>
      }
      assert.strictEqual(response.status, 200)
      assert.strictEqual(document.info.title, "Errand Shop")
      assert.sameMembers(Object.keys(document.paths), [
        "/users",
        "/password-resets",
        "/orders",
        "/exports",
        "/exports/{messageId}"
      ])
    }), timeout)

  it.effect("a bad body or message id is a 400 problem naming every invalid field", () =>
    Effect.gen(function*() {
      assert.sameMembers(problemPaths((yield* postJson("/users", { email: "not-an-email", name: "" })).body), [
        "payload.email",
        "payload.name"
      ])
      assert.sameMembers(problemPaths((yield* postJson("/users", { name: "No Email" })).body), ["payload.email"])
      assert.sameMembers(problemPaths((yield* postJson("/password-resets", { email: 42 })).body), ["payload.email"])
      assert.sameMembers(problemPaths((yield* postJson("/orders", { userId: 0, items: [] })).body), [
        "payload.userId",
        "payload.items.0" // a non-empty array: its first element is missing
      ])
      assert.sameMembers(
        problemPaths((yield* postJson("/orders", { userId: 1, items: [{ sku: "MUG", quantity: -1 }] })).body),
        ["payload.items.0.quantity"]
      )
      assert.sameMembers(problemPaths((yield* postJson("/exports", { userId: "one" })).body), ["payload.userId"])
      const badId = yield* HttpClient.get(`/exports/${encodeURIComponent("a\"quote")}`)
      assert.sameMembers(problemPaths(yield* badId.json), ["params.messageId"])
      const problem = (yield* postJson("/users", { email: "x" })).body as {
        readonly errors: ReadonlyArray<{ readonly message: string }>
      }
      assert.include(problem.errors.map((error) => error.message).join("\n"), "an email address")
    }), timeout)
})

/** A memory broker whose `enqueue` fails, as Redis does when it is down. */
const brokerDown = Layer.effect(
  Broker.Broker,
  Effect.map(Broker.Broker, (broker) =>
    Broker.Broker.of({
      ...broker,
      enqueue: () =>
        Effect.fail(
          new ErrandError.BrokerError({
            broker: "memory",
            operation: "enqueue",
            message: "connection refused",
            applied: "no"
          })
        )
    }))
).pipe(Layer.provideMerge(MemoryBroker.layer))

layer(
  HttpRouter.serve(Server.routes, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layerTest),
    Layer.provideMerge(services),
    Layer.provide(brokerDown)
  ),
  { timeout: 120_000, excludeTestServices: true }
)("the HTTP API with the broker down", (it) => {
  it.effect(
    "answers 503 Unavailable naming the broker, and nothing more (the cause goes to the log)",
    () =>
      Effect.gen(function*() {
        const response = yield* postJson("/users", { email: freshEmail("down"), name: "Down" })
        assert.deepStrictEqual(response, { status: 503, body: { _tag: "Unavailable", service: "broker" } })
      }),
    timeout
  )
})

describe("web.ts", () => {
  it.effect("refuses REDIS_URL without DATABASE_URL: a worker in another process could not see an embedded database", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(Web.layer))
      assert.instanceOf(error, Web.InvalidWebConfig)
      assert.strictEqual(error.variable, "DATABASE_URL")
      assert.include(error.message, "set DATABASE_URL to the PostgreSQL database the worker uses")
    }).pipe(
      Effect.scoped,
      Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ REDIS_URL: "redis://127.0.0.1:1", PORT: "0" })))
    ))
})
