/**
 * `pnpm enqueue [--count N]`: the web side's actions from their own process, for a worker started with
 * `pnpm worker` to run: N users sign up (welcome mails), each places an order (the order pipeline) and asks for an
 * export. Producer and worker must share the broker (`REDIS_URL`) and the database (`DATABASE_URL`): an embedded
 * database lives in one process, so this command refuses to run without `DATABASE_URL`.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Console, Effect, Layer, Option, Schema } from "effect"
import { Command, Flag } from "effect/cli"
import { randomBytes } from "node:crypto"
import { brokerFromEnv } from "./broker.ts"
import * as Database from "./db/Database.ts"
import * as Catalog from "./http/Catalog.ts"
import * as Producer from "./producer.ts"
import { DataLive } from "./services.ts"

/** `pnpm enqueue` was run without a database the worker can see. */
export class NoSharedDatabase extends Schema.TaggedError<NoSharedDatabase>()("NoSharedDatabase", {}) {
  override get message(): string {
    return "pnpm enqueue needs DATABASE_URL (the worker's PostgreSQL): an embedded database lives in one process"
  }
}

const count = Flag.Int("count").pipe(
  Flag.withDescription("How many users sign up and order"),
  Flag.withDefault(1)
)

const broker = brokerFromEnv()

/** The products the orders take, added when missing. */
const catalog = [{ sku: "MUG", name: "Errand mug", priceCents: 1200, stock: 1_000_000 }] as const

const database = Layer.unwrap(Effect.gen(function*() {
  const url = yield* Database.urlConfig
  if (Option.isNone(url)) return yield* new NoSharedDatabase()
  return Database.layerPostgres(url.value)
}))

const enqueue = Command.make("enqueue", { count }, (options) =>
  Effect.gen(function*() {
    yield* Catalog.ensureProducts(catalog)
    const batch = randomBytes(3).toString("hex")
    for (let i = 0; i < options.count; i++) {
      const { user } = yield* Producer.signUp({ email: `user-${batch}-${i}@example.com`, name: `User ${i}` })
      yield* Producer.placeOrder(user.id, [{ sku: "MUG", quantity: 1 }])
      yield* Producer.requestExport(user.id)
    }
    yield* Console.log(`${options.count} users signed up, ordered and asked for an export (on ${broker.name})`)
  }).pipe(Effect.provide(Layer.mergeAll(DataLive.pipe(Layer.provideMerge(database)), broker.layer))))

Command.run(enqueue, { version: "0.1.0" }).pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain)
