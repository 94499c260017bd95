/**
 * `pnpm example`: the whole app in one process — the web side's actions (`producer.ts`), a worker running every
 * handler, the cron schedules — over a weekend that passes in virtual time, printed as a story.
 *
 * With no environment it needs no services: the embedded database, the in-memory broker, and a local SMTP capture
 * that prints the mails it receives. With `DATABASE_URL` it runs on that PostgreSQL server (in a scratch database it
 * drops at the end), with `REDIS_URL` on Redis, with `SMTP_URL` it sends real mail.
 *
 * Time is Effect's `TestClock`, started on Saturday 2026-11-28 16:00 UTC: the worker, the broker and the schedules
 * all read it, so "the night passes" is the clock moved an hour at a time, each cron slot firing at its time, while
 * the database, the SMTP server and the files are real.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Broker, Schedules, Worker } from "@errand/core"
import { Clock, Config, Console, Effect, Layer, Option, Queue, References } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { criticalTask, exportUserData } from "./actors.ts"
import { brokerFromEnv } from "./broker.ts"
import * as Database from "./db/Database.ts"
import * as Scratch from "./db/scratch.ts"
import { handlers, money } from "./handlers.ts"
import * as Producer from "./producer.ts"
import { schedules } from "./schedules.ts"
import { AppLive } from "./services.ts"
import * as AppConfig from "./services/AppConfig.ts"
import * as Mailer from "./services/Mailer.ts"
import { Orders } from "./services/Orders.ts"
import * as SmtpCapture from "./services/SmtpCapture.ts"
import * as Storage from "./services/Storage.ts"

/** The story starts on a Saturday afternoon. */
export const storyStart = Date.parse("2026-11-28T16:00:00Z")

const hour = 60 * 60 * 1000
const weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
const queues = ["email", "orders", "exports", "maintenance"]

/** `Sat 16:00:05` */
const formatTime = (millis: number) => {
  const date = new Date(millis)
  return `${weekdays[date.getUTCDay()]} ${date.toISOString().slice(11, 19)}`
}

const summary = (payload: unknown) => {
  const text = JSON.stringify(payload)
  return text.length > 70 ? `${text.slice(0, 67)}...` : text
}

