/**
 * `errand worker --metrics-port --log-format json` as a real process on a private redis-server: the Prometheus
 * endpoint after successes, a retry and a dead letter; `/readyz` across a redis-server stop and start; JSON log lines.
 */
import { assert, describe, it } from "@effect/vitest"
import { type Broker, Tracing } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Effect, Layer } from "effect"
import { createServer } from "node:http"
import { startRedisServer, waitFor } from "../../redis/test/utils/redisServer.ts"
import { portOf } from "../src/internal/monitoring.ts"
import { doomed, flaky, ok } from "./fixtures/monitored.ts"
import { bin, fixture, redisUrl, start } from "./utils/cli.ts"

const onRedis = <A, E>(url: string, effect: Effect.Effect<A, E, Broker.Broker>) =>
  Effect.runPromise(effect.pipe(Effect.provide(Layer.fresh(RedisBroker.layer({ url, prefix: "mon" })))))

const get = async (url: string) => {
  try {
    const response = await fetch(url)
    return { status: response.status, body: await response.text() }
  } catch {
    return { status: 0, body: "" }
  }
}

/** The value of one sample line of a Prometheus text body (`name{labels} value`), if present. */
const sample = (body: string, series: string): number | undefined => {
  const line = body.split("\n").find((l) => l.startsWith(series + " "))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe("errand worker --metrics-port", () => {
  it("serves metrics that match a run, readiness that follows the broker, and JSON logs with annotations", async () => {
    const redis = await startRedisServer()
    const worker = start(bin, [
      "worker",
      fixture("monitored.ts"),
      "--metrics-port",
      "0",
      "--metrics-host",
      "127.0.0.1",
      "--log-format",
      "json",
      "--redis-prefix",
      "mon"
    ], { REDIS_URL: redis.url })
    try {
      await worker.waitFor(/Listening on http:\/\/127\.0\.0\.1:\d+/)
      await worker.waitFor(/Worker started on mon_jobs/)
      const base = worker.output().match(/Listening on (http:\/\/127\.0\.0\.1:\d+)/)![1]!
      assert.strictEqual((await get(`${base}/healthz`)).status, 200)

      await onRedis(
        redis.url,
        Effect.all([ok.send({ n: 1 }), ok.send({ n: 2 }), flaky.send({ n: 3 }), doomed.send({ n: 4 })])
      )
      // wait for the outcomes, then for a depth sample (every 5 s) that saw the dead letter
      let body = ""
      await waitFor(async () => {
        body = (await get(`${base}/metrics`)).body
        return sample(body, `errand_messages_succeeded_total{actor="mon_flaky",queue="mon_jobs"}`) === 1 &&
          sample(body, `errand_messages_succeeded_total{actor="mon_ok",queue="mon_jobs"}`) === 2 &&
          sample(body, `errand_messages_dead_total{actor="mon_doomed",queue="mon_jobs"}`) === 1 &&
          sample(body, `errand_queue_depth{queue="mon_jobs",state="dead"}`) === 1
      }, "the run's metrics")
      const labels = (actor: string) => `{actor="${actor}",queue="mon_jobs"}`
      assert.strictEqual(sample(body, `errand_messages_started_total${labels("mon_ok")}`), 2)
      assert.strictEqual(sample(body, `errand_messages_started_total${labels("mon_flaky")}`), 2)
      assert.strictEqual(sample(body, `errand_messages_retried_total${labels("mon_flaky")}`), 1)
      assert.strictEqual(sample(body, `errand_messages_started_total${labels("mon_doomed")}`), 1)
      // never retried: a series appears with its first update
      assert.strictEqual(sample(body, `errand_messages_retried_total${labels("mon_doomed")}`), undefined)
      assert.strictEqual(sample(body, `errand_handler_duration_seconds_count${labels("mon_ok")}`), 2)
      assert.strictEqual(sample(body, `errand_handler_duration_seconds_count${labels("mon_flaky")}`), 2)
      assert.strictEqual(sample(body, `errand_message_lag_seconds_count${labels("mon_flaky")}`), 1)
      assert.strictEqual(sample(body, `errand_messages_in_progress${labels("mon_ok")}`), 0)
      assert.strictEqual(sample(body, `errand_queue_depth{queue="mon_jobs",state="ready"}`), 0)
      assert.strictEqual(sample(body, `errand_queue_depth{queue="mon_jobs",state="in_flight"}`), 0)

      // JSON logs: one object per line, the handler's line annotated with its message
      const lines = worker.output().split("\n").filter((line) => line.startsWith("{"))
      const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>)
      const handling = parsed.find((entry) => entry["message"] === "handling 1")
      assert(handling !== undefined, worker.output())
      assert.strictEqual(handling["level"], "INFO")
      assert.isString(handling["timestamp"])
      const annotations = handling["annotations"] as Record<string, unknown>
      assert.strictEqual(annotations["actor"], "mon_ok")
      assert.strictEqual(annotations["queue"], "mon_jobs")
      assert.isString(annotations["messageId"])
      assert.strictEqual(annotations["attempt"], 1)

      // readiness follows the broker: 503 while redis-server is down, 200 once it is back
      const ready = await get(`${base}/readyz`)
      assert.deepStrictEqual([ready.status, JSON.parse(ready.body)], [200, {
        ready: true,
        broker: "ok",
        worker: "taking"
      }])
      await redis.stop()
      await waitFor(async () => (await get(`${base}/readyz`)).status === 503, "/readyz to answer 503")
      assert.strictEqual((await get(`${base}/healthz`)).status, 200)
      await redis.start()
      await waitFor(async () => (await get(`${base}/readyz`)).status === 200, "/readyz to answer 200 again")
    } finally {
      worker.child.kill("SIGTERM")
      await worker.exited
      await redis.dispose()
    }
  })
})

