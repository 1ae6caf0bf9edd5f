/**
 * Live progress of a run on a terminal: one line per running task (state, progress, message) and a
 * total bar, redrawn in place at most 10 times a second. Off a terminal, one line per state change.
 */
import type { Engine } from '../engine/engine.js';
import type { TaskState } from '../core/states.js';
import { formatDuration, paint, stateColor, useColor } from './output.js';

interface Row {
  key: string;
  state: TaskState;
  pct?: number;
  message?: string;
  startedAt?: number;
}

/** Shows the progress of one or more workflows of an engine on `out` (stderr by default). */
export class ProgressView {
  private readonly rows = new Map<string, Row>();
  private readonly out: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly color: boolean;
  private total = 0;
  private ended: Record<string, number> = {};
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly started = Date.now();
  private readonly detach: () => void;

  /**
   * @param engine - the engine to watch
   * @param total - number of tasks in the watched workflows
   * @param out - where to draw (default stderr)
   */
  constructor(engine: Engine, total: number, out: NodeJS.WriteStream = process.stderr) {
    this.out = out;
    this.tty = Boolean(out.isTTY);
    this.color = useColor(out);
    this.total = total;
    const stateListener = ({ task, to }: { task: { id: string; key: string }; to: TaskState }): void => {
      const row = this.rows.get(task.id) ?? { key: task.key, state: to };
      row.state = to;
      if (to === 'running' && row.startedAt === undefined) row.startedAt = Date.now();
      if (to === 'completed' || to === 'failed' || to === 'canceled' || to === 'rejected') {
        this.rows.delete(task.id);
        this.ended[to] = (this.ended[to] ?? 0) + 1;
      } else {
        this.rows.set(task.id, row);
      }
      if (!this.tty) this.out.write(`${new Date().toISOString().slice(11, 19)} ${task.key} ${to}\n`);
    };
    const progressListener = ({
      taskId,
      pct,
      message,
    }: {
      taskId: string;
      pct?: number;
      message?: string;
    }): void => {
      const row = this.rows.get(taskId);
      if (!row) return;
      if (pct !== undefined) row.pct = pct;
      if (message !== undefined) row.message = message;
    };
    engine.on('task:state', stateListener);
    engine.on('task:progress', progressListener);
    this.detach = () => {
      engine.off('task:state', stateListener);
      engine.off('task:progress', progressListener);
    };
    if (this.tty) {
      this.timer = setInterval(() => this.draw(), 100);
      this.timer.unref();
    }
  }

  private draw(): void {
    const lines: string[] = [];
    const running = [...this.rows.values()].filter((r) => r.state !== 'pending' && r.state !== 'queued');
    const width = Math.max(10, Math.min(40, (this.out.columns ?? 80) - 50));
    for (const r of running.slice(0, 12)) {
      const pct = r.pct === undefined ? '' : `${String(Math.round(r.pct)).padStart(3)}%`;
      const since = r.startedAt ? formatDuration(Date.now() - r.startedAt) : '';
      const msg = (r.message ?? '').slice(0, Math.max(0, (this.out.columns ?? 80) - 45));
      lines.push(
        `  ${paint(this.color, stateColor(r.state), r.state.padEnd(9))} ${r.key.padEnd(16).slice(0, 16)} ${pct.padStart(4)} ${since.padStart(6)}  ${msg}`,
      );
    }
    if (running.length > 12) lines.push(`  … and ${running.length - 12} more running`);
    const done = Object.values(this.ended).reduce((a, b) => a + b, 0);
    const filled = this.total > 0 ? Math.round((done / this.total) * width) : 0;
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const parts = Object.entries(this.ended).map(([k, v]) => paint(this.color, stateColor(k), `${v} ${k}`));
    lines.push(
      `  ${bar} ${done}/${this.total}  ${parts.join(', ')}  ${formatDuration(Date.now() - this.started)}`,
    );
    let s = '';
    if (this.drawn > 0) s += `\u001b[${this.drawn}A`;
    s += lines.map((l) => `\u001b[2K${l}`).join('\n') + '\n';
    if (this.drawn > lines.length)
      s += '\u001b[2K\n'.repeat(this.drawn - lines.length) + `\u001b[${this.drawn - lines.length}A`;
    this.out.write(s);
    this.drawn = lines.length;
  }

  /** Stop drawing (a final frame is drawn on a terminal). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.tty) this.draw();
    this.detach();
  }
}
