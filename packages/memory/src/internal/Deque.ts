const minCapacity = 8

/**
 * A FIFO double-ended queue on a power-of-two ring buffer: amortized O(1) `push`, `unshift` and `shift`, no
 * `Array.shift` copying. Slots are cleared as items leave, and the buffer shrinks by half when it is less than a
 * quarter full, so a drained backlog leaves no large buffer behind.
 *
 * @internal
 */
export class Deque<A> {
  private items: Array<A | undefined>
  private head = 0
  private mask: number
  length = 0

  constructor(capacity = minCapacity) {
    this.items = new Array(capacity)
    this.mask = capacity - 1
  }

  push(item: A): void {
    if (this.length === this.items.length) this.grow()
    this.items[(this.head + this.length) & this.mask] = item
    this.length++
  }

  unshift(item: A): void {
    if (this.length === this.items.length) this.grow()
    this.head = (this.head - 1) & this.mask
    this.items[this.head] = item
    this.length++
  }

  shift(): A | undefined {
    if (this.length === 0) return undefined
    const item = this.items[this.head]
    this.items[this.head] = undefined
    this.head = (this.head + 1) & this.mask
    this.length--
    if (this.items.length > minCapacity && this.length < this.items.length >> 2) this.resize(this.items.length >> 1)
    return item
  }

  /** Removes and returns the first item that satisfies `predicate`, keeping the order of the others. O(n). */
  removeFirst(predicate: (item: A) => boolean): A | undefined {
    const items = this.items, mask = this.mask, head = this.head
    for (let i = 0; i < this.length; i++) {
      const item = items[(head + i) & mask] as A
      if (!predicate(item)) continue
      for (let k = i; k < this.length - 1; k++) items[(head + k) & mask] = items[(head + k + 1) & mask]
      items[(head + this.length - 1) & mask] = undefined
      this.length--
      return item
    }
    return undefined
  }

  clear(): void {
    this.items = new Array(minCapacity)
    this.head = 0
    this.mask = minCapacity - 1
    this.length = 0
  }

  forEach(f: (item: A) => void): void {
    for (let i = 0; i < this.length; i++) f(this.items[(this.head + i) & this.mask] as A)
  }

  private grow(): void {
    this.resize(this.items.length * 2)
  }

  private resize(capacity: number): void {
    const items = this.items
    const next = new Array<A | undefined>(capacity)
    for (let i = 0; i < this.length; i++) next[i] = items[(this.head + i) & this.mask]
    this.items = next
    this.head = 0
    this.mask = capacity - 1
  }
}
