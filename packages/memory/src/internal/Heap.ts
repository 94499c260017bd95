/**
 * An indexed binary min-heap. Each item records its own position (`heapIndex`), so `remove` and `update` are
 * O(log n) without searching and without leaving stale entries behind (no lazy deletion).
 *
 * @internal
 */
export interface HeapItem {
  heapIndex: number
}

/** @internal */
export class Heap<A extends HeapItem> {
  private readonly items: Array<A> = []
  private readonly less: (a: A, b: A) => boolean

  constructor(less: (a: A, b: A) => boolean) {
    this.less = less
  }

  get size(): number {
    return this.items.length
  }

  peek(): A | undefined {
    return this.items[0]
  }

  push(item: A): void {
    item.heapIndex = this.items.length
    this.items.push(item)
    this.up(item.heapIndex)
  }

  pop(): A | undefined {
    const items = this.items
    const top = items[0]
    if (top === undefined) return undefined
    const last = items.pop()!
    if (last !== top) {
      items[0] = last
      last.heapIndex = 0
      this.down(0)
    }
    top.heapIndex = -1
    return top
  }

  remove(item: A): void {
    const index = item.heapIndex
    const items = this.items
    if (index < 0 || items[index] !== item) return
    const last = items.pop()!
    if (last !== item) {
      items[index] = last
      last.heapIndex = index
      this.update(last)
    }
    item.heapIndex = -1
  }

  /** Restores the heap order after `item`'s key changed. */
  update(item: A): void {
    this.up(item.heapIndex)
    this.down(item.heapIndex)
  }

  /** The first item (in no particular order) that satisfies `predicate`. O(n). */
  find(predicate: (item: A) => boolean): A | undefined {
    return this.items.find(predicate)
  }

  /** Calls `f` with every item, in no particular order. */
  forEach(f: (item: A) => void): void {
    const items = this.items
    for (let i = 0; i < items.length; i++) f(items[i]!)
  }

  clear(): void {
    for (const item of this.items) item.heapIndex = -1
    this.items.length = 0
  }

  private up(index: number): void {
    const items = this.items
    const item = items[index]!
    while (index > 0) {
      const parentIndex = (index - 1) >> 1
      const parent = items[parentIndex]!
      if (!this.less(item, parent)) break
      items[index] = parent
      parent.heapIndex = index
      index = parentIndex
    }
    items[index] = item
    item.heapIndex = index
  }

  private down(index: number): void {
    const items = this.items
    const length = items.length
    const item = items[index]!
    while (true) {
      const left = 2 * index + 1
      if (left >= length) break
      const right = left + 1
      let child = left
      if (right < length && this.less(items[right]!, items[left]!)) child = right
      const smallest = items[child]!
      if (!this.less(smallest, item)) break
      items[index] = smallest
      smallest.heapIndex = index
      index = child
    }
    items[index] = item
    item.heapIndex = index
  }
}
