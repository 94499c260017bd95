/**
 * `errand worker --metrics-port` and `--log-format`: the metrics middleware, the monitoring HTTP server
 * (`/metrics`, `/healthz`, `/readyz`) and the process's logger.
 *
 * @internal
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { type Broker, type ErrandError, Metrics, Monitoring, Tracing } from "@errand/core"
import { Effect, Layer, Logger } from "effect"
import { FetchHttpClient, HttpRouter } from "effect/http"
import { OtlpSerialization, OtlpTracer } from "effect/observability"
import { createServer } from "node:http"

/** Whether this process's worker is taking messages: set once it started, cleared when it begins to stop. */
export interface WorkerStatus {
  taking: boolean
}

/**
 * The port of a process: `base` for a lone worker, `base + index - 1` for supervised child `index` (1…N), so that the
 * children of `--processes N` serve `base`…`base + N - 1`, each its own metrics.
 */
export const portOf = (base: number, child: string | undefined): number =>
  child === undefined || base === 0 ? base : base + Number(child) - 1

/**
 * The monitoring server on `host:port` (port 0: an ephemeral one, logged as `Listening on http://…`), and the
 * metrics middleware and depth sampler for `queues`.
 */
export const monitoringLayer = (options: {
  readonly host: string
  readonly port: number
  readonly queues: ReadonlyArray<string>
  readonly status: WorkerStatus
}): Layer.Layer<never, unknown, Broker.Broker> =>
  HttpRouter.serve(
    Monitoring.routes({ queues: options.queues, taking: () => options.status.taking }),
    { disableLogger: true }
  ).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { port: options.port, host: options.host }))
  )

/** Marks the worker as taking once the layers it is provided after are built, and as stopped when it begins to stop. */
export const markTaking = (status: WorkerStatus): Layer.Layer<never> =>
  Layer.effectDiscard(Effect.acquireRelease(
    Effect.sync(() => {
      status.taking = true
    }),
    () =>
      Effect.sync(() => {
        status.taking = false
      })
  ))

/**
 * The tracing middleware and Effect's OTLP tracer exporting to `url` (OTLP/HTTP, JSON), with the service name
 * `errand-worker`; spans still buffered are flushed when the worker stops.
 */
export const tracingLayer = (url: string) =>
  Tracing.layer.pipe(
    Layer.provideMerge(
      OtlpTracer.layer({ url, resource: { serviceName: "errand-worker" } }).pipe(
        Layer.provide([OtlpSerialization.layerJson, FetchHttpClient.layer])
      )
    )
  )

/**
 * The worker with what `--metrics-port` and `--traces-url` ask for: the metrics middleware, depth sampler and
 * monitoring server; the tracing middleware and OTLP exporter.
 */
export const observe = (
  worker: Layer.Layer<never, unknown, Broker.Broker>,
  options: {
    readonly metrics?:
      | { readonly host: string; readonly port: number; readonly queues: ReadonlyArray<string> }
      | undefined
    readonly tracesUrl?: string | undefined
  }
): Layer.Layer<never, unknown, Broker.Broker> => {
  const traced = options.tracesUrl === undefined ? worker : worker.pipe(Layer.provide(tracingLayer(options.tracesUrl)))
  const metrics = options.metrics
  if (metrics === undefined) return traced
  const status: WorkerStatus = { taking: false }
  return Layer.merge(
    monitoringLayer({ ...metrics, status }),
    markTaking(status).pipe(Layer.provide(traced), Layer.provide(Metrics.layer({ queues: metrics.queues })))
  )
}

/** The log formats of `--log-format`. */
export type LogFormat = "pretty" | "json"

/**
 * The process's logger: JSON lines (`Logger.consoleJson`: level, timestamp, message, annotations), or Effect's
 * pretty logger; without `--log-format`, pretty in a terminal and Effect's default logger otherwise.
 */
export const loggerLayer = (format: LogFormat | undefined): Layer.Layer<never> => {
  const chosen = format ?? (process.stdout.isTTY ? "pretty" : undefined)
  if (chosen === "json") return Logger.layer([Logger.consoleJson])
  if (chosen === "pretty") return Logger.layer([Logger.consolePretty()])
  return Layer.empty
}
