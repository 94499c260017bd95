/**
 * Worker modules: what a user's `src/worker.ts` exports for `errand worker` (and `errand schedules`,
 * `errand enqueue --module`).
 *
 * ```ts
 * // src/worker.ts
 * import { defineWorker } from "@errand/cli"
 *
 * export default defineWorker({
 *   handlers: [SendWelcomeEmailLive, ProcessOrderLive],
 *   services: Layer.mergeAll(UsersLive, MailerLive),  // what the handlers need; it may use the Broker
 *   queues: ["email", "processing"],                   // defaults; `errand worker --queues ...` overrides them
 *   concurrency: 8
 * })
 * ```
 *
 * `errand worker ./src/worker.ts` imports the module, takes its default export (or its export named `worker`),
 * provides the broker from the command line (`REDIS_URL`, `--redis-url` or `--broker memory`) and runs it. The same
 * definition runs without the command: `Layer.launch(definition.layer())` needs only a `Broker` (see `runMain`).
 *
 * @since 0.1.0
 */
import { type Actor, type Broker, Schedules, Worker } from "@errand/core"
import { Effect, Layer, Schedule } from "effect"

/**
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId = "~@errand/cli/WorkerModule" as const

/**
 * Options the command line may override.
 *
 * @category models
 * @since 0.1.0
 */
export interface WorkerSettings {
  /** The queues to consume (default: every queue of the handlers' actors). */
  readonly queues?: ReadonlyArray<string> | undefined
  /** How many handlers run at once (default `Worker.defaultConcurrency`, 8). */
  readonly concurrency?: number | undefined
  /** How many messages are taken ahead of free handler slots (default: `concurrency`). */
  readonly prefetch?: number | undefined
  /** How long a lease lasts (default 30 seconds). */
  readonly lease?: Worker.Options<[]>["lease"]
  /** How long shutdown lets running handlers finish (default 30 seconds). */
  readonly shutdownTimeout?: Worker.Options<[]>["shutdownTimeout"]
  /** Run the module's schedules in this worker (default true). Each slot is sent once however many run them. */
  readonly runSchedules?: boolean | undefined
}

/**
 * A worker definition: handlers, the services they need, and default settings.
 *
 * @category models
 * @since 0.1.0
 */
export interface WorkerDefinition {
  readonly [TypeId]: typeof TypeId
  /** The handlers this worker runs. */
  readonly handlers: ReadonlyArray<Actor.Handler<Actor.Any, unknown>>
  /** The cron schedules run with the worker, listed by `errand schedules`. */
  readonly schedules: ReadonlyArray<Schedules.Entry>
  /** The default settings (the command line overrides them). */
  readonly settings: WorkerSettings
  /**
   * The worker as a Layer that needs only a `Broker`: the handlers' services are provided. It logs one line when it
   * starts and one when it stops, with how many messages it finished and released.
   */
  readonly layer: (overrides?: WorkerSettings, recycle?: Recycle) => Layer.Layer<never, unknown, Broker.Broker>
}

/**
 * When a worker process should be replaced by a fresh one (`errand worker --max-messages`, `--max-rss`).
 *
 * @category models
 * @since 0.1.0
 */
export interface Recycle {
  /** After this many finished messages. */
  readonly afterMessages?: number | undefined
  /** When the process's resident set size goes above this many bytes (checked every 5 seconds). */
  readonly aboveRssBytes?: number | undefined
  /** Called once, when a limit is reached, with the reason. */
  readonly onRecycle: (reason: string) => Effect.Effect<void>
}

/**
 * The options of `defineWorker`.
 *
 * @category models
 * @since 0.1.0
 */
