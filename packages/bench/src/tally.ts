/**
 * Counts handled jobs by index, so a scenario can prove that every job ran exactly once.
 */
export class Tally {
  readonly expected: number
  count = 0
  duplicates = 0
  outOfRange = 0
  private readonly seen: Uint8Array
  private readonly waiters: Array<() => void> = []

  constructor(expected: number) {
    this.expected = expected
    this.seen = new Uint8Array(expected)
  }

  readonly mark = (i: number): void => {
    if (!Number.isInteger(i) || i < 0 || i >= this.expected) {
      this.outOfRange++
      return
    }
    if (this.seen[i] === 1) {
      this.duplicates++
      return
    }
    this.seen[i] = 1
    if (++this.count === this.expected) { for (const wake of this.waiters.splice(0)) wake() }
  }

  /** Resolves once every expected job was seen; rejects after `timeoutMs` with the count so far. */
  complete(timeoutMs: number): Promise<void> {
    if (this.count === this.expected) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out after ${timeoutMs} ms: ${this.count} of ${this.expected} jobs handled`)),
        timeoutMs
      )
      this.waiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  /** Throws unless every job ran exactly once. */
  verify(what: string): void {
    if (this.count !== this.expected || this.duplicates > 0 || this.outOfRange > 0) {
      throw new Error(
        `${what}: handled ${this.count} of ${this.expected} distinct jobs, ${this.duplicates} duplicates, `
          + `${this.outOfRange} unknown`
      )
    }
  }
}
