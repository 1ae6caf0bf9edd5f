/**
 * Terminal output helpers: tables, durations, colors (only on a TTY and without NO_COLOR).
 */

/** True when stream `s` is a terminal that takes colors. */
export function useColor(s: NodeJS.WriteStream): boolean {
  return Boolean(s.isTTY) && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
}

const CODES: Record<string, string> = {
  red: '31',
  green: '32',
  yellow: '33',
  blue: '34',
  gray: '90',
  bold: '1',
};

/** Wrap `text` in an ANSI color when `on`. */
export function paint(on: boolean, color: keyof typeof CODES, text: string): string {
  return on ? `\u001b[${CODES[color]}m${text}\u001b[0m` : text;
}

/** The color of a task or workflow state. */
export function stateColor(state: string): keyof typeof CODES {
  switch (state) {
    case 'completed':
      return 'green';
    case 'failed':
    case 'rejected':
      return 'red';
    case 'canceled':
    case 'paused':
      return 'yellow';
    case 'running':
    case 'judging':
      return 'blue';
    default:
      return 'gray';
  }
}

/** `1.2s`, `340ms`, `2m05s`. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return `${m}m${String(s).padStart(2, '0')}s`;
}

/** The first line of `text`, at most `max` characters. */
export function firstLine(text: string | null | undefined, max = 60): string {
  if (!text) return '';
  const line = text.trim().split('\n')[0] ?? '';
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

// eslint-disable-next-line no-control-regex -- ANSI escape sequences are control characters by definition
const ANSI = /\u001b\[[0-9;]*m/g;

/** Render rows as an aligned table (the first row is the header). */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows)
    r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.replace(ANSI, '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) =>
          i === r.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - c.replace(ANSI, '').length),
        )
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export { taskDuration } from '../core/views.js';

/**
 * Spend for tables: `$0.0123 · 15.2k tok`, `-` when nothing was spent.
 *
 * @param usd - US dollars
 * @param tokens - tokens
 */
export function formatSpend(usd: number, tokens: number): string {
  if (usd <= 0 && tokens <= 0) return '-';
  const tok =
    tokens >= 1_000_000
      ? `${(tokens / 1e6).toFixed(1)}M`
      : tokens >= 1000
        ? `${(tokens / 1000).toFixed(1)}k`
        : String(tokens);
  return usd > 0 ? `$${usd.toFixed(4)} · ${tok} tok` : `${tok} tok`;
}
