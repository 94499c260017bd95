/**
 * Throughput from heartbeats: the dashboard samples the live workers' reports at a bounded rate and keeps, per actor
 * and queue, cumulative totals that never go down (a worker that stops leaves its last totals behind), so that rates
 * are differences of two samples. No broker call per message, and one `heartbeats` call per sample.
 *
 * @internal
 */
import type { Heartbeat } from "@errand/core"

/** Cumulative totals of one actor and queue. */
interface Totals {
  /** Handler runs finished, succeeded or failed. */
  processed: number
  /** Handler runs that failed. */
  failed: number
  runs: number
  runMillis: number
}

interface Sample {
  readonly at: number
  readonly byActor: ReadonlyMap<string, Totals>
  /** The sum of `byActor`, made once when the sample is recorded (each chart point reads two samples' sums). */
  readonly total: Totals
}

/** One point of the chart: rates over the smoothing window that ends at `at`. */
export interface RatePoint {
  readonly at: number
  /** Attempts finished per second. */
  readonly processed: number
  /** Failed attempts per second. */
  readonly failed: number
  /** Mean handler time of the runs finished in the window, ms (null: none finished). */
  readonly meanMillis: number | null
}

/** An actor's activity over a window. */
export interface ActorRate {
  readonly actor: string
  readonly queue: string
  readonly processed: number
  readonly failed: number
  readonly perSecond: number
  readonly meanMillis: number | null
}

const zero = (): Totals => ({ processed: 0, failed: 0, runs: 0, runMillis: 0 })
const keyOf = (actor: string, queue: string) => `${actor}\u0000${queue}`

const add = (into: Totals, totals: Heartbeat.ActorTotals): void => {
  into.processed += totals.succeeded + totals.failed
  into.failed += totals.failed
  into.runs += totals.runs
  into.runMillis += totals.runMillis
}

/** @internal */
export class Throughput {
  private readonly samples: Array<Sample> = []
  private readonly live = new Map<string, Heartbeat.Report>()
  private readonly retired = new Map<string, Totals>()

  /** How much history is kept (the chart's span plus the smoothing window). */
  private readonly keepMillis: number

  constructor(keepMillis: number) {
    this.keepMillis = keepMillis
  }

  /** Records a sample of the live reports at `now`. */
  record(now: number, reports: ReadonlyArray<Heartbeat.Report>): void {
    const seen = new Set<string>()
    for (const report of reports) {
      seen.add(report.id)
      this.live.set(report.id, report)
    }
    for (const [id, report] of this.live) {
      if (seen.has(id)) continue
      // stopped: its last totals stay in the cumulative sums
      for (const totals of report.actors) {
        const key = keyOf(totals.actor, totals.queue)
        const retired = this.retired.get(key) ?? zero()
        add(retired, totals)
        this.retired.set(key, retired)
      }
      this.live.delete(id)
    }
    const byActor = new Map<string, Totals>()
    for (const [key, totals] of this.retired) byActor.set(key, { ...totals })
    for (const report of this.live.values()) {
      for (const totals of report.actors) {
        const key = keyOf(totals.actor, totals.queue)
        const sum = byActor.get(key) ?? zero()
        add(sum, totals)
        byActor.set(key, sum)
      }
    }
    this.samples.push({ at: now, byActor, total: Throughput.sum(byActor) })
    while (this.samples.length > 2 && this.samples[0]!.at < now - this.keepMillis) this.samples.shift()
  }

  /**
   * The index of the first sample after `at` (`samples.length` when none is), scanning on from `from`: the index for
   * an `at` at least as late as the one `from` was found for (0 to scan from the start).
   */
  private indexAfter(at: number, from = 0): number {
    let index = from
    while (index < this.samples.length && this.samples[index]!.at <= at) index++
    return index
  }

  /** The latest sample at or before `at` (the first sample when none is), given the index of the first one after. */
  private sampleBefore(indexAfter: number): Sample | undefined {
    return this.samples[Math.max(0, indexAfter - 1)]
  }

  private static sum(byActor: ReadonlyMap<string, Totals>): Totals {
    const total = zero()
    for (const totals of byActor.values()) {
      total.processed += totals.processed
      total.failed += totals.failed
      total.runs += totals.runs
      total.runMillis += totals.runMillis
    }
    return total
  }

  /** The chart: one point per sample of the last `spanMillis`, each a rate over the `smoothMillis` before it. */
  series(spanMillis: number, smoothMillis: number): ReadonlyArray<RatePoint> {
    const last = this.samples.at(-1)
    if (last === undefined) return []
    const points: Array<RatePoint> = []
    // the sample before each point is found scanning on from the previous point's (a clock set back scans from the
    // start): samples come in time order, so one pass, not one scan per point (a day holds tens of thousands)
    let after = 0
    let previous = -Infinity
    for (const sample of this.samples) {
      if (sample.at < last.at - spanMillis) continue
      const target = sample.at - smoothMillis
      after = this.indexAfter(target, target >= previous ? after : 0)
      previous = target
      const before = this.sampleBefore(after)
      if (before === undefined || before.at >= sample.at) continue
      const now = sample.total
      const then = before.total
      const seconds = (sample.at - before.at) / 1000
      const runs = now.runs - then.runs
      points.push({
        at: sample.at,
        processed: Math.max(0, now.processed - then.processed) / seconds,
        failed: Math.max(0, now.failed - then.failed) / seconds,
        meanMillis: runs > 0 ? (now.runMillis - then.runMillis) / runs : null
      })
    }
    return points
  }

  /** Each actor's activity over the last `windowMillis` (those with none are left out). */
  actors(windowMillis: number): ReadonlyArray<ActorRate> {
    const last = this.samples.at(-1)
    const before = last === undefined ? undefined : this.sampleBefore(this.indexAfter(last.at - windowMillis))
    if (last === undefined || before === undefined || before.at >= last.at) return []
    const seconds = (last.at - before.at) / 1000
    const out: Array<ActorRate> = []
    for (const [key, now] of last.byActor) {
      const then = before.byActor.get(key) ?? zero()
      const processed = now.processed - then.processed
      if (processed <= 0 && now.runs - then.runs <= 0) continue
      const [actor, queue] = key.split("\u0000") as [string, string]
      const runs = now.runs - then.runs
      out.push({
        actor,
        queue,
        processed,
        failed: now.failed - then.failed,
        perSecond: processed / seconds,
        meanMillis: runs > 0 ? (now.runMillis - then.runMillis) / runs : null
      })
    }
    return out.sort((a, b) => b.processed - a.processed || (a.actor < b.actor ? -1 : 1))
  }
}
