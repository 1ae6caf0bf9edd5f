/**
 * `smith alerts [--state S]` lists SLO alerts; `smith alerts ack ID` acknowledges one. Both work on
 * the home's store directly, beside a running `smith serve` (an acknowledgement writes the same
 * alert change and audit record the API does), or on the server `SMITH_URL` names when it is set.
 */
import { SmithError } from '../../core/errors.js';
import { openHomeStore } from '../../engine/home.js';
import {
  acknowledgeAlert,
  ALERT_STATES,
  alertView,
  parseAlertStates,
  type AlertView,
} from '../../observability/alerts.js';
import type { AlertState } from '../../store/store.js';
import { EXIT, type Context } from '../context.js';
import { paint, table, useColor } from '../output.js';
import { remoteClient } from '../remote.js';

function actor(): string {
  return `user:${process.env.USER ?? process.env.LOGNAME ?? 'unknown'}`;
}

function stateColor(state: string): 'red' | 'yellow' | 'green' {
  return state === 'firing' ? 'red' : state === 'acknowledged' ? 'yellow' : 'green';
}

function when(iso: string | null): string {
  return iso === null ? '-' : iso.slice(0, 19).replace('T', ' ');
}

/** Print alerts: a JSON array of alert views with --json, else a table. */
function printAlerts(ctx: Context, alerts: AlertView[], states: AlertState[] | undefined): void {
  if (ctx.json) {
    process.stdout.write(JSON.stringify(alerts) + '\n');
    return;
  }
  if (alerts.length === 0) {
    process.stdout.write(
      states
        ? `no ${states.join(' or ')} alerts\n`
        : 'no alerts (alerts fire when an SLO of smith.yaml burns its error budget; see docs/slos-and-alerts.md)\n',
    );
    return;
  }
  const color = useColor(process.stdout);
  const rows = [['ID', 'STATE', 'SEVERITY', 'SLO', 'FIRED', 'ACKED BY', 'SUMMARY']];
  for (const a of alerts)
    rows.push([
      a.id,
      paint(color, stateColor(a.state), a.state),
      a.severity,
      a.slo,
      when(a.fired_at),
      a.acked_by ?? '-',
      a.summary,
    ]);
  process.stdout.write(table(rows) + '\n');
}

/**
 * `smith alerts [--state firing,acknowledged]`.
 * @returns the exit code
 * @throws SmithError INVALID_ARGUMENT for a state that is not an alert state
 */
export async function alertsCommand(ctx: Context, o: { state?: string }): Promise<number> {
  let states: AlertState[] | undefined;
  if (o.state !== undefined) {
    const parsed = parseAlertStates(o.state);
    if ('bad' in parsed)
      throw new SmithError(
        'INVALID_ARGUMENT',
        `--state ${parsed.bad} is not an alert state; use ${ALERT_STATES.join(', ')} (a comma list)`,
      );
    states = parsed.states;
  }
  const api = remoteClient();
  if (api) {
    const { alerts } = await api.get<{ alerts: AlertView[] }>(
      '/api/v1/alerts',
      states ? { state: states.join(',') } : undefined,
    );
    printAlerts(ctx, alerts, states);
    return EXIT.ok;
  }
  const store = await openHomeStore(ctx.home, { readonly: true });
  try {
    printAlerts(ctx, (await store.listAlerts(states)).map(alertView), states);
    return EXIT.ok;
  } finally {
    await store.close();
  }
}

/**
 * `smith alerts ack ID`: acknowledge a firing alert (an acknowledged one stays as it is).
 * @returns the exit code
 * @throws SmithError ALERT_NOT_FOUND (no such alert) or INVALID_TRANSITION (it resolved): exit 2
 */
export async function alertsAckCommand(ctx: Context, id: string): Promise<number> {
  let view: AlertView;
  let changed: boolean;
  const api = remoteClient();
  if (api) {
    const before = await api.get<AlertView>(`/api/v1/alerts/${encodeURIComponent(id)}`);
    view = await api.post<AlertView>(`/api/v1/alerts/${encodeURIComponent(id)}/ack`);
    changed = before.state !== view.state;
  } else {
    const store = await openHomeStore(ctx.home, { synchronous: ctx.config.store.synchronous });
    try {
      const r = await acknowledgeAlert(store, id, actor());
      view = alertView(r.alert);
      changed = r.changed;
    } finally {
      await store.close();
    }
  }
  if (ctx.json) process.stdout.write(JSON.stringify(view) + '\n');
  else
    process.stdout.write(
      changed
        ? `alert ${view.id} acknowledged (${view.severity}, SLO ${view.slo}); it resolves when the SLO recovers\n`
        : `alert ${view.id} was already acknowledged by ${view.acked_by ?? '?'} at ${when(view.acked_at)}\n`,
    );
  return EXIT.ok;
}
