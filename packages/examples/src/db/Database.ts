/**
 * The example app's database: PostgreSQL when `DATABASE_URL` is set, else an embedded PostgreSQL in the process.
 *
 * Both are reached through the same `@effect/sql-pg` client (`SqlClient`), so every query, transaction and lock is
 * the same code on both. The embedded database is PGlite (PostgreSQL compiled to WebAssembly) served on a local port
 * by `@electric-sql/pglite-socket`: `pnpm example` needs no services, and the queries it runs are PostgreSQL's, not a
 * dialect that differs in locking and types (as SQLite would). PGlite is a single session, so the embedded client
 * holds one connection: transactions run one at a time there, where PostgreSQL runs them concurrently.
 *
 * The layer runs the migrations (`migrations.ts`) before anything uses the database.
 */
import { PgClient } from "@effect/sql-pg"
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { Config, Context, Effect, Layer, Option, Redacted, Schema, String as Str } from "effect"
import { Migrator, SqlClient } from "effect/sql"
import { optionalUrl } from "../config.ts"
import { reasonOf } from "../services/sql.ts"
import { migrations } from "./migrations.ts"

/** The database could not be opened, reached or migrated. */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()("DatabaseUnavailable", {
  /** Which database: the URL without its password, or `embedded`. */
  target: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Database ${this.target} is unavailable: ${this.reason}`
  }
}

/** Which database the app runs on. */
export type Backend =
  | {
    readonly _tag: "Postgres"
    /** The connection URL (holds the password, so it stays redacted). */
    readonly url: Redacted.Redacted<string>
  }
  | {
    readonly _tag: "Embedded"
    /** Dumps the embedded database's data directory (a gzipped tarball): its backup. */
    readonly dumpDataDir: Effect.Effect<Uint8Array, DatabaseUnavailable>
  }

/** The open database: its backend, and a printable description of it. */
export class Database extends Context.Service<Database, {
  readonly backend: Backend
  /** `postgres://user@host:port/db` (no password) or `embedded PostgreSQL (PGlite)`. */
  readonly description: string
}>()("@errand/examples/Database") {}

/** A URL as printed: without its password. */
export const describeUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    parsed.password = ""
    return parsed.toString()
  } catch {
    return "(an unparseable DATABASE_URL)"
  }
}

/** Column names come back camelCase (`loyalty_points` -> `loyaltyPoints`); `sql.insert` keys go in snake_case. */
const naming = { transformResultNames: Str.snakeToCamel, transformQueryNames: Str.camelToSnake } as const

/** Runs the migrations (each once; concurrent starts wait for each other). */
const migrate = (target: string) =>
  Migrator.make({})({ loader: Migrator.fromRecord(migrations), table: "example_migrations" }).pipe(
    Effect.mapError((cause) => new DatabaseUnavailable({ target, reason: `migrations failed: ${reasonOf(cause)}` }))
  )

/** A client for `config`, with the migrations run: connection failures become `DatabaseUnavailable`. */
const clientWithMigrations = (
  target: string,
  config: PgClient.PgPoolConfig
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, DatabaseUnavailable> =>
  Layer.effectDiscard(migrate(target)).pipe(
    Layer.provideMerge(PgClient.layerFrom(
      PgClient.make(config).pipe(
        Effect.mapError((cause) => new DatabaseUnavailable({ target, reason: reasonOf(cause) }))
      )
    ))
  )

/**
 * PostgreSQL at `url` (a pool of up to 10 connections), migrated.
 */
export const layerPostgres = (
  url: Redacted.Redacted<string>
): Layer.Layer<Database | SqlClient.SqlClient | PgClient.PgClient, DatabaseUnavailable> => {
  const target = describeUrl(Redacted.value(url))
  return Layer.merge(
    Layer.succeed(Database, Database.of({ backend: { _tag: "Postgres", url }, description: target })),
    clientWithMigrations(
      target,
      { url, maxConnections: 10, connectTimeout: "5 seconds", ...naming }
    )
  )
}

/**
 * The embedded database: PGlite in this process (in memory, or in `dataDir`), served on a free local port, migrated.
 */
export const layerEmbedded = (
  options?: { readonly dataDir?: string | undefined }
): Layer.Layer<Database | SqlClient.SqlClient | PgClient.PgClient, DatabaseUnavailable> => {
  const target = "embedded"
  const fail = (reason: unknown) => new DatabaseUnavailable({ target, reason: reasonOf(reason) })
  return Layer.unwrap(Effect.gen(function*() {
    const db = yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => PGlite.create(options?.dataDir ?? "memory://"), catch: fail }),
      (db) => Effect.promise(() => db.close().catch(() => undefined))
    )
    const server = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0 })
          await server.start()
          return server
        },
        catch: fail
      }),
      (server) => Effect.promise(() => server.stop().catch(() => undefined))
    )
    const dumpDataDir = Effect.tryPromise({
      try: async () => new Uint8Array(await (await db.dumpDataDir("gzip")).arrayBuffer()),
      catch: fail
    })
    const url = Redacted.make(`postgres://postgres@${server.getServerConn()}/postgres`)
    return Layer.merge(
      Layer.succeed(
        Database,
        Database.of({ backend: { _tag: "Embedded", dumpDataDir }, description: "embedded PostgreSQL (PGlite)" })
      ),
      // one connection: PGlite is one session, so a transaction must own it
      clientWithMigrations(target, { url, maxConnections: 1, ...naming })
    )
  }))
}

/** `DATABASE_URL`: `None` when it is unset or empty (then the app runs on the embedded database). */
export const urlConfig = optionalUrl(Config.Redacted("DATABASE_URL"))

/**
 * The database `DATABASE_URL` names, or the embedded one when it is unset or empty (`EMBEDDED_DB_DIR` keeps the
 * embedded one on disk; default: in memory).
 */
export const layerConfig: Layer.Layer<
  Database | SqlClient.SqlClient | PgClient.PgClient,
  DatabaseUnavailable | Config.ConfigError
> = Layer.unwrap(
  Effect.gen(function*() {
    const url = yield* urlConfig
    const dataDir = yield* Config.option(Config.String("EMBEDDED_DB_DIR"))
    return Option.isSome(url)
      ? layerPostgres(url.value)
      : layerEmbedded({ dataDir: Option.getOrUndefined(dataDir) })
  })
)
