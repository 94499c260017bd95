/**
 * `pnpm soak [--jobs N] [--rate R] [--workers W] [--outages K] [--down MS,MS,…] [--kills K] [--lease MS] …`
 *
 * The chaos run of `RedisChaos.test.ts` at a larger size (default 100,000 messages at 1,000/s, 3 workers, 4 Redis
 * outages alternating shutdown and SIGKILL of 1, 3, 2 and 5 s, 3 workers SIGKILLed), on a private redis-server with
 * an append-only file. Prints sent / completed / lost / duplicated and recovery times; exits 1 when a message was lost,
 * duplicated without having been in flight at a kill, left in Redis, or a worker did not exit 0 on SIGTERM.
 * Needs `redis-server` on PATH.
 */
import { Effect } from "effect"
import { parseArgs } from "node:util"
import { hasRedisServer } from "../utils/redisServer.ts"
import * as Chaos from "./chaos.ts"

const { values: flags } = parseArgs({
  options: {
    jobs: { type: "string", default: "100000" },
    rate: { type: "string", default: "1000" },
    workers: { type: "string", default: "3" },
    outages: { type: "string", default: "4" },
    down: { type: "string", default: "1000,3000,2000,5000" },
    kills: { type: "string", default: "3" },
    lease: { type: "string", default: "10000" },
    concurrency: { type: "string", default: "16" },
    work: { type: "string", default: "2" },
    "drain-timeout": { type: "string", default: "120000" },
    "shutdown-timeout": { type: "string", default: "10000" },
    help: { type: "boolean", short: "h", default: false }
  }
})

if (flags.help) {
  process.stdout.write(`usage: pnpm soak [options]
  --jobs N              messages sent (default 100000)
  --rate R              messages per second (default 1000)
  --workers W           worker processes (default 3)
  --outages K           Redis outages, alternating shutdown (SIGTERM) and crash (SIGKILL) (default 4)
  --down MS,MS,...      how long each outage lasts, cycled (default 1000,3000,2000,5000)
  --kills K             workers SIGKILLed, each replaced at once (default 3)
  --lease MS            the workers' lease; keep it above the longest outage (default 10000)
  --concurrency C       handlers per worker (default 16)
  --work MS             how long each job works (default 2)
  --drain-timeout MS    how long to wait for the last messages after the producer is done (default 120000)
  --shutdown-timeout MS the workers' shutdownTimeout (default 10000)
`)
  process.exit(0)
}

const int = (name: keyof typeof flags, min: number): number => {
  const value = Number(flags[name])
  if (!Number.isInteger(value) || value < min) {
    process.stderr.write(`--${name} must be an integer of at least ${min} (got ${String(flags[name])})\n`)
    process.exit(2)
  }
  return value
}

if (!hasRedisServer()) {
  process.stderr.write("pnpm soak needs redis-server on PATH (e.g. apt-get install redis-server)\n")
  process.exit(2)
}

const downs = String(flags.down).split(",").map((ms) => Number(ms.trim()))
if (downs.length === 0 || downs.some((ms) => !Number.isInteger(ms) || ms < 0)) {
  process.stderr.write(`--down must be comma-separated milliseconds (got ${flags.down})\n`)
  process.exit(2)
}
const outageCount = int("outages", 0)
const outages: Array<Chaos.Outage> = Array.from({ length: outageCount }, (_, i) => ({
  how: i % 2 === 0 ? "shutdown" : "kill",
  downMs: downs[i % downs.length]!
}))
const leaseMs = int("lease", 100)
if (outages.some((o) => o.downMs >= leaseMs)) {
  process.stdout.write(
    "note: an outage lasts as long as the lease: leases may lapse while Redis is down (duplicates)\n"
  )
}

const start = Date.now()
const log = (line: string) => process.stdout.write(`[${((Date.now() - start) / 1000).toFixed(1)} s] ${line}\n`)
const options: Chaos.ChaosOptions = {
  jobs: int("jobs", 1),
  rate: int("rate", 1),
  workers: int("workers", 1),
  outages,
  kills: int("kills", 0),
  leaseMs,
  concurrency: int("concurrency", 1),
  workMs: int("work", 0),
  drainTimeoutMs: int("drain-timeout", 0),
  shutdownTimeoutMs: int("shutdown-timeout", 0),
  log
}
log(
  `soak: ${options.jobs} messages at ${options.rate}/s, ${options.workers} workers, ${outages.length} Redis outages ` +
    `(${outages.map((o) => `${o.how} ${o.downMs} ms`).join(", ") || "none"}), ${options.kills} worker kills`
)

// The private redis-server is an unref'd child: waiting for it to exit alone would not keep Node running
const keepAlive = setInterval(() => {}, 1_000)
const report = await Effect.runPromise(Effect.scoped(Chaos.run(options)))
clearInterval(keepAlive)
for (const line of Chaos.render(report)) log(line)
const clean = report.lost.length === 0 && report.unexplained.length === 0 && report.drained &&
  report.stats !== undefined && report.stats.ready + report.stats.delayed + report.stats.inFlight === 0 &&
  report.exits.every((exit) => exit.code === 0)
log(clean ? "PASS" : "FAIL")
process.exit(clean ? 0 : 1)
