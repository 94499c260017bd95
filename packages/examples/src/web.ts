/**
 * `pnpm --filter @errand/examples web`: the shop's HTTP API (`http/`), the "web" service of the seed's
 * docker-compose. It listens on `HOST:PORT` (default `127.0.0.1:3000`) and runs in one of two ways:
 *
 * - **With `REDIS_URL`**: the producer side only, as in production. Requests write to PostgreSQL at `DATABASE_URL`
 *   and send messages to Redis (key prefix `ERRAND_REDIS_PREFIX`, default `errand`, as `errand worker` reads it); a
 *   worker in another process runs them: `errand worker src/worker.ts` with the same `REDIS_URL` and `DATABASE_URL`.
 *   `DATABASE_URL` is required then: the embedded database lives inside one process, so a worker elsewhere could
 *   not see the users and orders this process writes.
 * - **Without `REDIS_URL`**: everything in this one process, for a local try with no services — the in-memory
 *   broker, a worker running every handler, the embedded database (or `DATABASE_URL`), and a local SMTP capture that
 *   logs each mail (or `SMTP_URL`).
 *
 * SIGINT/SIGTERM stop it gracefully (requests in flight finish; exit code 0).
 */
import { runMain } from "@errand/cli"
import { Worker } from "@errand/core"
import { MemoryBroker } from "@errand/memory"
import { RedisBroker } from "@errand/redis"
import { Config, Effect, Layer, Option, Redacted, Schema } from "effect"
import { optionalUrl } from "./config.ts"
import * as Database from "./db/Database.ts"
import { handlers } from "./handlers.ts"
import * as Catalog from "./http/Catalog.ts"
import * as Server from "./http/Server.ts"
import { DataLive, layerFromEnv } from "./services.ts"

/** The web service's environment does not make sense. */
export class InvalidWebConfig extends Schema.TaggedError<InvalidWebConfig>()("InvalidWebConfig", {
  variable: Schema.String,
  problem: Schema.String
}) {
  override get message(): string {
    return `${this.variable}: ${this.problem}`
  }
}

/**
 * Where to listen: `HOST` (default `127.0.0.1`; `0.0.0.0` in a container) and `PORT` (default 3000; 0 picks a free
 * port, logged as `Listening on http://HOST:PORT`).
 */
export const listenConfig = Config.all({
  host: Config.String("HOST").pipe(Config.withDefault("127.0.0.1")),
  port: Config.schema(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 })), "PORT").pipe(
    Config.withDefault(3000)
  )
})

/**
 * The producer side on Redis and PostgreSQL: the API's services, with no worker and no mailer (the worker process
 * has those).
 */
export const producerLayer = (redisUrl: Redacted.Redacted<string>) =>
  Layer.unwrap(Effect.gen(function*() {
    const databaseUrl = yield* Database.urlConfig
    if (Option.isNone(databaseUrl)) {
      return yield* new InvalidWebConfig({
        variable: "DATABASE_URL",
        problem: "REDIS_URL is set, so a worker in another process runs the messages, and it must see this " +
          "process's data: set DATABASE_URL to the PostgreSQL database the worker uses (or unset REDIS_URL to run " +
          "everything in this process on the embedded database)"
      })
    }
    const prefix = yield* Config.String("ERRAND_REDIS_PREFIX").pipe(Config.withDefault("errand"))
    return Layer.mergeAll(
      DataLive.pipe(Layer.provideMerge(Database.layerPostgres(databaseUrl.value))),
      RedisBroker.layer({ url: redisUrl, prefix })
    )
  }))

/**
 * Everything in one process: the app's services from the environment (embedded database unless `DATABASE_URL`, an
 * SMTP capture unless `SMTP_URL`), the in-memory broker, and a worker running every handler.
 */
export const allInOneLayer = Worker.layer({ handlers, concurrency: 8 }).pipe(
  Layer.provideMerge(layerFromEnv),
  Layer.provideMerge(MemoryBroker.layer)
)

/** Makes sure the catalog's products exist (before the server listens). */
export const catalog = Layer.effectDiscard(
  Effect.flatMap(Catalog.ensure, (added) => Effect.logInfo(`web: catalog ready (${added} products added)`))
)

/** The web service as the environment describes it (see the module's comment). */
export const layer = Layer.unwrap(Effect.gen(function*() {
  const listen = yield* listenConfig
  const redisUrl = yield* optionalUrl(Config.Redacted("REDIS_URL"))
  const producerOnly = Option.isSome(redisUrl)
  yield* Effect.logInfo(
    producerOnly
      ? "web: producer side on Redis; run `errand worker src/worker.ts` with the same REDIS_URL and DATABASE_URL"
      : "web: everything in this process (in-memory broker, a worker, the database and mail from the environment)"
  )
  const services: Layer.Layer<
    Layer.Success<ReturnType<typeof producerLayer>>,
    Layer.Error<typeof allInOneLayer> | Layer.Error<ReturnType<typeof producerLayer>>
  > = producerOnly ? producerLayer(redisUrl.value) : allInOneLayer
  return Server.layer(listen).pipe(Layer.provide(catalog), Layer.provide(services))
}))

if (import.meta.main) {
  Layer.launch(layer).pipe(runMain)
}
