/**
 * Fixture processes of the crash and fault tests: a Node script run with the repo's Node (type stripping), its stdout
 * collected line by line, SIGKILLed with the scope if it is still alive.
 */
import { Effect, Schedule } from "effect"
import { spawn } from "node:child_process"

/** A running fixture process. */
export interface FixtureProcess {
  /** Its stdout, line by line, as it arrives. */
  readonly lines: Array<string>
  /** Resolves with its exit code (`null` when a signal ended it). */
  readonly exited: Promise<number | null>
  /** Sends it a signal. */
  readonly signal: (signal: NodeJS.Signals) => void
  /** SIGKILLs it and waits until it has exited. */
  readonly kill: Effect.Effect<void>
}

/** Spawns `node <script>` with `env` added to this process's environment. Its stderr goes to ours unless `quiet`. */
export const spawnFixture = (script: string, env: Record<string, string>, options: { readonly quiet?: boolean } = {}) =>
  Effect.gen(function*() {
    const child = spawn(process.execPath, [script], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", options.quiet === true ? "pipe" : "inherit"]
    })
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
    yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
    child.stderr?.resume()
    const lines: Array<string> = []
    let buffered = ""
    child.stdout!.on("data", (chunk: Buffer) => {
      buffered += chunk.toString()
      const parts = buffered.split("\n")
      buffered = parts.pop()!
      lines.push(...parts)
    })
    const process_: FixtureProcess = {
      lines,
      exited,
      signal: (signal) => child.kill(signal),
      kill: Effect.promise(() => {
        child.kill("SIGKILL")
        return exited
      }).pipe(Effect.asVoid)
    }
    return process_
  })

/** Waits (polling every 20 ms of real time, up to `seconds`) until `condition` holds; dies saying what it waited for. */
export const until = (what: string, condition: () => boolean, seconds = 30) =>
  Effect.suspend(() => condition() ? Effect.void : Effect.fail(what)).pipe(
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ duration: `${seconds} seconds` }))),
    Effect.mapError((what) => new Error(`timed out waiting until ${what}`)),
    Effect.orDie
  )