/** The story. Needs the app's services, a broker and an SMTP capture; runs on the `TestClock` it is given. */
export const story = Effect.gen(function*() {
  const clock = yield* Clock.Clock
  const say = (line: string) => Console.log(`${formatTime(clock.currentTimeMillisUnsafe())}  ${line}`)
  const database = yield* Database.Database
  const storage = yield* Storage.Storage
  const sql = yield* SqlClient.SqlClient
  const orders = yield* Orders
  const brokerService = yield* Broker.Broker
  const mailServer = Option.getOrUndefined(yield* Effect.serviceOption(SmtpCapture.SmtpCapture))
  const run = database.backend._tag === "Postgres" || brokerFromEnv().name === "redis"
    ? Math.random().toString(36).slice(2, 6)
    : undefined
  const email = (name: string) => run === undefined ? `${name}@example.com` : `${name}+${run}@example.com`

  yield* Console.log(`Errand example: the seed's shop, on ${database.description}, the ${brokerFromEnv().name} broker`)
  yield* Console.log(
    `mail: ${mailServer === undefined ? "SMTP_URL" : `a local SMTP capture at ${mailServer.url}`}; files: ${
      storage.urlOf("")
    }\n`
  )

  // The worker, telling the story of its messages. Events also wake `settle`.
  const events = yield* Queue.unbounded<Worker.Event>()
  let sessionCleanups = 0
  const retryDelays: Array<number> = []
  yield* Worker.make({
    handlers,
    concurrency: 4,
    // the clock jumps up to an hour at a time: a lease must outlive a jump (an idle take blocked on Redis when the
    // clock jumps counts its lease from before the jump)
    lease: "2 hours",
    onEvent: (event) =>
      Effect.andThen(
        Queue.offer(events, event),
        Effect.suspend(() => {
          switch (event._tag) {
            case "Succeeded":
              if (event.message.actor === "cleanup_expired_sessions") {
                sessionCleanups++
                return sessionCleanups === 1
                  ? say(`✓ cleanup_expired_sessions (hourly; its next runs are counted, not printed)`)
                  : Effect.void
              }
              return say(`✓ ${event.message.actor} ${summary(event.message.payload)}`)
            case "Retrying":
              retryDelays.push(event.delayMillis)
              return say(
                `↻ ${event.message.actor} failed (${event.error.tag}); retry ${event.attempts} in ${
                  (event.delayMillis / 1000).toFixed(1)
                } s`
              )
            case "DeadLettered":
              return say(
                `✗ ${
                  event.message?.actor ?? event.messageId
                } dead-lettered: ${event.reason.tag}: ${event.reason.message}`
              )
            default:
              return Effect.void
          }
        })
      )
  })

  /**
   * Waits until no message is ready, running or waiting for a retry: woken by the worker's events, checking the
   * broker's counts (a message enqueued by a handler is counted before its predecessor finishes). A retry waiting
   * for its backoff is let through by moving the clock past it.
   */
  const settle = Effect.gen(function*() {
    while (true) {
      yield* Queue.clear(events)
      const stats = yield* Effect.forEach(queues, (queue) => brokerService.stats(queue))
      const busy = stats.reduce((sum, s) => sum + s.ready + s.inFlight, 0)
      const delayed = stats.reduce((sum, s) => sum + s.delayed, 0)
      if (busy === 0 && delayed === 0) return
      if (busy === 0 && retryDelays.length > 0) {
        // only retries are left, waiting for their backoff: let it pass (the clock never moves while work runs)
        yield* TestClock.adjust(Math.max(...retryDelays.splice(0)))
        continue
      }
      // the next event, or a fresh look at the counts (a settlement emits no event)
      yield* Effect.raceFirst(Queue.take(events), TestClock.withLive(Effect.sleep("20 millis")))
    }
  })

  /**
   * Moves the clock to `target`, to the next full hour at a time (every cron slot here is on the hour, so each step
   * ends at a slot and the clock stands still while its jobs run: a running job's lease never lapses), letting each
   * hour's cron jobs finish.
   */
  const passTime = (target: number) =>
    Effect.gen(function*() {
      while (clock.currentTimeMillisUnsafe() < target) {
        const now = clock.currentTimeMillisUnsafe()
        yield* TestClock.adjust(Math.min((Math.floor(now / hour) + 1) * hour, target) - now)
        yield* settle
      }
    })

  // ---------------------------------------------------------------------------------------------------------------
  yield* say("The shop opens with a catalog")
  const sku = (base: string) => run === undefined ? base : `${base}-${run}`
  for (
    const product of [
      { sku: sku("MUG"), name: "Errand mug", priceCents: 1200, stock: 5 },
      { sku: sku("TEE"), name: "Errand T-shirt", priceCents: 2500, stock: 2 },
      { sku: sku("POSTER"), name: "Dramatiq poster", priceCents: 800, stock: 1 },
      { sku: sku("LAPTOP"), name: "A laptop", priceCents: 149_900, stock: 3 }
    ]
  ) {
    const added = yield* orders.addProduct(product)
    yield* say(`  ${added.sku}: ${added.name}, ${money(added.priceCents)}, ${added.stock} in stock`)
  }

  yield* say("Sign-ups: each sends send_welcome_email")
  const ada = yield* Producer.signUp({ email: email("ada"), name: "Ada" })
  const grace = yield* Producer.signUp({ email: email("grace"), name: "Grace" })
  const alan = yield* Producer.signUp({ email: email("alan"), name: "Alan" })
  yield* settle

  yield* say(`Grace forgot her password: a reset token, then send_password_reset_email`)
  yield* Producer.requestPasswordReset(email("grace"))
  yield* settle

  yield* say("Orders: each runs the pipeline process_order (payment) → reserve_inventory → send_order_confirmation")
  const placed = []
  placed.push(
    yield* Producer.placeOrder(ada.user.id, [{ sku: sku("MUG"), quantity: 2 }, { sku: sku("TEE"), quantity: 1 }])
  )
  placed.push(yield* Producer.placeOrder(grace.user.id, [{ sku: sku("POSTER"), quantity: 1 }]))
  yield* settle
  yield* say("Alan orders the poster Grace just bought, then a laptop above his card's limit")
  placed.push(yield* Producer.placeOrder(alan.user.id, [{ sku: sku("POSTER"), quantity: 1 }]))
  placed.push(yield* Producer.placeOrder(alan.user.id, [{ sku: sku("LAPTOP"), quantity: 1 }]))
  yield* settle
  for (const { order } of placed) {
    const after = yield* orders.get(order.id)
    yield* say(`  order #${after.id}: ${after.status}, ${money(after.totalCents)}`)
  }
  for (const name of ["MUG", "TEE", "POSTER", "LAPTOP"]) {
    const product = yield* orders.getProduct(sku(name))
    yield* say(`  stock of ${product.sku}: ${product.stock}`)
  }

  yield* say("Ada asks for her data: export_user_data (time limit 1 hour) writes a CSV, then mails the link")
  const exportMessage = yield* Producer.requestExport(ada.user.id)
  yield* settle
  const exported = yield* exportUserData.result(exportMessage, { timeout: "1 minute" })
  const status = yield* Producer.exportStatus(exportMessage.id)
  yield* say(
    `  status of ${exportMessage.id.slice(0, 8)}…: ${status.status}, ${exported.rows} rows in ${exported.file}`
  )
  const csv = new TextDecoder().decode(yield* storage.read(exported.file))
  for (const line of csv.trimEnd().split("\r\n")) yield* Console.log(`                  | ${line}`)

  yield* say("The critical task reconciles today's payments with the orders")
  yield* criticalTask.send({ day: new Date(storyStart).toISOString().slice(0, 10) })
  yield* settle

  yield* say(
    "Some old rows, as if the shop had run for months: a reset code of 40 days ago, a failed order of 45\n" +
      "                days ago, a session that expired yesterday"
  )
  // old rows, as if the app had run for months: a reset code of 40 days ago, a failed order of 45 days ago, and a
  // session that expired yesterday
  const now = new Date(clock.currentTimeMillisUnsafe())
  const daysAgo = (days: number) => new Date(now.getTime() - days * 24 * hour)
  yield* sql`INSERT INTO otp_codes (user_id, purpose, code, created_at, expires_at)
    VALUES (${ada.user.id}, 'password_reset', ${`old-code-${run ?? "0"}`}, ${daysAgo(40)}, ${daysAgo(40)})`
  yield* sql`INSERT INTO orders (user_id, status, total_cents, created_at, updated_at)
    VALUES (${alan.user.id}, 'failed', 0, ${daysAgo(45)}, ${daysAgo(45)})`
  yield* sql`INSERT INTO sessions (id, user_id, created_at, expires_at)
    VALUES (${`old-session-${run ?? "0"}`}, ${grace.user.id}, ${daysAgo(31)}, ${daysAgo(1)})`

  // ---------------------------------------------------------------------------------------------------------------
  yield* say("The schedules start, and the night passes: backup at 00:00 on Sunday, cleanup at 02:00, sessions hourly")
  // a scheduler's claimed slots are kept in the broker: on a shared Redis, this run's schedules get their own names
  yield* Schedules.make(
    schedules.map((entry) => ({
      ...entry,
      name: run === undefined ? entry.name : `${entry.name}.example-${run}`,
      catchUp: false
    }))
  )
  const sunday = storyStart + 8 * hour // Sunday 00:00
  yield* passTime(sunday + 3 * hour)
  const [left] = yield* sql<{ readonly codes: number; readonly failed: number; readonly sessions: number }>`
    SELECT (SELECT count(*)::int FROM otp_codes WHERE created_at < ${daysAgo(30)}) AS codes,
           (SELECT count(*)::int FROM orders WHERE status = 'failed' AND created_at < ${daysAgo(30)}) AS failed,
           (SELECT count(*)::int FROM sessions WHERE expires_at < ${now}) AS sessions`
  yield* say(
    `  old data left: ${left?.codes} codes and ${left?.failed} failed orders older than 30 days, ${left?.sessions} expired sessions`
  )
  const backups = yield* storage.list("backups")
  for (const key of backups) {
    const bytes = (yield* storage.read(key)).byteLength
    yield* say(`  backup: ${key} (${bytes.toLocaleString("en")} bytes)`)
  }

  yield* passTime(sunday + 12 * hour)
  yield* say("Sunday noon: the payment provider reverses the refund of Alan's poster order (the ledger breaks)")
  yield* sql`UPDATE payments SET refunded = false WHERE order_id = ${placed[2]!.order.id}`
  yield* say(
    "The critical task runs again for Saturday: retried with backoff, then dead-lettered — and the admin alerted"
  )
  yield* criticalTask.send({ day: new Date(storyStart).toISOString().slice(0, 10) })
  yield* settle

  yield* passTime(sunday + 15 * hour)
  yield* say("Sunday afternoon: Grace orders a mug")
  yield* Producer.placeOrder(grace.user.id, [{ sku: sku("MUG"), quantity: 1 }])
  yield* settle

  yield* say("Another night; on Monday at 09:00 the daily report is mailed (weekdays only)")
  yield* passTime(sunday + 33 * hour + 30 * 60 * 1000) // Monday 09:30
  yield* say(`cleanup_expired_sessions ran ${sessionCleanups} times`)

  // ---------------------------------------------------------------------------------------------------------------
  yield* Console.log("")
  for (const queue of queues) {
    const stats = yield* brokerService.stats(queue)
    const dead = yield* brokerService.deadLetters(queue)
    yield* Console.log(`queue "${queue}": ${stats.ready} ready, ${stats.delayed} delayed, ${dead.length} dead letters`)
    for (const letter of dead) yield* Console.log(`  dead letter: ${letter.reason.tag} after ${letter.attempts} run(s)`)
    if (run !== undefined) yield* brokerService.purgeDeadLetters(queue)
  }
  if (mailServer !== undefined) {
    yield* Console.log(`\n${(yield* mailServer.received).length} mails received by the SMTP capture`)
  }
})

