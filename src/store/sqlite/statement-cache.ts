/**
 * Prepared statements compiled by Kysely once per statement shape.
 *
 * Kysely stays the one place SQL text comes from, but building and compiling a query costs more
 * than running it, so the store computes a cheap shape key per statement (op kind, the set of
 * columns, which guards, the length of an `IN` list, the number of rows …) and the parameter array
 * itself, in the order the SQL expects. On the first use of a shape the query is compiled by Kysely
 * with the real values and Kysely's parameters must equal the store's array, value for value, or
 * the statement is refused: the order can never drift from the SQL.
 */
import type Database from 'better-sqlite3';
import type { CompiledQuery } from 'kysely';

/** Anything Kysely can compile (a query builder). */
export interface Compilable {
  /** Kysely's compiled SQL text and parameters. */
  compile(): CompiledQuery;
}

/**
 * The value bound for `v`, as the store binds it: `undefined` becomes NULL and booleans become
 * 1 / 0 (SQLite has no boolean type).
 * @param v - a parameter value
 * @returns the value to bind
 */
export function sqliteValue(v: unknown): unknown {
  if (v === undefined) return null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v;
}

/** A cache of better-sqlite3 statements keyed by statement shape. */
export class StatementCache {
  private readonly db: Database.Database;
  private readonly stmts = new Map<string, Database.Statement>();

  /**
   * @param db - the connection statements are prepared on
   */
  constructor(db: Database.Database) {
    this.db = db;
  }

  /** How many shapes are prepared. */
  get size(): number {
    return this.stmts.size;
  }

  /**
   * The prepared statement of shape `key`, compiled (once) from `build()`.
   * @param key - identifies the SQL text: equal keys must always compile to equal SQL
   * @param params - the parameters the caller will bind, already mapped by {@link sqliteValue}
   * @param build - builds the Kysely query from the same values (called only on the first use)
   * @returns the statement; bind it with `params`
   * @throws Error when Kysely's parameters differ from `params` (a bug in the caller's order)
   */
  get(key: string, params: readonly unknown[], build: () => Compilable): Database.Statement {
    let s = this.stmts.get(key);
    if (s === undefined) {
      const q = build().compile();
      assertSameParameters(key, q, params);
      s = this.db.prepare(q.sql);
      this.stmts.set(key, s);
    }
    return s;
  }

  /** Forget every statement (before the connection closes). */
  clear(): void {
    this.stmts.clear();
  }
}

function assertSameParameters(key: string, q: CompiledQuery, params: readonly unknown[]): void {
  const kp = q.parameters;
  let same = kp.length === params.length;
  for (let i = 0; same && i < kp.length; i++) same = Object.is(sqliteValue(kp[i]), params[i]);
  if (!same) {
    throw new Error(
      `internal error in the SQLite store: the parameters of statement shape "${key}" do not match Kysely's ` +
        `(${kp.length} from Kysely, ${params.length} from the store) for: ${q.sql}`,
    );
  }
}
