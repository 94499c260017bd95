import subprocess, shutil, sys
S = "/work/main/packages/memory/.mut/src/internal/store.ts"
orig = open("/work/main/packages/memory/src/internal/store.ts").read()
muts = {
 "LIFO": ("    else lane.push(entry)", "    else lane.unshift(entry)"),
 "no priority": ("    const priority = entry.priority\n", "    const priority = 0\n"),
 "no delay": ("    if (eta > now) {\n      entry.state = DELAYED", "    if (false) {\n      entry.state = DELAYED"),
 "no fencing": ("if (q === undefined || entry === undefined || entry.lease !== delivery.lease) {\n        ;(rejected", "if (q === undefined || entry === undefined) {\n        ;(rejected"),
 "no lapse": ("        if (l.due > now) return\n", "        return\n"),
 "retry no attempt": ("          entry.attempts++\n", ""),
 "release counts attempt": ("        case \"Release\": {\n          this.pushReady(q, entry)", "        case \"Release\": {\n          entry.attempts++\n          this.pushReady(q, entry)"),
 "requeue keeps attempts": ("      entry.attempts = 0\n", ""),
 "no deliveries count": ("        entry.deliveries++\n", ""),
 "extend noop": ("      entry.due = now + leaseMs\n      q.leases.update(entry)", ""),
 "flush keeps dead": ("    q.dead.forEach(gone)\n    q.dead.clear()", ""),
 "max+1": ("    for (let i = 0; i < lanes.length && out.length < max; i++) {", "    max = max + 1\n    for (let i = 0; i < lanes.length && out.length < max; i++) {"),
 "stats no advance": ("    if (q === undefined) return { ready: 0, delayed: 0, inFlight: 0, dead: 0 }\n    this.advance(q, now)", "    if (q === undefined) return { ready: 0, delayed: 0, inFlight: 0, dead: 0 }"),
 "no handoff": ("    if (q.waitHead !== undefined && q.readyCount > 0) this.dispatch(q, now)", ""),
 "ack requeues": ("        case \"Ack\": {\n          entry.state = GONE", "        case \"Ack\": {\n          this.pushReady(q, entry)"),
 "purge ids ignored": ("  purgeDeadLetters(name: string, ids: ReadonlyArray<string> | undefined): number {\n    const q = this.queues.get(name)\n    if (q === undefined) return 0\n    const entries = this.selectDead(q, ids)", "  purgeDeadLetters(name: string, ids: ReadonlyArray<string> | undefined): number {\n    const q = this.queues.get(name)\n    if (q === undefined) return 0\n    const entries = this.selectDead(q, undefined)"),
 "limit ignored": ("      if (out.length >= limit) break\n", ""),
 "retry ignores error": ("          entry.lastError = settlement.error\n", ""),
 "dead at wrong": ("          entry.deadAt = now\n", "          entry.deadAt = 0\n"),
 "lease expiry wrong": ("        entry.due = now + leaseMs\n        entry.seq", "        entry.due = now + leaseMs + 1\n        entry.seq"),
 "cancel swallow": ("        entry.deliveries--\n        this.pushReady(q, entry, true)", ""),
 "waiter ignores deadline": ("    } else if (now >= waiter.deadline || (q.alarmOwner", "    } else if ((q.alarmOwner"),
 "no alarm": ("    const due = q.nextDue()\n    if (due === Infinity) return\n    const owner", "    const due = Infinity\n    if (due === Infinity) return\n    const owner"),
 "token reuse": ("    return `lease-${++this.tokens}`", "    return `lease`"),
}
only = sys.argv[1:]
for name, (a, b) in muts.items():
    if only and name not in only: continue
    if a not in orig:
        print("MISSING", name); continue
    open(S, "w").write(orig.replace(a, b, 1))
    r = subprocess.run("timeout 120 pnpm exec vitest run --config packages/memory/.mut/vitest.config.ts 2>&1 | grep -E 'Tests |×' | head -6", shell=True, capture_output=True, text=True, cwd="/work/main")
    out = r.stdout.replace("\x1b[","").strip()
    import re
    out = re.sub(r"\d+m|\[\d+m|\[\d+;\d+m", "", out)
    print(f"== {name}:\n{out}")
open(S, "w").write(orig)
