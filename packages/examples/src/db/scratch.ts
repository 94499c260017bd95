/**
 * Scratch databases: a fresh PostgreSQL database on the server of a URL, dropped when the scope closes. Tests use
 * one per file, and `pnpm example` on `DATABASE_URL` runs its story in one, so neither touches the data already
 * there.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted, type Scope } from "effect"
import { SqlClient } from "effect/sql"
import { randomBytes } from "node:crypto"
import { DatabaseUnavailable, describeUrl, layerPostgres } from "./Database.ts"

/**
 * Creates a database named `<prefix>_<random>` on the server `url` points to, and drops it (`WITH (FORCE)`: open
 * connections are closed) when the scope closes. Returns the new database's URL.
 */
export const make = (
  url: Redacted.Redacted<string>,
  prefix: string
): Effect.Effect<Redacted.Redacted<string>, DatabaseUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    const target = describeUrl(Redacted.value(url))
    const name = `${prefix}_${randomBytes(6).toString("hex")}`
    const admin = (statement: string) =>
      Effect.scoped(
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)).pipe(
          Effect.provide(PgClient.layer({ url, maxConnections: 1, connectTimeout: "5 seconds" }))
        )
      ).pipe(
        Effect.mapError((error) =>
          new DatabaseUnavailable({
            target,
            reason: `${error.message}. Tests and the example need a PostgreSQL server they may create databases on: ` +
              `start one (Debian: apt-get install postgresql) or set DATABASE_URL/TEST_DATABASE_URL`
          })
        )
      )
    yield* Effect.acquireRelease(
      admin(`CREATE DATABASE ${name}`),
      () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).pipe(Effect.ignore)
    )
    const scratch = new URL(Redacted.value(url))
    scratch.pathname = `/${name}`
    return Redacted.make(scratch.href)
  })

/** The server tests use: `TEST_DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/postgres`. */
export const testServerUrl = (): Redacted.Redacted<string> =>
  Redacted.make(process.env["TEST_DATABASE_URL"] || "postgres://postgres@127.0.0.1:5432/postgres")

/** A scratch database on the test server, as the app's `Database` (migrated). */
export const layerTest = (prefix: string) =>
  Layer.unwrap(Effect.map(make(testServerUrl(), prefix), (url) => layerPostgres(url)))
