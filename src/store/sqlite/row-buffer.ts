/**
 * Rows waiting to be inserted with multi-row `INSERT … VALUES (…), (…)` statements before a group
 * commit's `COMMIT`. One buffer per table; parameters are kept flat, row after row, in the order
 * of {@link RowBuffer.cols}.
 */

/** The rows of one table buffered during one transaction. */
export class RowBuffer {
  /** The table the rows go to. */
  readonly table: string;
  /** Column names, in the order of each row's parameters. */
  readonly cols: readonly string[];
  /** Parameters of every buffered row, flat (`rows * cols.length` values). */
  params: unknown[] = [];
  /** How many rows are buffered. */
  rows = 0;
  /**
   * Primary keys of the buffered rows (column 0), for tables that a later op of the same
   * transaction may update: such an update must see the row, so the buffer is written first.
   * `undefined` for insert-only tables.
   */
  readonly ids: Set<unknown> | undefined;

  /**
   * @param table - the table name
   * @param cols - its columns, in parameter order (the primary key first when `trackIds`)
   * @param trackIds - keep the primary keys of buffered rows in {@link RowBuffer.ids}
   */
  constructor(table: string, cols: readonly string[], trackIds: boolean) {
    this.table = table;
    this.cols = cols;
    this.ids = trackIds ? new Set() : undefined;
  }

  /**
   * Note that one row was appended to {@link RowBuffer.params} (the caller pushed its values).
   * @param id - its primary key (recorded when ids are tracked)
   */
  added(id: unknown): void {
    this.rows++;
    this.ids?.add(id);
  }

  /**
   * Drop the rows after the first `rows` (those of a change that did not apply).
   * @param rows - how many rows to keep
   */
  truncate(rows: number): void {
    if (rows >= this.rows) return;
    const w = this.cols.length;
    if (this.ids) for (let r = rows; r < this.rows; r++) this.ids.delete(this.params[r * w]);
    this.params.length = rows * w;
    this.rows = rows;
  }

  /** Drop every row (after they were written, or when the transaction rolled back). */
  clear(): void {
    if (this.rows === 0) return;
    this.params = [];
    this.rows = 0;
    this.ids?.clear();
  }
}
