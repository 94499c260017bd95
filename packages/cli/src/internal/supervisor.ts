/**
 * The supervisor of `errand worker --processes N`: forks N worker processes (the same command, marked as a child
 * by an environment variable), restarts a child that exits with backoff, forwards SIGINT/SIGTERM to every child and
 * waits for them to drain; a second signal kills them (SIGKILL) and exits 130.
 *
 * @internal
 */
import { Clock, Data, Duration, Effect, Schedule } from "effect"
import { type ChildProcess, fork } from "node:child_process"
import { ExitCode } from "../CommandError.ts"

/** Set in a child's environment to its index (1…N): the command then runs one worker in its own process. */
export const childEnv = "ERRAND_WORKER_PROCESS"

/** A child ran at least this long: its exit is not a crash loop, so the restart backoff starts over. */
const healthyRunMillis = 60_000

/** Restart delays: 1 s doubling to 30 s. */
const restartBackoff = Schedule.exponential("1 second").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(30))))
)

/** A child exited while the supervisor was not stopping. */
class ChildExited extends Data.TaggedError("ChildExited")<{
  readonly index: number
  readonly pid: number | undefined
  readonly code: number | null
  readonly signal: string | null
  readonly ranMillis: number
  /** It asked to be replaced (`--max-messages`, `--max-rss`): restarted at once, without backoff. */
  readonly recycled: string | undefined
}> {
  get how(): string {
    return this.signal === null ? `exited with code ${this.code}` : `was killed by ${this.signal}`
  }
}

/** A child reported an error that a restart cannot fix (a bad module or bad flags): the supervisor stops. */
export class ChildFatal extends Data.TaggedError("ChildFatal")<{ readonly index: number; readonly code: number }> {
  override get message(): string {
    return `Worker process ${this.index} exited with code ${this.code} (a bad module or bad flags); stopping`
  }
}

/** What a child sends its supervisor before it stops to be recycled. */
export interface RecycleMessage {
  readonly _tag: "Recycle"
  readonly reason: string
}

const isRecycleMessage = (u: unknown): u is RecycleMessage =>
  typeof u === "object" && u !== null && (u as { readonly _tag?: unknown })._tag === "Recycle" &&
  typeof (u as { readonly reason?: unknown }).reason === "string"

/** Exit codes a restart cannot fix. */
const fatalCodes: ReadonlySet<number> = new Set([ExitCode.Usage, ExitCode.BadModule])

/** A child exit the restart backoff applies to: a crash soon after its start. */
const retryable = (exited: ChildExited): boolean =>
  exited.recycled === undefined && !fatalCodes.has(exited.code ?? -1) && exited.ranMillis < healthyRunMillis

/** The options of `supervise`. */
export interface SuperviseOptions {
  readonly processes: number
  /** The script to fork (the CLI's entry point) and its arguments. */
  readonly script: string
  readonly args: ReadonlyArray<string>
  readonly execArgv: ReadonlyArray<string>
}

/**
 * Runs the children until interrupted (by SIGINT/SIGTERM under `runMain`), then stops them gracefully and waits.
 * Fails with `ChildFatal` when a child exits with a code a restart cannot fix. `shutdownFailures` counts children
 * that did not exit with code 0 on the graceful stop.
 */
export const supervise = (options: SuperviseOptions, shutdown: { failures: number }) =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const log = Effect.runForkWith(yield* Effect.context<never>())
    const children = new Map<number, ChildProcess>()
    let signals = 0
    const onSignal = () => {
      signals++
      if (signals < 2) return
      process.stderr.write(`Second signal: killing ${children.size} worker process(es)\n`)
      for (const child of children.values()) child.kill("SIGKILL")
      process.exit(ExitCode.Forced)
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        process.on("SIGINT", onSignal)
        process.on("SIGTERM", onSignal)
      }),
      () =>
        Effect.sync(() => {
          process.off("SIGINT", onSignal)
          process.off("SIGTERM", onSignal)
        })
    )

    /** Runs child `index` until it exits (a failure) or the supervisor is interrupted (a graceful stop). */
    const runChild = (index: number) =>
      Effect.callback<never, ChildExited>((resume) => {
        const startedAt = clock.currentTimeMillisUnsafe()
        const child = fork(options.script, [...options.args], {
          env: { ...process.env, [childEnv]: String(index) },
          execArgv: [...options.execArgv],
          stdio: "inherit"
        })
        children.set(index, child)
        let exited = false
        let recycled: string | undefined
        child.on("message", (message) => {
          if (isRecycleMessage(message)) recycled = message.reason
        })
        child.once("exit", (code, signal) => {
          exited = true
          children.delete(index)
          resume(Effect.fail(
            new ChildExited({
              index,
              pid: child.pid,
              code,
              signal,
              ranMillis: clock.currentTimeMillisUnsafe() - startedAt,
              recycled
            })
          ))
        })
        log(Effect.logInfo(`Started worker process ${index} (pid ${child.pid})`))
        // Interrupted: the supervisor is stopping. Ask the child to drain, and wait for it.
        return Effect.callback<void>((done) => {
          if (exited) return done(Effect.void)
          child.once("exit", (code, signal) => {
            // killed by the SIGTERM itself: it had not installed its handlers yet, so it had nothing to drain
            if (code !== 0 && signal !== "SIGTERM") shutdown.failures++
            log(Effect.logInfo(
              `Worker process ${index} (pid ${child.pid}) stopped ${
                signal === null ? `with code ${code}` : `by ${signal}`
              }`
            ))
            done(Effect.void)
          })
          child.kill("SIGTERM")
        })
      })

    const slot = (index: number): Effect.Effect<never, ChildFatal> =>
      runChild(index).pipe(
        Effect.retry(
          restartBackoff.pipe(
            Schedule.setInputType<ChildExited>(),
            // a crash loop is retried with backoff; a recycle, a fatal exit or the end of a long run leave the loop
            Schedule.while(({ input }) => retryable(input)),
            Schedule.tap(({ duration, input }) =>
              Effect.logWarning(
                `Worker process ${input.index} (pid ${input.pid}) ${input.how}; restarting it in ${
                  Duration.format(duration)
                }`
              )
            )
          )
        ),
        Effect.catch((exited: ChildExited) =>
          exited.recycled !== undefined
            ? Effect.logInfo(
              `Worker process ${exited.index} (pid ${exited.pid}) recycled: ${exited.recycled}; starting a fresh one`
            )
            : fatalCodes.has(exited.code ?? -1)
            ? Effect.fail(new ChildFatal({ index: exited.index, code: exited.code! }))
            : Effect.logWarning(
              `Worker process ${exited.index} (pid ${exited.pid}) ${exited.how} after ${
                Duration.format(Duration.millis(exited.ranMillis))
              }; restarting it`
            )
        ),
        Effect.forever
      )

    yield* Effect.logInfo(`Supervisor (pid ${process.pid}) starting ${options.processes} worker processes`)
    yield* Effect.forEach(
      Array.from({ length: options.processes }, (_, i) => i + 1),
      slot,
      { concurrency: "unbounded", discard: true }
    )
  }).pipe(Effect.scoped, Effect.annotateLogs({ module: "Supervisor" }))