/** A mail received by the capture, printed in the story. */
const printMail = (mail: SmtpCapture.CapturedMail) =>
  Effect.gen(function*() {
    const time = formatTime(yield* Clock.currentTimeMillis)
    yield* Console.log(`${time}  ✉  to ${mail.to.join(", ")}: "${mail.subject}"`)
    const indent = " ".repeat(time.length + 5)
    if (mail.subject.startsWith("Daily report")) {
      for (const line of mail.text.trim().split("\n").slice(2)) yield* Console.log(`${indent}${line.trim()}`)
    }
    const link = /(https?|file):\/\/\S+/.exec(mail.text)
    if (link !== null) yield* Console.log(`${indent}${link[0]}`)
  })

/** Everything the story needs, from the environment (or nothing at all). */
const environment = Layer.unwrap(Effect.gen(function*() {
  const databaseUrl = yield* Database.urlConfig
  const storageDir = yield* Config.option(Config.String("STORAGE_DIR"))
  const dir = Option.isSome(storageDir)
    ? storageDir.value
    : yield* Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "errand-example-")))
  const database = Option.isSome(databaseUrl)
    ? Layer.unwrap(Effect.map(Scratch.make(databaseUrl.value, "errand_example"), Database.layerPostgres))
    : Database.layerEmbedded()
  const mailer = Mailer.layerConfigOr(SmtpCapture.layerWithMailer({ onMail: printMail }))
  return Layer.mergeAll(
    AppLive.pipe(Layer.provideMerge(Layer.merge(database, Storage.layerDir(dir)))),
    mailer,
    AppConfig.layer(AppConfig.defaults),
    brokerFromEnv().layer
  )
}))

if (import.meta.main) {
  Effect.andThen(TestClock.setTime(storyStart), story.pipe(Effect.provide(environment), Effect.scoped)).pipe(
    Effect.provide(TestClock.layer({ warningDelay: "1 hour" })),
    Effect.provideService(References.MinimumLogLevel, "None"), // the story prints events instead of worker logs
    NodeRuntime.runMain
  )
}
