/**
 * Loading a user's worker module: importing it (Node strips TypeScript types) and finding what a command needs.
 *
 * @internal
 */
import { Actor } from "@errand/core"
import { Effect } from "effect"
import { existsSync } from "node:fs"
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { ModuleLoadError } from "../CommandError.ts"
import { isWorkerDefinition, type WorkerDefinition } from "../WorkerModule.ts"

/** The module's exports. */
export type Exports = Readonly<Record<string, unknown>>

/** Renders what a module threw: its message and where, without the loader's frames. */
const explain = (cause: unknown): string => {
  if (!(cause instanceof Error)) return String(cause)
  const frame = cause.stack?.split("\n").find((line) => line.trim().startsWith("at "))?.trim()
  return `${cause.name}: ${cause.message}${frame === undefined ? "" : ` (${frame})`}`
}

/** Imports a module by path (relative to the current directory). */
export const importModule = (path: string): Effect.Effect<Exports, ModuleLoadError> =>
  Effect.suspend(() => {
    const absolute = resolve(path)
    if (!existsSync(absolute)) return Effect.fail(new ModuleLoadError({ path, problem: "no such file" }))
    return Effect.tryPromise({
      try: () => import(pathToFileURL(absolute).href) as Promise<Exports>,
      catch: (cause) => new ModuleLoadError({ path, problem: `it threw while being imported: ${explain(cause)}` })
    })
  })

/** The worker definition of a module: its default export, or its export named `worker`. */
export const findWorker = (path: string, exports: Exports): Effect.Effect<WorkerDefinition, ModuleLoadError> => {
  const candidate = isWorkerDefinition(exports["default"]) ? exports["default"] : exports["worker"]
  return isWorkerDefinition(candidate)
    ? Effect.succeed(candidate)
    : Effect.fail(
      new ModuleLoadError({
        path,
        problem: "it exports no worker definition: `export default defineWorker({ handlers, services })` " +
          "(or `export const worker = defineWorker(...)`), with defineWorker from @errand/cli"
      })
    )
}

/** Imports a module and finds its worker definition. */
export const loadWorker = (path: string): Effect.Effect<WorkerDefinition, ModuleLoadError> =>
  Effect.flatMap(importModule(path), (exports) => findWorker(path, exports))

const isActor = (u: unknown): u is Actor.Any => typeof u === "object" && u !== null && Actor.TypeId in u

/**
 * Every actor a module makes reachable: exported actors (alone or in arrays), and the actors of its worker's
 * handlers and schedules.
 */
export const findActors = (exports: Exports): ReadonlyMap<string, Actor.Any> => {
  const actors = new Map<string, Actor.Any>()
  const visit = (u: unknown, depth: number): void => {
    if (isActor(u)) {
      actors.set(u.name, u)
      return
    }
    if (depth > 2 || typeof u !== "object" || u === null) return
    if (Array.isArray(u)) {
      for (const item of u) visit(item, depth + 1)
      return
    }
    if (isWorkerDefinition(u)) {
      for (const handler of u.handlers) visit(handler.actor, depth + 1)
      for (const schedule of u.schedules) visit(schedule.actor, depth + 1)
      return
    }
    if ("actor" in u) visit(u.actor, depth + 1)
  }
  for (const value of Object.values(exports)) visit(value, 0)
  return actors
}
