import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sqliteValue, StatementCache } from './statement-cache.js';

interface Db {
  t: { id: string; n: number | null; ok: number };
}

describe('StatementCache', () => {
  let db: Database.Database;
  let k: Kysely<Db>;

  beforeEach(() => {
    db = new Database(':memory:');
    db.exec('create table t (id text primary key, n integer, ok integer not null)');
    k = new Kysely<Db>({ dialect: new SqliteDialect({ database: db }) });
  });
  afterEach(() => {
    db.close();
  });

  it('compiles a shape once and reuses the statement with new parameters', () => {
    const cache = new StatementCache(db);
    let builds = 0;
    const insert = (id: string, n: number | null): void => {
      const params = [id, n, 1];
      cache
        .get('insert', params, () => {
          builds++;
          return k.insertInto('t').values({ id, n, ok: 1 });
        })
        .run(params);
    };
    insert('a', 1);
    insert('b', null);
    insert('c', 3);
    expect(builds).toBe(1);
    expect(cache.size).toBe(1);
    expect(db.prepare('select id, n from t order by id').all()).toEqual([
      { id: 'a', n: 1 },
      { id: 'b', n: null },
      { id: 'c', n: 3 },
    ]);
  });

  it('refuses a shape whose parameters are not in the order Kysely compiled', () => {
    const cache = new StatementCache(db);
    expect(() =>
      cache.get('update', [1, 'a'], () => k.updateTable('t').set({ n: 1 }).where('id', '=', 'a')),
    ).not.toThrow();
    expect(() =>
      cache.get('update-swapped', ['a', 1], () => k.updateTable('t').set({ n: 1 }).where('id', '=', 'a')),
    ).toThrow(/do not match Kysely's/);
    expect(() =>
      cache.get('update-short', [1], () => k.updateTable('t').set({ n: 1 }).where('id', '=', 'a')),
    ).toThrow(/do not match Kysely's/);
    expect(cache.size).toBe(1);
  });

  it('binds undefined as NULL and booleans as 1 / 0', () => {
    expect(sqliteValue(undefined)).toBeNull();
    expect(sqliteValue(true)).toBe(1);
    expect(sqliteValue(false)).toBe(0);
    expect(sqliteValue('x')).toBe('x');
    expect(sqliteValue(0)).toBe(0);
  });
});
