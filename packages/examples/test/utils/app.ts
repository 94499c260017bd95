/**
 * The app under test: its real services (SQL on a private database, nodemailer over SMTP to a capture server, files
 * in a temporary folder) and helpers that read as steps of a specification.
 */
import { assert } from "@effect/vitest"
import { type Actor, Broker, type Message, Worker } from "@errand/core"
import { MemoryBroker } from "@errand/memory"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Database from "../../src/db/Database.ts"
import * as Scratch from "../../src/db/scratch.ts"
import { handlers } from "../../src/handlers.ts"
import { AppLive } from "../../src/services.ts"
import * as AppConfig from "../../src/services/AppConfig.ts"
import * as SmtpCapture from "../../src/services/SmtpCapture.ts"
import * as Storage from "../../src/services/Storage.ts"

/** The two databases every data test runs on: the embedded one, and a private database on the PostgreSQL server. */
export const backends = [
  { name: "embedded database (PGlite)", database: () => Database.layerEmbedded() },
  { name: "PostgreSQL", database: () => Scratch.layerTest("errand_examples_test") }
] as const

/** A fresh temporary folder, removed when the process exits. */
const tempDir = () => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "errand-examples-test-"))
  process.once("exit", () => Fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The app's services on `database`, with an SMTP capture and a temporary storage folder. */
export const services = (
  database: Layer.Layer<Database.Database | SqlClient.SqlClient, Database.DatabaseUnavailable>
) =>
  Layer.mergeAll(
    AppLive.pipe(Layer.provideMerge(Layer.merge(database, Storage.layerDir(tempDir())))),
    SmtpCapture.layerWithMailer(),
    AppConfig.layer(AppConfig.defaults)
  )

/** Empties every table (each test starts from an empty database). */
export const resetDatabase = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql`TRUNCATE users, products, orders, order_items, payments, sessions, otp_codes RESTART IDENTITY CASCADE`
).pipe(
  Effect.orDie
)

/**
 * Runs a test on a fresh memory broker and its own `TestClock`, started at `millis` (default: 0). The shared services
 * run on the live clock (their pool timers must not be replayed when a test moves its clock); the test's broker and
 * worker, built after the clock is set, run on the test's clock.
 */
export const onTestClock = (millis?: number) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.andThen(TestClock.setTime(millis ?? 0), Effect.provide(self, MemoryBroker.layer)).pipe(
    Effect.provide(TestClock.layer({ warningDelay: "1 minute" }))
  )

/** Starts a worker with every handler of the app, in the test's scope. */
export const startWorker = (
  options?: {
    readonly concurrency?: number | undefined
    readonly onEvent?: ((event: Worker.Event) => Effect.Effect<unknown>) | undefined
  }
) =>
  Worker.make({
    handlers,
    concurrency: options?.concurrency ?? 4,
    onEvent: options?.onEvent === undefined ? undefined : (event) => Effect.asVoid(options.onEvent!(event))
  })

/** Waits until the app's queues have drained; returns their dead letters. */
export const drain = Effect.map(
  Effect.forEach(["orders", "exports", "maintenance", "email"], (queue) => MemoryBroker.join(queue)),
  (letters) => letters.flat()
).pipe(Effect.orDie)

/**
 * Delivers `message` to a worker that runs its handler and then dies before acking it: the broker leases it, the
 * handler runs (its effects on the data are committed), and the lease is left to lapse, so the message is delivered
 * again — what at-least-once delivery does when a worker crashes.
 */
export const runThenCrash = <R>(
  handler: Actor.Handler<Actor.Any, R>,
  message: Message.Message
) =>
  Effect.gen(function*() {
    const taken = yield* (yield* Broker.Broker).take({ queue: message.queue, max: 1, lease: "10 seconds" })
    assert.strictEqual(taken.deliveries[0]?.id, message.id)
    yield* handler.run(message.payload, message)
  })
