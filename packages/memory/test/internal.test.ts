import { assert, describe, it } from "@effect/vitest"
import { Deque } from "../src/internal/Deque.ts"
import { Heap, type HeapItem } from "../src/internal/Heap.ts"

interface Item extends HeapItem {
  key: number
  readonly name: number
}

/** A deterministic pseudo-random sequence (mulberry32). */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

describe("internal structures", () => {
  it("Deque keeps FIFO order across growth, unshift and wrap-around", () => {
    const deque = new Deque<number>(4)
    const model: Array<number> = []
    const next = random(1)
    for (let i = 0; i < 10_000; i++) {
      const roll = next()
      if (roll < 0.45) {
        deque.push(i)
        model.push(i)
      } else if (roll < 0.6) {
        deque.unshift(i)
        model.unshift(i)
      } else {
        assert.strictEqual(deque.shift(), model.shift())
      }
      assert.strictEqual(deque.length, model.length)
    }
    const rest: Array<number> = []
    deque.forEach((item) => rest.push(item))
    assert.deepStrictEqual(rest, model)
  })

  it("Heap pops in key order after pushes, removals and key updates", () => {
    const heap = new Heap<Item>((a, b) => a.key < b.key || (a.key === b.key && a.name < b.name))
    const live = new Set<Item>()
    const next = random(2)
    for (let i = 0; i < 5_000; i++) {
      const roll = next()
      if (roll < 0.5 || live.size === 0) {
        const item: Item = { key: Math.floor(next() * 100), name: i, heapIndex: -1 }
        heap.push(item)
        live.add(item)
      } else {
        const items = [...live]
        const item = items[Math.floor(next() * items.length)]!
        if (roll < 0.75) {
          heap.remove(item)
          live.delete(item)
          assert.strictEqual(item.heapIndex, -1)
        } else {
          item.key = Math.floor(next() * 100)
          heap.update(item)
        }
      }
      assert.strictEqual(heap.size, live.size)
    }
    const expected = [...live].sort((a, b) => a.key - b.key || a.name - b.name).map((item) => item.name)
    const popped: Array<number> = []
    for (let item = heap.pop(); item !== undefined; item = heap.pop()) popped.push(item.name)
    assert.deepStrictEqual(popped, expected)
  })
})
