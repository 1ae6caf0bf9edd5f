import { describe, expect, it } from 'vitest';
import { ReadyQueue } from './queue.js';

describe('ReadyQueue', () => {
  it('pops by priority, FIFO within a priority', () => {
    const q = new ReadyQueue();
    q.push('a', 5);
    q.push('b', 1);
    q.push('c', 5);
    q.push('d', 10);
    q.push('e', 1);
    expect([q.pop(), q.pop(), q.pop(), q.pop(), q.pop(), q.pop()]).toEqual([
      'b',
      'e',
      'a',
      'c',
      'd',
      undefined,
    ]);
  });

  it('removes queued ids and ignores duplicates', () => {
    const q = new ReadyQueue();
    q.push('a', 3);
    q.push('a', 3);
    q.push('b', 3);
    expect(q.size).toBe(2);
    expect(q.remove('a')).toBe(true);
    expect(q.remove('a')).toBe(false);
    expect(q.peek()).toMatchObject({ id: 'b', priority: 3 });
    expect(q.pop()).toBe('b');
    expect(q.size).toBe(0);
  });

  it('clamps priorities to 1..10 and keeps order across many items', () => {
    const q = new ReadyQueue();
    for (let i = 0; i < 5000; i++) q.push(`x${i}`, i % 2 === 0 ? 0 : 42);
    const out: string[] = [];
    for (let id = q.pop(); id !== undefined; id = q.pop()) out.push(id);
    expect(out.length).toBe(5000);
    expect(out[0]).toBe('x0');
    expect(out[2499]).toBe('x4998');
    expect(out[2500]).toBe('x1');
  });
});
