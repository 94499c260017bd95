/**
 * The app end to end, as it is deployed: the web service (`src/web.ts`) and `errand worker src/worker.ts` as two
 * child processes, on a private Redis, a private PostgreSQL database and an SMTP capture. Only HTTP goes in; mails,
 * rows and files come out.
 *
 * Needs `redis-server` on PATH (the redis project's globalSetup starts a private one; or `REDIS_URL`) and a
 * PostgreSQL server that may create databases at `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/
 * postgres`): the test creates a database with a random name and drops it at the end, and fails saying so when the
 * server cannot be reached.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted, Schedule } from "effect"
import { FetchHttpClient } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import { SqlClient } from "effect/sql"
import { randomUUID } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { inject } from "vitest"
import * as Scratch from "../src/db/scratch.ts"
import { Api } from "../src/http/Api.ts"
import * as SmtpCapture from "../src/services/SmtpCapture.ts"
import { startNode } from "./utils/processes.ts"

/** The private Redis of this test run (the redis project's globalSetup), or `REDIS_URL`. */
const redisUrl: string = inject("redisUrl")

/** `packages/examples`: the processes run where a user runs them. */
const examplesDir = fileURLToPath(new URL("..", import.meta.url))

/** The `errand` command, as this package depends on it. */
const errandBin = Path.join(examplesDir, "node_modules", "@errand", "cli", "src", "bin.ts")

/** A folder for the worker's files (exports), removed with the scope. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "errand-e2e-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/**
 * Generous bounds for a loaded 2-core machine: each process compiles and starts in seconds (PostgreSQL migrations,
 * Redis, the worker's actors), and each step crosses two processes, Redis, PostgreSQL and SMTP. They bound a hang;
 * every wait ends at the event it waits for.
 */
const startup = "90 seconds"
const step = "60 seconds"

describe("the app end to end: the web service and errand worker as processes, on Redis and PostgreSQL", () => {
  it.live(
    "sign up → the welcome mail arrives; an order → its pipeline completes and the confirmation arrives; an export → its link",
    () =>
      Effect.gen(function*() {
        const databaseUrl = yield* Scratch.make(Scratch.testServerUrl(), "errand_e2e")
        const capture = yield* SmtpCapture.make()
        const env = {
          REDIS_URL: redisUrl,
          ERRAND_REDIS_PREFIX: `e2e-${randomUUID().slice(0, 8)}`, // read by both processes
          DATABASE_URL: Redacted.value(databaseUrl),
          SMTP_URL: capture.url,
          STORAGE_DIR: yield* tempDir,
          APP_URL: "http://shop.test"
        }

        const web = yield* startNode("web", "src/web.ts", [], {
          cwd: examplesDir,
          env: { ...env, HOST: "127.0.0.1", PORT: "0" }
        })
        const worker = yield* startNode("errand worker", errandBin, ["worker", "src/worker.ts", "--concurrency", "4"], {
          cwd: examplesDir,
          env
        })
        const [, baseUrl] = yield* web.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+)/, startup)
        yield* worker.waitFor(/Worker started on/, startup)
        const api = yield* HttpApiClient.make(Api, { baseUrl: baseUrl! })
        const mail = (expected: string, to: string, subject: string) =>
          capture.awaitMail(expected, (mail) => mail.to.includes(to) && mail.subject === subject, step)

        // sign up → the worker sends the welcome mail over SMTP
        const email = `ada+${randomUUID().slice(0, 8)}@example.com`
        const { user } = yield* api.users.signUp({ payload: { email, name: "Ada" } })
        const welcome = yield* mail("the welcome mail", email, "Welcome to Errand Shop, Ada!")
        assert.deepStrictEqual(welcome.to, [email])

        // an order → process_order (payment) → reserve_inventory → send_order_confirmation
        const { messageId, order } = yield* api.orders.placeOrder({
          payload: { userId: user.id, items: [{ sku: "MUG", quantity: 2 }, { sku: "TEE", quantity: 1 }] }
        })
        assert.strictEqual(order.status, "pending")
        assert.isString(messageId)
        const confirmation = yield* mail("the order confirmation", email, `Order #${order.id} confirmed`)
        assert.include(confirmation.text, "2 x MUG")
        assert.include(confirmation.text, "49.00 EUR") // 2 × 12.00 + 25.00
        const stored = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          // the confirmation is mailed, then the order marked confirmed: wait for that write
          const [row] = yield* sql<{ readonly status: string; readonly payment_id: string | null }>`
            SELECT status, payment_id FROM orders WHERE id = ${order.id}`.pipe(
            Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: ([row]) => row?.status === "confirmed" }),
            Effect.timeout(step)
          )
          const [stock] = yield* sql<{ readonly stock: number }>`SELECT stock FROM products WHERE sku = 'MUG'`
          return { ...row!, mugStock: stock!.stock }
        }).pipe(
          Effect.provide(PgClient.layer({ url: databaseUrl, maxConnections: 1 }))
        )
        assert.strictEqual(stored.status, "confirmed")
        assert.isNotNull(stored.payment_id)
        assert.strictEqual(stored.mugStock, 100 - 2)

        // an export → its message id → the status route, until the worker stored its result
        const requested = yield* api.exports.requestExport({ payload: { userId: user.id } })
        const done = yield* api.exports.exportStatus({ params: { messageId: requested.messageId } }).pipe(
          Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (status) => status.status !== "pending" }),
          Effect.timeout(step)
        )
        assert.strictEqual(done.status, "done", JSON.stringify(done))
        if (done.status !== "done") return
        assert.strictEqual(done.result.rows, 1)
        assert.include(Fs.readFileSync(fileURLToPath(done.result.url), "utf8"), "MUG")
        yield* mail("the export-ready mail", email, "Your data export is ready")

        // SIGTERM: both stop gracefully
        const workerExit = yield* worker.stop("SIGTERM", step)
        assert.deepStrictEqual(workerExit, { code: 0, signal: null }, worker.output())
        assert.match(worker.output(), /Worker stopped: \d+ messages finished/)
        const webExit = yield* web.stop("SIGTERM", step)
        assert.deepStrictEqual(webExit, { code: 0, signal: null }, web.output())
      }).pipe(Effect.scoped, Effect.provide(FetchHttpClient.layer)),
    240_000
  )
})
