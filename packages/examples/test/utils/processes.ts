/**
 * Child processes for end-to-end tests: `node` scripts started in a Scope (killed if still running when it closes),
 * whose output a test waits on, and which it stops with a signal to check their exit.
 */
import { Data, Duration, Effect, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"

/** A process did not print what a test waited for in time, or exited first (its output so far included). */
export class OutputTimeout extends Data.TaggedError("OutputTimeout")<{
  readonly name: string
  readonly pattern: string
  readonly output: string
}> {
  override get message(): string {
    return `${this.name} did not print ${this.pattern} in time. Its output:\n${this.output}`
  }
}

/** How a process ended. */
export interface ExitStatus {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** A running `node` process. */
export interface Running {
  readonly child: ChildProcess
  /** Everything it wrote to stdout and stderr so far. */
  readonly output: () => string
  /** The first match of `pattern` in its output, waiting for it up to `timeout` (real time); fails if it exits first. */
  readonly waitFor: (pattern: RegExp, timeout: Duration.Input) => Effect.Effect<RegExpMatchArray, OutputTimeout>
  /** Sends `signal` and waits for the exit, up to `timeout`; a process still running then fails the wait. */
  readonly stop: (signal: NodeJS.Signals, timeout: Duration.Input) => Effect.Effect<ExitStatus, OutputTimeout>
}

/**
 * Starts `node script ...args` in `cwd` with `env` added to this process's environment. The Scope's end kills it
 * (SIGKILL) if it still runs, so a failed test leaves no process behind.
 */
export const startNode = (
  name: string,
  script: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly env: Record<string, string> }
): Effect.Effect<Running, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, [script, ...args], {
        cwd: options.cwd,
        env: { ...process.env, ...options.env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      const listeners = new Set<() => void>()
      const append = (chunk: Buffer) => {
        output += chunk.toString()
        for (const listener of [...listeners]) listener()
      }
      child.stdout!.on("data", append)
      child.stderr!.on("data", append)
      const exit = new Promise<ExitStatus>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })))
      const timedOut = (pattern: string) => () => Effect.fail(new OutputTimeout({ name, pattern, output }))
      let exited: ExitStatus | undefined
      void exit.then((status) => {
        exited = status
        for (const listener of [...listeners]) listener()
      })
      const waitFor = (pattern: RegExp, timeout: Duration.Input) =>
        Effect.callback<RegExpMatchArray, OutputTimeout>((resume) => {
          const check = () => {
            const match = pattern.exec(output)
            if (match === null && exited === undefined) return
            listeners.delete(check)
            resume(
              match !== null ? Effect.succeed(match) : Effect.fail(
                new OutputTimeout({
                  name,
                  pattern: `${pattern} (it exited first: ${JSON.stringify(exited)})`,
                  output
                })
              )
            )
          }
          listeners.add(check)
          check()
          return Effect.sync(() => listeners.delete(check))
        }).pipe(Effect.timeoutOrElse({ duration: timeout, orElse: timedOut(String(pattern)) }))
      const stop = (signal: NodeJS.Signals, timeout: Duration.Input) =>
        Effect.sync(() => child.kill(signal)).pipe(
          Effect.andThen(Effect.promise(() => exit)),
          Effect.timeoutOrElse({ duration: timeout, orElse: timedOut(`its exit after ${signal}`) })
        )
      return { child, output: () => output, waitFor, stop } satisfies Running
    }),
    ({ child }) =>
      Effect.sync(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      })
  )
