/**
 * Keeps the benchmark working: runs `--quick` in a child process (as CI does) and checks that it exited 0 and
 * printed the results table. Speed is never asserted; the harness itself fails when a job is lost, duplicated or
 * left behind.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const main = fileURLToPath(new URL("../src/main.ts", import.meta.url))

const runQuick = (): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, "--quick"], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

describe("bench --quick", () => {
  it("runs every scenario and contender, with every count checked, and prints the table", async () => {
    const { code, stdout, stderr } = await runQuick()
    expect(code, `stdout:\n${stdout}\nstderr:\n${stderr}`).toBe(0)
    expect(stdout).toMatch(/\| scenario +\| Errand +\|/)
    for (
      const row of [
        "enqueue one by one",
        "drain 1.0k queued, concurrency 50",
        "p99 ms",
        "in process: CPU µs",
        "in process: add → handler start at 10,000 jobs/s, p99 µs"
      ]
    ) {
      expect(stdout).toContain(row)
    }
    expect(stdout).not.toContain("FAILED")
  }, 180_000) // ~10 s idle: a bound for a hang, with room for a loaded 2-core machine (Redis servers, child processes)
})
