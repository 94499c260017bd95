/**
 * Storage: the folder where exports and backups are written (`STORAGE_DIR`), and the links they are reached by
 * (`STORAGE_URL`, e.g. `https://files.example.com/`; default: `file://` URLs of the folder).
 */
import { Config, Context, Effect, Layer } from "effect"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import { url } from "../config.ts"
import { StorageError } from "../domain.ts"

/** A file written to storage. */
export interface StoredFile {
  /** Its key: the path inside the storage folder (`exports/user-1-....csv`). */
  readonly key: string
  /** Its absolute path on this machine. */
  readonly path: string
  /** The link to it. */
  readonly url: string
  readonly bytes: number
}

/** The storage folder. */
export class Storage extends Context.Service<Storage, {
  /** Writes a file (creating its folders), replacing any file with that key. */
  readonly write: (key: string, content: string | Uint8Array) => Effect.Effect<StoredFile, StorageError>
  readonly read: (key: string) => Effect.Effect<Uint8Array, StorageError>
  /** The file at a key, written by a tool (like `pg_dump`): its path, link and size (read from the file system). */
  readonly stat: (key: string) => Effect.Effect<StoredFile, StorageError>
  /** The keys of the files under a folder (`exports`), sorted. */
  readonly list: (folder: string) => Effect.Effect<ReadonlyArray<string>, StorageError>
  /** The absolute path a key is written to (for tools that write files themselves, like `pg_dump`). */
  readonly pathOf: (key: string) => Effect.Effect<string, StorageError>
  /** The link to a key. */
  readonly urlOf: (key: string) => string
}>()("@errand/examples/Storage") {}

const keyPattern = /^[a-zA-Z0-9_-][a-zA-Z0-9._-]*(\/[a-zA-Z0-9_-][a-zA-Z0-9._-]*)*$/

/** Storage in the folder `dir`, linked under `baseUrl` (default: the folder's `file://` URL). */
export const layerDir = (dir: string, options?: { readonly baseUrl?: string | undefined }): Layer.Layer<Storage> =>
  Layer.sync(Storage, () => {
    const root = Path.resolve(dir)
    const base = options?.baseUrl ?? pathToFileURL(root + Path.sep).href
    const urlOf = (key: string) => new URL(key, base.endsWith("/") ? base : `${base}/`).href
    const pathOf = (key: string) =>
      keyPattern.test(key)
        ? Effect.succeed(Path.join(root, key))
        : Effect.fail(new StorageError({ path: key, reason: "keys are relative paths of [a-zA-Z0-9._-] segments" }))
    const io = <A>(key: string, f: (path: string) => Promise<A>) =>
      Effect.flatMap(pathOf(key), (path) =>
        Effect.tryPromise({
          try: () => f(path),
          catch: (cause) =>
            new StorageError({ path: key, reason: cause instanceof Error ? cause.message : String(cause) })
        }))
    return Storage.of({
      write: (key, content) =>
        io(key, async (path) => {
          await Fs.mkdir(Path.dirname(path), { recursive: true })
          await Fs.writeFile(path, content)
          return {
            key,
            path,
            url: urlOf(key),
            bytes: typeof content === "string" ? Buffer.byteLength(content) : content.byteLength
          }
        }),
      read: (key) => io(key, async (path) => new Uint8Array(await Fs.readFile(path))),
      stat: (key) => io(key, async (path) => ({ key, path, url: urlOf(key), bytes: (await Fs.stat(path)).size })),
      list: (folder) =>
        io(folder, async (path) => {
          const names = await Fs.readdir(path).catch((error: NodeJS.ErrnoException) => {
            if (error.code === "ENOENT") return [] as Array<string>
            throw error
          })
          return names.sort().map((name) => `${folder}/${name}`)
        }),
      pathOf,
      urlOf
    })
  })

/** Storage in `STORAGE_DIR` (default `./storage`), linked under `STORAGE_URL`. */
export const layerConfig: Layer.Layer<Storage, Config.ConfigError> = Layer.unwrap(
  Effect.gen(function*() {
    const dir = yield* Config.String("STORAGE_DIR").pipe(Config.withDefault("./storage"))
    const baseUrl = yield* Config.option(url("STORAGE_URL"))
    return layerDir(dir, { baseUrl: baseUrl._tag === "Some" ? baseUrl.value : undefined })
  })
)