describe("--metrics-port with --processes", () => {
  it("gives child i (1…N) the port base+i-1, a lone worker the base, and port 0 (ephemeral) to each", () => {
    assert.deepStrictEqual(
      [portOf(9191, undefined), portOf(9191, "1"), portOf(9191, "3"), portOf(0, "2")],
      [9191, 9191, 9193, 0]
    )
  })
})

/** An OTLP/HTTP receiver on 127.0.0.1:0: the spans of every request it gets, flattened. */
const otlpReceiver = async () => {
  const spans: Array<{ readonly name: string; readonly traceId: string; readonly parentSpanId?: string }> = []
  const server = createServer((request, response) => {
    let body = ""
    request.on("data", (chunk) => (body += chunk))
    request.on("end", () => {
      const parsed = JSON.parse(body) as {
        readonly resourceSpans: ReadonlyArray<{ readonly scopeSpans: ReadonlyArray<{ readonly spans: typeof spans }> }>
      }
      for (const resource of parsed.resourceSpans) for (const scope of resource.scopeSpans) spans.push(...scope.spans)
      response.statusCode = 200
      response.setHeader("content-type", "application/json")
      response.end("{}")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as { readonly port: number }).port
  return { url: `http://127.0.0.1:${port}/v1/traces`, spans, close: () => server.close() }
}

describe("errand worker --traces-url", () => {
  it("exports each attempt's span with OTLP, as a child of the producer's send span", async () => {
    const receiver = await otlpReceiver()
    const prefix = `mon-traces-${process.pid}`
    const worker = start(bin, [
      "worker",
      fixture("monitored.ts"),
      "--traces-url",
      receiver.url,
      "--redis-prefix",
      prefix
    ], { REDIS_URL: redisUrl })
    try {
      await worker.waitFor(/Worker started on mon_jobs/)
      const message = await Effect.runPromise(
        ok.send({ n: 7 }).pipe(
          Effect.withSpan("request"),
          Effect.provide(Layer.mergeAll(Layer.fresh(RedisBroker.layer({ url: redisUrl, prefix })), Tracing.layer))
        )
      )
      const [, traceId, sendSpanId] = (message.options["traceparent"] as string).split("-")
      await worker.waitFor(/handling 7/)
      worker.child.kill("SIGTERM") // the exporter flushes what it holds when the worker stops
      assert.deepStrictEqual(await worker.exited, { code: 0, signal: null })
      await waitFor(async () => receiver.spans.some((span) => span.name === "errand.run mon_ok"), "the exported span")
      const run = receiver.spans.find((span) => span.name === "errand.run mon_ok")!
      assert.strictEqual(run.traceId, traceId)
      assert.strictEqual(run.parentSpanId, sendSpanId)
    } finally {
      worker.child.kill("SIGTERM")
      receiver.close()
    }
  })
})
