/**
 * The example app on real parts: each actor's effect on the data, on the embedded database and on a private
 * PostgreSQL database; mails sent over SMTP (nodemailer) and read back from the capture server; files in a
 * temporary storage folder. The broker is the memory broker and time is the `TestClock`.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Schedules, Worker } from "@errand/core"
import { MemoryBroker } from "@errand/memory"
import { Clock, Effect, Queue } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import {
  addLoyaltyPoints,
  backupDatabase,
  cleanupExpiredSessions,
  cleanupOldData,
  criticalTask,
  reserveInventory,
  updateUserStatus
} from "../src/actors.ts"
import { Database } from "../src/db/Database.ts"
import { AddLoyaltyPointsLive, handlers, ReserveInventoryLive, UpdateUserStatusLive } from "../src/handlers.ts"
import * as Producer from "../src/producer.ts"
import { reportRecipient, schedules } from "../src/schedules.ts"
import { AppConfig } from "../src/services/AppConfig.ts"
import { Auth } from "../src/services/Auth.ts"
import { Orders } from "../src/services/Orders.ts"
import { SmtpCapture } from "../src/services/SmtpCapture.ts"
import { Storage } from "../src/services/Storage.ts"
import { Users } from "../src/services/Users.ts"
import { backends, drain, onTestClock, resetDatabase, runThenCrash, services, startWorker } from "./utils/app.ts"

/** Real I/O on a loaded 2-core machine: a bound for a hang, not for speed. */
const timeout = 60_000

const day = 24 * 60 * 60 * 1000

/** A mail to `to`, waited for (real time) on the capture server. */
const mailTo = (to: string, subject: string) =>
  Effect.flatMap(
    SmtpCapture,
    (capture) =>
      capture.awaitMail(`"${subject}" to ${to}`, (mail) => mail.to.includes(to) && mail.subject.includes(subject))
  )

/** A user signed up directly in the database (no welcome mail). */
const user = (email: string, name = "Test") => Effect.flatMap(Users, (users) => users.create({ email, name }))

/** A product with `stock`. */
const product = (sku: string, stock: number, priceCents = 1000) =>
  Effect.flatMap(Orders, (orders) => orders.addProduct({ sku, name: sku, priceCents, stock }))

