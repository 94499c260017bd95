/**
 * `pnpm example` itself: the README's first command, run as a user runs it (a child process, no services in its
 * environment). It must tell the story and exit 0.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const demo = fileURLToPath(new URL("../src/demo.ts", import.meta.url))

/** Runs the demo with no DATABASE_URL, REDIS_URL or SMTP_URL: its exit code and output. */
const runDemo = () =>
  new Promise<{ readonly code: number | null; readonly output: string }>((resolve) => {
    const env = { ...process.env }
    for (const name of ["DATABASE_URL", "REDIS_URL", "SMTP_URL", "STORAGE_DIR", "EMBEDDED_DB_DIR"]) delete env[name]
    const child = spawn(process.execPath, [demo], { env, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.once("exit", (code) => resolve({ code, output }))
  })

describe("pnpm example", () => {
  it(
    "tells the weekend's story on the embedded database, the memory broker and an SMTP capture, then exits 0",
    async () => {
      const { code, output } = await runDemo()
      assert.strictEqual(code, 0, output)
      const lines = [
        "on embedded PostgreSQL (PGlite), the memory broker",
        "Sat 16:00:00  ✉  to ada@example.com: \"Welcome to Errand Shop, Ada!\"",
        "✉  to grace@example.com: \"Reset your password\"",
        "http://localhost:3000/reset-password?token=",
        "✗ reserve_inventory dead-lettered: OutOfStock",
        "✗ process_order dead-lettered: PaymentDeclined",
        "  order #1: confirmed, 49.00 EUR",
        "  stock of MUG: 3",
        "✉  to ada@example.com: \"Your data export is ready\"",
        "| 1,2026-11-28T16:00:00.000Z,confirmed,4900,MUG x2; TEE x1",
        "Sun 00:00:00  ✓ backup_database",
        "Sun 02:00:00  ✓ cleanup_old_data",
        "↻ critical_task failed (LedgerMismatch); retry 3",
        "✉  to admin@example.com: \"[ALERT] A critical task failed: LedgerMismatch\"",
        "Mon 09:00:00  ✉  to team@example.com: \"Daily report for 2026-11-29\"",
        "cleanup_expired_sessions ran 41 times",
        "queue \"maintenance\": 0 ready, 0 delayed, 1 dead letters"
      ]
      for (const line of lines) assert.include(output, line)
    },
    120_000
  )
})
