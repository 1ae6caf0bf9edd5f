/**
 * The ready queue: tasks whose dependencies are met, ordered by priority (1 highest .. 10 lowest)
 * and first-in-first-out within a priority. O(1) push, pop and removal (lazy).
 */

/** Lowest and highest priorities. */
export const MIN_PRIORITY = 1;
export const MAX_PRIORITY = 10;

interface Entry {
  id: string;
  seq: number;
  removed: boolean;
}

class Fifo {
  private items: Entry[] = [];
  private head = 0;

  push(e: Entry): void {
    this.items.push(e);
  }

  /** The first live entry, dropping removed ones. */
  peek(): Entry | undefined {
    while (this.head < this.items.length) {
      const e = this.items[this.head]!;
      if (!e.removed) return e;
      this.head++;
    }
    this.compact();
    return undefined;
  }

  shift(): Entry | undefined {
    const e = this.peek();
    if (e) {
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.items.length) this.compact();
    }
    return e;
  }

  private compact(): void {
    this.items = this.items.slice(this.head);
    this.head = 0;
  }
}

/**
 * A priority queue of task ids.
 * @example
 * const q = new ReadyQueue(); q.push('t_a', 5); q.push('t_b', 1); q.pop(); // 't_b'
 */
export class ReadyQueue {
  private readonly buckets: Fifo[] = [];
  private readonly index = new Map<string, Entry>();
  private seq = 0;

  constructor() {
    for (let p = MIN_PRIORITY; p <= MAX_PRIORITY; p++) this.buckets.push(new Fifo());
  }

  /** Number of queued ids. */
  get size(): number {
    return this.index.size;
  }

  /** True when `id` is queued. */
  has(id: string): boolean {
    return this.index.has(id);
  }

  /**
   * Add `id` at `priority` (clamped to 1..10). A second push of a queued id is ignored.
   * @param id - task id
   * @param priority - 1 (highest) .. 10
   * @param seq - arrival order shared across queues (default: this queue's own counter)
   */
  push(id: string, priority: number, seq: number = this.seq++): void {
    if (this.index.has(id)) return;
    const e: Entry = { id, seq, removed: false };
    this.index.set(id, e);
    this.bucket(priority).push(e);
  }

  /** The highest-priority, oldest entry without removing it: its id, priority and arrival order. */
  peek(): { id: string; priority: number; seq: number } | undefined {
    for (let i = 0; i < this.buckets.length; i++) {
      const e = this.buckets[i]!.peek();
      if (e) return { id: e.id, priority: i + MIN_PRIORITY, seq: e.seq };
    }
    return undefined;
  }

  /** Remove and return the highest-priority, oldest id. */
  pop(): string | undefined {
    for (const b of this.buckets) {
      const e = b.shift();
      if (e) {
        this.index.delete(e.id);
        return e.id;
      }
    }
    return undefined;
  }

  /** Remove `id` if queued. @returns whether it was queued */
  remove(id: string): boolean {
    const e = this.index.get(id);
    if (!e) return false;
    e.removed = true;
    this.index.delete(id);
    return true;
  }

  private bucket(priority: number): Fifo {
    const p = Math.min(MAX_PRIORITY, Math.max(MIN_PRIORITY, Math.round(priority)));
    return this.buckets[p - MIN_PRIORITY]!;
  }
}
