/**
 * `errand dashboard` as a real process on the run's private redis-server, beside an `errand worker` that reports its
 * heartbeat: the dashboard lists the worker and its schedules; beyond loopback it needs a token (or --read-only).
 */
import { assert, describe, it } from "@effect/vitest"
import { randomUUID } from "node:crypto"
import { hostname } from "node:os"
import { waitFor } from "../../redis/test/utils/redisServer.ts"
import { bin, errand, fixture, redisUrl, start } from "./utils/cli.ts"

const getJson = async (url: string, init?: RequestInit) => {
  try {
    const response = await fetch(url, init)
    return { status: response.status, body: await response.json() as Record<string, any> }
  } catch {
    return { status: 0, body: {} }
  }
}

describe("errand dashboard", () => {
  it("lists the workers that errand worker reports, with their queues and schedules", async () => {
    const prefix = `dash-cli-${randomUUID().slice(0, 8)}`
    const env = { REDIS_URL: redisUrl, ERRAND_REDIS_PREFIX: prefix }
    const worker = start(bin, ["worker", fixture("worker.ts")], { ...env, CLI_TICKS: "1" })
    const dashboard = start(bin, ["dashboard", "--port", "0"], env)
    try {
      await dashboard.waitFor(/Listening on http:\/\/127\.0\.0\.1:\d+/)
      const base = dashboard.output().match(/Listening on (http:\/\/127\.0\.0\.1:\d+)/)![1]!
      let workers: Array<Record<string, unknown>> = []
      await waitFor(
        async () => {
          workers = (await getJson(`${base}/api/workers`)).body["workers"] ?? []
          return workers.length === 1
        },
        "the worker's heartbeat",
        60_000
      )
      assert.deepInclude(workers[0], { pid: worker.child.pid, host: hostname(), queues: ["cli_jobs"] })
      const schedules = (await getJson(`${base}/api/schedules`)).body["schedules"] as Array<Record<string, unknown>>
      assert.deepStrictEqual(schedules.map((s) => s["name"]).sort(), ["every_second", "nightly"])
      assert.deepInclude(schedules.find((s) => s["name"] === "nightly"), { tz: "Europe/Berlin", cron: "0 2 * * *" })
      assert.strictEqual((await getJson(`${base}/api/info`)).body["broker"], "redis")
    } finally {
      worker.child.kill("SIGTERM")
      dashboard.child.kill("SIGTERM")
      assert.strictEqual((await dashboard.exited).code, 0)
      await worker.exited
    }
  })

  it("refuses to listen beyond loopback without --token or --read-only (exit 2)", async () => {
    const run = await errand(["dashboard", "--host", "0.0.0.0", "--port", "0"], { REDIS_URL: redisUrl })
    assert.strictEqual(run.code, 2)
    assert.include(run.output, "Invalid --host")
    assert.include(run.output, "--token")
  })

  it("refuses a port out of range (exit 2)", async () => {
    const run = await errand(["dashboard", "--port", "70000"], { REDIS_URL: redisUrl })
    assert.strictEqual(run.code, 2)
    assert.include(run.output, "Invalid --port")
  })

  it("beyond loopback with ERRAND_DASHBOARD_TOKEN: actions answer 401 without the token", async () => {
    const prefix = `dash-cli-${randomUUID().slice(0, 8)}`
    const token = `t-${randomUUID()}`
    const dashboard = start(bin, ["dashboard", "--host", "0.0.0.0", "--port", "0"], {
      REDIS_URL: redisUrl,
      ERRAND_REDIS_PREFIX: prefix,
      ERRAND_DASHBOARD_TOKEN: token
    })
    try {
      await dashboard.waitFor(/Listening on http:\/\/0\.0\.0\.0:\d+/)
      const port = dashboard.output().match(/Listening on http:\/\/0\.0\.0\.0:(\d+)/)![1]!
      const url = `http://127.0.0.1:${port}/api/queues/cli_jobs/dead-letters/requeue`
      const headers = { "content-type": "application/json", "x-errand-dashboard": "1" }
      const body = JSON.stringify({ all: true })
      assert.strictEqual((await getJson(url, { method: "POST", headers, body })).status, 401)
      const granted = await getJson(url, {
        method: "POST",
        headers: { ...headers, authorization: `Bearer ${token}` },
        body
      })
      assert.deepStrictEqual([granted.status, granted.body["requeued"]], [200, 0])
      assert.notInclude(dashboard.output(), token)
    } finally {
      dashboard.child.kill("SIGTERM")
      await dashboard.exited
    }
  })
})