export interface DefineOptions<Handlers extends ReadonlyArray<Actor.Handler<Actor.Any, unknown>>, E>
  extends WorkerSettings
{
  /** The handlers, from `actor.handle(...)`. */
  readonly handlers: Handlers
  /**
   * A Layer providing every service the handlers need (it may itself use the `Broker`). A handler whose service it
   * does not provide does not compile. Use `Layer.empty` when the handlers need nothing.
   */
  readonly services: Layer.Layer<Exclude<Worker.Requirements<Handlers>, Broker.Broker>, E, Broker.Broker>
  /** Cron schedules to run with the worker (see `Schedules`). */
  readonly schedules?: ReadonlyArray<Schedules.Entry> | undefined
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`

/**
 * Defines the worker of a module, for `errand worker`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const defineWorker = <const Handlers extends ReadonlyArray<Actor.Handler<Actor.Any, unknown>>, E>(
  options: DefineOptions<Handlers, E>
): WorkerDefinition => {
  const settings: WorkerSettings = {
    queues: options.queues,
    concurrency: options.concurrency,
    prefetch: options.prefetch,
    lease: options.lease,
    shutdownTimeout: options.shutdownTimeout,
    runSchedules: options.runSchedules
  }
  const schedules = options.schedules ?? []
  const services = options.services as Layer.Layer<unknown, unknown, Broker.Broker>
  return {
    [TypeId]: TypeId,
    handlers: options.handlers,
    schedules,
    settings,
    layer: (overrides, recycle) => {
      const merged = { ...settings, ...withoutUndefined(overrides ?? {}) }
      const worker = Layer.effectDiscard(Effect.gen(function*() {
        // for --max-messages (the worker logs its own stop line)
        let finishedCount = 0
        let recycling = false
        const recycleFor = (reason: string) =>
          Effect.suspend(() => {
            if (recycling || recycle === undefined) return Effect.void
            recycling = true
            return recycle.onRecycle(reason)
          })
        const afterMessages = recycle?.afterMessages
        const finished = () =>
          afterMessages !== undefined && finishedCount >= afterMessages
            ? recycleFor(`${plural(finishedCount, "message")} finished (--max-messages ${afterMessages})`)
            : Effect.void
        const aboveRss = recycle?.aboveRssBytes
        if (aboveRss !== undefined) {
          const check = Effect.suspend(() => {
            const rss = process.memoryUsage.rss()
            return rss > aboveRss
              ? recycleFor(
                `resident memory ${(rss / 2 ** 20).toFixed(0)} MB is above ${(aboveRss / 2 ** 20).toFixed(0)} MB`
              )
              : Effect.void
          })
          yield* Effect.forkScoped(Effect.repeat(check, Schedule.spaced("5 seconds")))
        }
        const { runSchedules: _, ...workerOptions } = merged
        yield* Worker.make({
          handlers: options.handlers,
          ...workerOptions,
          // only with --max-messages: listening for events turns off the worker's direct-acknowledgement fast path
          onEvent: afterMessages === undefined ? undefined : (event) =>
            Effect.suspend(() => {
              if (event._tag === "Started" || event._tag === "Released") return Effect.void
              finishedCount++
              return finished()
            })
        })
        const queues = merged.queues ?? [...new Set(options.handlers.map((handler) => handler.actor.queue))]
        yield* Effect.logInfo(
          `Worker started on ${queues.join(", ")} (concurrency ${merged.concurrency ?? Worker.defaultConcurrency}, ${
            plural(options.handlers.length, "actor")
          })`
        )
      }))
      const withSchedules = merged.runSchedules === false || schedules.length === 0
        ? worker
        : Layer.merge(worker, Schedules.layer(schedules))
      return withSchedules.pipe(Layer.provide(services)) as Layer.Layer<never, unknown, Broker.Broker>
    }
  }
}

const withoutUndefined = <A extends object>(a: A): Partial<A> =>
  Object.fromEntries(Object.entries(a).filter(([, value]) => value !== undefined)) as Partial<A>

/**
 * Whether a value is a worker definition.
 *
 * @category guards
 * @since 0.1.0
 */
export const isWorkerDefinition = (u: unknown): u is WorkerDefinition =>
  typeof u === "object" && u !== null && TypeId in u
