/**
 * A worker process of the chaos test and the soak: Errand's `Worker` on the Redis broker, running the `chaos` actor,
 * whose handler works for `CHAOS_WORK_MS` and then prints `done <id>`. Prints `ready` once the worker runs. On SIGTERM
 * it shuts down gracefully and exits 0 (1 if the worker failed). Run with Node 22: `node worker.ts`.
 *
 * Env: REDIS_URL, CHAOS_PREFIX, CHAOS_QUEUE, CHAOS_LEASE_MS, CHAOS_CONCURRENCY, CHAOS_WORK_MS,
 * CHAOS_SHUTDOWN_TIMEOUT_MS.
 */
import { Worker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Cause, Effect, Exit, Fiber, Layer } from "effect"
import { chaosActor } from "./actor.ts"

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}

/**
 * Writes a line at once: stdout is a pipe, written synchronously on Linux, so a `done` line is out before the handler
 * returns and its ack is sent. A worker SIGKILLed after an ack has always reported the message done.
 */
const print = (line: string) => {
  process.stdout.write(line + "\n")
}

const workMs = Number(env("CHAOS_WORK_MS"))
const Handler = chaosActor(env("CHAOS_QUEUE")).handle((_, message) =>
  Effect.andThen(
    workMs > 0 ? Effect.sleep(workMs) : Effect.void,
    Effect.sync(() => print(`done ${message.id}`))
  )
)

const WorkerLive = Worker.layer({
  handlers: [Handler],
  concurrency: Number(env("CHAOS_CONCURRENCY")),
  lease: Number(env("CHAOS_LEASE_MS")),
  shutdownTimeout: Number(env("CHAOS_SHUTDOWN_TIMEOUT_MS"))
}).pipe(
  Layer.provide(
    RedisBroker.layer({ url: env("REDIS_URL"), prefix: env("CHAOS_PREFIX"), commandTimeout: 1_000 })
  )
)

const main = Effect.scoped(Effect.gen(function*() {
  yield* Layer.build(WorkerLive)
  print("ready")
  return yield* Effect.never
}))

const fiber = Effect.runFork(main)
process.once("SIGTERM", () => {
  Effect.runFork(Fiber.interrupt(fiber))
})
fiber.addObserver((exit) => {
  const clean = Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)
  if (!clean) process.stderr.write(`chaos worker failed: ${Cause.pretty(exit.cause)}\n`)
  process.exit(clean ? 0 : 1)
})
