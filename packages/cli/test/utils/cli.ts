/**
 * Runs the `errand` command (or any script) as a real child process and watches its output.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { inject } from "vitest"

/** The Redis the tests use (a private redis-server started by the redis project's globalSetup, or REDIS_URL). */
export const redisUrl: string = inject("redisUrl")

/** The CLI's entry point. */
export const bin = fileURLToPath(new URL("../../src/bin.ts", import.meta.url))

/** A fixture module's path. */
export const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))

/** A running process. */
export interface Running {
  readonly child: ChildProcess
  /** Everything it (and its children) wrote to stdout and stderr so far. */
  readonly output: () => string
  /** Waits until the output matches `pattern` at least `count` times. */
  readonly waitFor: (pattern: RegExp, count?: number, timeoutMs?: number) => Promise<void>
  /** Its exit. */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

/** Starts `node script ...args` with extra environment variables. */
export const start = (script: string, args: ReadonlyArray<string>, env: Record<string, string> = {}): Running => {
  const child = spawn(process.execPath, [script, ...args], {
    env: { ...process.env, REDIS_URL: "", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  const listeners = new Set<() => void>()
  const append = (chunk: Buffer) => {
    output += chunk.toString()
    for (const listener of listeners) listener()
  }
  child.stdout!.on("data", append)
  child.stderr!.on("data", append)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal }))
  )
  const waitFor = (pattern: RegExp, count = 1, timeoutMs = 30_000) =>
    new Promise<void>((resolve, reject) => {
      const global = new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : pattern.flags + "g")
      const check = () => {
        if ([...output.matchAll(global)].length >= count) {
          listeners.delete(check)
          clearTimeout(timer)
          resolve()
        }
      }
      const timer = setTimeout(() => {
        listeners.delete(check)
        reject(new Error(`Timed out waiting for ${count} × ${pattern} in:\n${output}`))
      }, timeoutMs)
      listeners.add(check)
      check()
    })
  return { child, output: () => output, waitFor, exited }
}

/** Runs the `errand` command to its end. */
export const errand = async (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const running = start(bin, args, env)
  const exit = await running.exited
  return { ...exit, output: running.output() }
}
