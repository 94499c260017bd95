/**
 * Backups of the database into the storage folder: `pg_dump` (custom format) on PostgreSQL, run as a child process
 * through `effect/process` with a time limit (the process is killed when it is exceeded); on the embedded database,
 * PGlite's own dump of its data directory (a gzipped tarball that `new PGlite({ loadDataDir })` opens again).
 */
import { Clock, Context, Duration, Effect, Layer, Redacted, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { Database } from "../db/Database.ts"
import { BackupFailed, type StorageError } from "../domain.ts"
import { Storage, type StoredFile } from "./Storage.ts"

/** A backup that was written. */
export interface Backup {
  readonly file: StoredFile
  /** `pg_dump` or `pglite-dump`. */
  readonly method: string
}

/** Makes backups. */
export class Backups extends Context.Service<Backups, {
  /** Dumps the database to `backups/<timestamp>.<ext>` in storage. */
  readonly run: Effect.Effect<Backup, BackupFailed | StorageError>
}>()("@errand/examples/Backups") {}

const stamp = (millis: number) => new Date(millis).toISOString().replace(/[:.]/g, "-")

/** `pg_dump` of the database at `url` into `path`, killed after `timeLimit`. */
export const pgDump = (url: Redacted.Redacted<string>, path: string, timeLimit: Duration.Input) =>
  Effect.gen(function*() {
    const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
    const parsed = yield* Effect.try({
      try: () => new URL(Redacted.value(url)),
      catch: () => new BackupFailed({ reason: "DATABASE_URL is not a URL" })
    })
    const password = decodeURIComponent(parsed.password)
    parsed.password = "" // the password goes in the environment, never on the command line
    const command = ChildProcess.make("pg_dump", ["--format=custom", "--no-owner", `--file=${path}`, parsed.href], {
      env: password === "" ? {} : { PGPASSWORD: Redacted.make(password) },
      extendEnv: true
    })
    const failed = (reason: string) => new BackupFailed({ reason })
    yield* Effect.scoped(Effect.gen(function*() {
      const handle = yield* spawner.spawn(command)
      const [stderr, exitCode] = yield* Effect.all([
        handle.stderr.pipe(Stream.decodeText, Stream.mkString),
        handle.exitCode
      ], { concurrency: 2 })
      if (exitCode !== 0) return yield* failed(`pg_dump exited with ${exitCode}: ${stderr.trim()}`)
    })).pipe(
      Effect.catchTag(
        "PlatformError",
        (error) =>
          Effect.fail(
            failed(`pg_dump could not run (is it on PATH? Debian: apt-get install postgresql-client): ${error.message}`)
          )
      ),
      Effect.timeoutOrElse({
        duration: timeLimit,
        orElse: () =>
          Effect.fail(failed(`pg_dump took longer than ${Duration.format(Duration.fromInputUnsafe(timeLimit))}`))
      })
    )
  })

/** Backups of the app's database; `pg_dump` is given `timeLimit` (default 1 hour). */
export const layer = (
  options?: { readonly timeLimit?: Duration.Input | undefined }
): Layer.Layer<Backups, never, Database | Storage | ChildProcessSpawner.ChildProcessSpawner> =>
  Layer.effect(
    Backups,
    Effect.gen(function*() {
      const database = yield* Database
      const storage = yield* Storage
      const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
      const timeLimit = options?.timeLimit ?? "1 hour"
      return Backups.of({
        run: Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const backend = database.backend
          if (backend._tag === "Embedded") {
            const dump = yield* backend.dumpDataDir.pipe(
              Effect.mapError((error) => new BackupFailed({ reason: error.reason }))
            )
            const file = yield* storage.write(`backups/${stamp(now)}.pglite.tar.gz`, dump)
            return { file, method: "pglite-dump" }
          }
          const key = `backups/${stamp(now)}.pgdump`
          const path = yield* storage.pathOf(key)
          yield* storage.write(key, "") // creates the folder
          yield* pgDump(backend.url, path, timeLimit).pipe(
            Effect.provideService(ChildProcessSpawner.ChildProcessSpawner, spawner)
          )
          return { file: yield* storage.stat(key), method: "pg_dump" }
        })
      })
    })
  )