for (const backend of backends) {
  layer(services(backend.database()), { timeout, excludeTestServices: true })(backend.name, (it) => {
    describe("mail", () => {
      it.effect("sign-up sends send_welcome_email: the welcome mail arrives over SMTP", () =>
        Effect.gen(function*() {
          yield* resetDatabase
          yield* startWorker()
          const { user } = yield* Producer.signUp({ email: "ada@example.com", name: "Ada" })
          const mail = yield* mailTo("ada@example.com", "Welcome to Errand Shop, Ada!")
          assert.include(mail.text, "Your account (ada@example.com) is ready: http://localhost:3000/account")
          assert.strictEqual(mail.from, "shop@example.com")
          assert.strictEqual((yield* (yield* Users).get(user.id)).email, "ada@example.com")
        }).pipe(onTestClock()), timeout)

      it.effect("a password reset mails a link holding a token that works once", () =>
        Effect.gen(function*() {
          yield* resetDatabase
          yield* startWorker()
          const grace = yield* user("grace@example.com", "Grace")
          const sent = yield* Producer.requestPasswordReset("grace@example.com")
          assert.strictEqual(sent._tag, "Some")
          assert.strictEqual((yield* Producer.requestPasswordReset("nobody@example.com"))._tag, "None")
          const mail = yield* mailTo("grace@example.com", "Reset your password")
          const token = /reset-password\?token=([\w-]+)/.exec(mail.text)?.[1]
          assert.isDefined(token)
          const auth = yield* Auth
          assert.strictEqual(yield* auth.useResetToken(token!), grace.id)
          assert.strictEqual((yield* Effect.flip(auth.useResetToken(token!)))._tag, "InvalidToken")
        }).pipe(onTestClock()), timeout)
    })

    describe("the order pipeline", () => {
      it.effect("pays, takes the stock and mails the confirmation", () =>
        Effect.gen(function*() {
          yield* resetDatabase
          yield* startWorker()
          const ada = yield* user("ada.orders@example.com", "Ada")
          yield* product("MUG", 5, 1200)
          yield* product("TEE", 2, 2500)
          const { order } = yield* Producer.placeOrder(ada.id, [{ sku: "MUG", quantity: 2 }, {
            sku: "TEE",
            quantity: 1
          }])
          assert.deepStrictEqual(yield* drain, [])
          const orders = yield* Orders
          const after = yield* orders.get(order.id)
          assert.strictEqual(after.status, "confirmed")
          assert.strictEqual(after.totalCents, 4900)
          assert.match(after.paymentId ?? "", /^pay_/)
          assert.strictEqual((yield* orders.getProduct("MUG")).stock, 3)
          assert.strictEqual((yield* orders.getProduct("TEE")).stock, 1)
          const mail = yield* mailTo("ada.orders@example.com", `Order #${order.id} confirmed`)
          assert.include(mail.text, "2 x MUG  24.00 EUR")
          assert.include(mail.text, "Total: 49.00 EUR")
        }).pipe(onTestClock()), timeout)

      it.effect(
        "a declined card fails the order and stops the pipeline (no stock taken, no mail)",
        () =>
          Effect.gen(function*() {
            yield* resetDatabase
            yield* startWorker()
            const alan = yield* user("alan@example.com")
            yield* product("LAPTOP", 3, 149_900)
            const { order } = yield* Producer.placeOrder(alan.id, [{ sku: "LAPTOP", quantity: 1 }])
            const dead = yield* drain
            assert.deepStrictEqual(dead.map((letter) => letter.reason.tag), ["PaymentDeclined"])
            const orders = yield* Orders
            assert.strictEqual((yield* orders.get(order.id)).status, "failed")
            assert.strictEqual((yield* orders.getProduct("LAPTOP")).stock, 3)
            const mails = yield* (yield* SmtpCapture).received
            assert.isFalse(mails.some((mail) => mail.to.includes("alan@example.com")))
          }).pipe(onTestClock()),
        timeout
      )

      it.effect(
        "stock is decremented exactly once when reserve_inventory is delivered twice",
        () =>
          Effect.gen(function*() {
            yield* resetDatabase
            const ada = yield* user("ada.twice@example.com")
            yield* product("MUG", 5)
            const orders = yield* Orders
            const order = yield* orders.place(ada.id, [{ sku: "MUG", quantity: 2 }])
            const paymentId = yield* orders.pay(order.id)
            const message = yield* reserveInventory.send({ orderId: order.id, paymentId })
            yield* runThenCrash(ReserveInventoryLive, message) // runs, commits, dies before the ack
            assert.strictEqual((yield* orders.getProduct("MUG")).stock, 3)
            yield* startWorker()
            yield* TestClock.adjust("11 seconds") // the lease lapses: the message is delivered again
            assert.deepStrictEqual(yield* drain, [])
            assert.strictEqual((yield* orders.getProduct("MUG")).stock, 3) // not 1
            assert.strictEqual((yield* orders.get(order.id)).status, "reserved")
          }).pipe(onTestClock()),
        timeout
      )

      it.effect("two workers reserving the same product never oversell it", () =>
        Effect.gen(function*() {
          yield* resetDatabase
          yield* product("POSTER", 5)
          const orders = yield* Orders
          const buyers = yield* Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8], (i) => user(`buyer${i}@example.com`))
          const paid = yield* Effect.forEach(buyers, (buyer) =>
            Effect.gen(function*() {
              const order = yield* orders.place(buyer.id, [{ sku: "POSTER", quantity: 1 }])
              return { orderId: order.id, paymentId: yield* orders.pay(order.id) }
            }))
          yield* reserveInventory.sendBatch(paid)
          yield* startWorker({ concurrency: 4 })
          yield* startWorker({ concurrency: 4 })
          const dead = yield* drain
          assert.strictEqual((yield* orders.getProduct("POSTER")).stock, 0)
          const statuses = yield* Effect.forEach(
            paid,
            ({ orderId }) => Effect.map(orders.get(orderId), (o) => o.status)
          )
          assert.strictEqual(statuses.filter((status) => status === "reserved").length, 5)
          assert.strictEqual(statuses.filter((status) => status === "failed").length, 3)
          assert.deepStrictEqual(dead.map((letter) => letter.reason.tag), ["OutOfStock", "OutOfStock", "OutOfStock"])
        }).pipe(onTestClock()), timeout)
    })

    describe("export_user_data", () => {
      it.effect(
        "writes the user's orders as CSV to storage, stores the result and mails the link",
        () =>
          Effect.gen(function*() {
            yield* resetDatabase
            yield* startWorker()
            const ada = yield* user("ada.export@example.com", "Ada")
            yield* product("MUG", 5, 1200)
            yield* product("TEE, \"large\"", 5, 2500) // a SKU that needs quoting
            yield* Producer.placeOrder(ada.id, [{ sku: "MUG", quantity: 2 }])
            yield* drain
            yield* Producer.placeOrder(ada.id, [{ sku: "TEE, \"large\"", quantity: 1 }])
            yield* drain
            const message = yield* Producer.requestExport(ada.id)
            assert.deepStrictEqual(yield* drain, [])
            const status = yield* Producer.exportStatus(message.id)
            assert(status.status === "done")
            assert.strictEqual(status.result.rows, 2)
            const csv = new TextDecoder().decode(yield* (yield* Storage).read(status.result.file))
            assert.strictEqual(
              csv,
              "order_id,created_at,status,total_cents,items\r\n" +
                "1,2026-11-28T16:00:00.000Z,confirmed,2400,MUG x2\r\n" +
                "2,2026-11-28T16:00:00.000Z,confirmed,2500,\"TEE, \"\"large\"\" x1\"\r\n"
            )
            const mail = yield* mailTo("ada.export@example.com", "Your data export is ready")
            assert.include(mail.text, status.result.url)
            assert.match(status.result.url, /^file:\/\/.*\/exports\/user-1-.*\.csv$/)
          }).pipe(onTestClock(Date.parse("2026-11-28T16:00:00Z"))),
        timeout
      )

      it.effect(
        "the status of an export is pending until it ran, failed for an unknown user",
        () =>
          Effect.gen(function*() {
            yield* resetDatabase
            const message = yield* Producer.requestExport(999)
            assert.deepStrictEqual(yield* Producer.exportStatus(message.id), { status: "pending" })
            yield* startWorker()
            yield* drain
            assert.deepStrictEqual(yield* Producer.exportStatus(message.id), {
              status: "failed",
              error: "UserNotFound",
              reason: "no user 999"
            })
          }).pipe(onTestClock()),
        timeout
      )
    })

    describe("cleanups", () => {
      it.effect(
        "cleanup_old_data removes only codes and failed orders older than its days",
        () =>
          Effect.gen(function*() {
            yield* resetDatabase
            const now = yield* Clock.currentTimeMillis
            yield* startWorker()
            const sql = yield* SqlClient.SqlClient
            const ada = yield* user("ada.cleanup@example.com")
            const at = (days: number) => new Date(now - days * day)
            for (const [code, age] of [["c40", 40], ["c31", 31], ["c29", 29], ["c1", 1]] as const) {
              yield* sql`INSERT INTO otp_codes (user_id, purpose, code, created_at, expires_at)
              VALUES (${ada.id}, 'password_reset', ${code}, ${at(age)}, ${at(age - 1)})`
            }
            for (const [status, age] of [["failed", 45], ["failed", 10], ["confirmed", 90]] as const) {
              yield* sql`INSERT INTO orders (user_id, status, total_cents, created_at, updated_at)
              VALUES (${ada.id}, ${status}, 0, ${at(age)}, ${at(age)})`
            }
            yield* cleanupOldData.send({ days: 30 })
            assert.deepStrictEqual(yield* drain, [])
            const codes = yield* sql<{ readonly code: string }>`SELECT code FROM otp_codes ORDER BY code`
            assert.deepStrictEqual(codes.map((row) => row.code), ["c1", "c29"])
            const orders = yield* sql<{ readonly status: string; readonly createdAt: Date }>`
            SELECT status, created_at FROM orders ORDER BY created_at`
            assert.deepStrictEqual(orders.map((row) => row.status), ["confirmed", "failed"]) // 90 days confirmed, 10 days failed
          }).pipe(onTestClock(Date.parse("2026-11-29T02:00:00Z"))),
        timeout
      )

      it.effect("cleanup_expired_sessions removes only sessions that expired", () =>
        Effect.gen(function*() {
          yield* resetDatabase
          yield* startWorker()
          const ada = yield* user("ada.sessions@example.com")
          const auth = yield* Auth
          const short = yield* auth.createSession(ada.id, "30 minutes")
          const long = yield* auth.createSession(ada.id, "30 days")
          yield* TestClock.adjust("1 hour")
          yield* cleanupExpiredSessions.send({})
          assert.deepStrictEqual(yield* drain, [])
          const sql = yield* SqlClient.SqlClient
          const left = yield* sql<{ readonly id: string }>`SELECT id FROM sessions`
          assert.deepStrictEqual(left.map((row) => row.id), [long])
          assert.notStrictEqual(short, long)
        }).pipe(onTestClock(Date.parse("2026-11-29T10:00:00Z"))), timeout)
    })

    describe("schedules", () => {
      it.effect("the cron jobs fire at their times (UTC) under the TestClock", () =>
        Effect.gen(function*() {
          yield* resetDatabase
          const slots: Array<string> = []
          yield* Worker.make({
            handlers,
            concurrency: 4,
            onEvent: (event) =>
              Effect.sync(() => {
                if (event._tag !== "Started") return
                const slot = event.message.options["slot"]
                if (typeof slot === "number") slots.push(`${event.message.actor} ${new Date(slot).toISOString()}`)
              })
          })
          yield* Schedules.make(schedules.map((entry) => ({ ...entry, catchUp: false })))
          const end = Date.parse("2026-11-30T09:30:00Z") // Monday 09:30
          while ((yield* Clock.currentTimeMillis) < end) {
            yield* TestClock.adjust("30 minutes")
            assert.deepStrictEqual(yield* drain, [])
          }
          const of = (actor: string) =>
            slots.filter((line) => line.startsWith(`${actor} `)).map((line) => line.slice(actor.length + 1))
          assert.deepStrictEqual(of("backup_database"), ["2026-11-29T00:00:00.000Z"])
          assert.deepStrictEqual(of("cleanup_old_data"), ["2026-11-29T02:00:00.000Z", "2026-11-30T02:00:00.000Z"])
          assert.deepStrictEqual(of("send_daily_report"), ["2026-11-30T09:00:00.000Z"]) // not on Sunday
          const hourly = of("cleanup_expired_sessions")
          assert.strictEqual(hourly.length, 35) // Saturday 23:00 to Monday 09:00
          assert.strictEqual(hourly[0], "2026-11-28T23:00:00.000Z")
          assert.isTrue(hourly.every((slot) => slot.endsWith(":00:00.000Z")))
          const report = yield* mailTo(reportRecipient, "Daily report for 2026-11-29")
          assert.include(report.text, "orders:     0")
          assert.strictEqual((yield* (yield* Storage).list("backups")).length, 1)
        }).pipe(onTestClock(Date.parse("2026-11-28T22:30:00Z"))), timeout)
    })

    describe("critical_task", () => {
      it.effect("reconciles a day whose payments match its orders", () =>
        Effect.gen(function*() {
          yield* resetDatabase
          yield* startWorker()
          const ada = yield* user("ada.ledger@example.com")
          yield* product("MUG", 5, 1200)
          yield* Producer.placeOrder(ada.id, [{ sku: "MUG", quantity: 1 }])
          yield* drain
          yield* criticalTask.send({ day: "2026-11-28" })
          assert.deepStrictEqual(yield* drain, []) // succeeded at once: no retry, no dead letter
          const { adminEmail } = yield* AppConfig
          const alerts = (yield* (yield* SmtpCapture).received).filter((mail) => mail.to.includes(adminEmail))
          assert.deepStrictEqual(alerts, [])
        }).pipe(onTestClock(Date.parse("2026-11-28T16:00:00Z"))), timeout)

      it.effect("alerts the admin once when it dead-letters", () =>
        Effect.gen(function*() {
          yield* resetDatabase
          const events = yield* Queue.unbounded<Worker.Event>()
          yield* startWorker({ onEvent: (event) => Queue.offer(events, event) })
          const ada = yield* user("ada.alert@example.com")
          yield* product("MUG", 5, 1200)
          const { order } = yield* Producer.placeOrder(ada.id, [{ sku: "MUG", quantity: 1 }])
          yield* drain
          const sql = yield* SqlClient.SqlClient
          yield* sql`UPDATE orders SET status = 'failed' WHERE id = ${order.id}` // its payment is now an orphan
          const message = yield* criticalTask.send({ day: "2026-11-28" })
          // each failed attempt waits for its backoff (5 s, 10 s, 20 s, jittered): the clock is moved past it
          while (true) {
            const event = yield* Queue.take(events)
            if (event._tag === "Retrying") yield* TestClock.adjust(event.delayMillis)
            if (event._tag === "DeadLettered" && event.messageId === message.id) break
          }
          assert.deepStrictEqual(yield* drain, []) // the alert is sent
          const dead = yield* MemoryBroker.deadLetters("maintenance")
          assert.strictEqual(dead.length, 1)
          assert.strictEqual(dead[0]!.id, message.id)
          assert.strictEqual(dead[0]!.reason.tag, "LedgerMismatch")
          assert.strictEqual(dead[0]!.attempts, 4) // 1 run + 3 retries
          const { adminEmail } = yield* AppConfig
          const alert = yield* mailTo(adminEmail, "[ALERT] A critical task failed: LedgerMismatch")
          assert.include(alert.text, message.id)
          assert.include(alert.text, "of critical_task (queue maintenance)")
          const alerts = (yield* (yield* SmtpCapture).received).filter((mail) => mail.to.includes(adminEmail))
          assert.strictEqual(alerts.length, 1)
        }).pipe(onTestClock(Date.parse("2026-11-28T16:00:00Z"))), timeout)
    })

    describe("idempotency (the seed's best practice)", () => {
      it.effect("update_user_status is safe under redelivery; add_loyalty_points is not", () =>
        Effect.gen(function*() {
          yield* resetDatabase
          const ada = yield* user("ada.idem@example.com")
          const status = yield* updateUserStatus.send({ userId: ada.id, status: "suspended" })
          const points = yield* addLoyaltyPoints.send({ userId: ada.id, points: 10 })
          yield* runThenCrash(UpdateUserStatusLive, status) // each runs, then its worker dies before the ack
          yield* runThenCrash(AddLoyaltyPointsLive, points)
          yield* startWorker()
          yield* TestClock.adjust("11 seconds") // both leases lapse: both messages are delivered again
          assert.deepStrictEqual(yield* drain, [])
          const after = yield* (yield* Users).get(ada.id)
          assert.strictEqual(after.status, "suspended") // the same as after one run
          assert.strictEqual(after.loyaltyPoints, 20) // 10 points were sent, 20 were added
        }).pipe(onTestClock()), timeout)
    })

    describe("backup_database", () => {
      it.effect("dumps the database into the storage folder", () =>
        Effect.gen(function*() {
          yield* resetDatabase
          yield* startWorker()
          yield* user("ada.backup@example.com")
          const storage = yield* Storage
          const before = yield* storage.list("backups")
          yield* backupDatabase.send({})
          assert.deepStrictEqual(yield* drain, [])
          const files = (yield* storage.list("backups")).filter((file) => !before.includes(file))
          assert.strictEqual(files.length, 1)
          const bytes = yield* storage.read(files[0]!)
          const database = yield* Database
          if (database.backend._tag === "Postgres") {
            assert.match(files[0]!, /\.pgdump$/)
            assert.strictEqual(new TextDecoder().decode(bytes.slice(0, 5)), "PGDMP") // pg_dump's custom format
          } else {
            assert.match(files[0]!, /\.pglite\.tar\.gz$/)
            assert.deepStrictEqual([...bytes.slice(0, 2)], [0x1f, 0x8b]) // gzip
          }
        }).pipe(onTestClock()), timeout)
    })
  })
}
