/**
 * A clock shared by every process on this machine: epoch milliseconds with sub-millisecond resolution.
 * `performance.timeOrigin` is each process's start on the wall clock, so `now()` values compare across processes.
 */
export const now = (): number => performance.timeOrigin + performance.now()

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
