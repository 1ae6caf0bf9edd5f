/**
 * Chat over HTTP and WebSocket: sessions bound to an agent, messages numbered and recorded, the
 * agent's reply streamed as deltas and recorded, reconnects that resume by seq, a restart on the
 * same home, keys and roles on the socket, bad frames. Real server on loopback, real home, real
 * agent processes, the `ws` package as the client.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { openServer, startServe, type ServeProcess, type TestServer } from './fixtures/smith-server.js';
import { Sandbox, shAgent, waitFor } from './fixtures/smith-cli.js';

/**
 * A chat agent: reads its task JSON, answers the new message (the prompt's last part) line by
 * line with short pauses (so deltas stream before the end), and says how many earlier messages
 * its prompt held. After its first line it waits until the file named by its argument exists.
 */
const CHAT_AGENT = `
import { existsSync } from 'node:fs';
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', async () => {
  const prompt = JSON.parse(input).prompt;
  const marker = 'The new message from the user, to answer now:';
  const message = prompt.slice(prompt.indexOf(marker) + marker.length).trim();
  const remembered = prompt.split('\\n').filter((l) => /^(user|agent|system): /.test(l)).length;
  const pause = () => new Promise((r) => setTimeout(r, 150));
  console.log('heard: ' + message);
  while (!existsSync(process.argv[2])) await pause();
  await pause();
  console.log('remembered: ' + remembered);
  await pause();
  console.log('done');
});
`;

interface Frame {
  type: string;
  seq?: number;
  role?: string;
  content?: string;
  time?: string;
  data?: Record<string, unknown>;
  reply_to?: number;
  text?: string;
  code?: string;
  message?: string;
}

interface MessageJson {
  seq: number;
  role: string;
  content: string;
  time: string;
  data: Record<string, unknown>;
}

interface SessionJson {
  id: string;
  agent: string;
  title: string;
  last_seq: number;
  messages: MessageJson[];
  next_after: number | null;
}

/** A connected chat socket and every frame it received. */
interface Client {
  ws: WebSocket;
  frames: Frame[];
  closed: Promise<{ code: number; reason: string }>;
  send(frame: unknown): void;
  /** Wait for the first frame at or after index `from` that `match` accepts. */
  next(match: (f: Frame) => boolean, what: string, from?: number): Promise<Frame>;
  /** The message frames received, as seqs. */
  seqs(): number[];
}

let box: Sandbox;
/** The in-process server, when the test runs one. */
let srv: TestServer | undefined;
/** The `smith serve` process, when the test runs one. */
let serve: ServeProcess | undefined;
/** Where requests go, and the admin key they carry by default. */
let api: { url: string; token: string };
let yaml: string;
/** A file the talker agent waits for before answering, when it exists at the start of a task. */
let gate: string;
const clients: WebSocket[] = [];

beforeEach(() => {
  box = new Sandbox('smith-chat-');
  const agentFile = box.write('chat-agent.mjs', CHAT_AGENT);
  gate = join(box.dir, 'gate');
  writeFileSync(gate, '');
  yaml = [
    'agents:',
    '  talker:',
    '    runtime: process',
    `    command: ["node", ${JSON.stringify(agentFile)}, ${JSON.stringify(gate)}]`,
    '    capabilities: [chat]',
    '    concurrency: 2',
    '    kill_grace: 1s',
    ...shAgent('sh', ['shell'], 2),
    '',
  ].join('\n');
});
afterEach(async () => {
  for (const ws of clients.splice(0)) ws.terminate();
  await srv?.close();
  srv = undefined;
  await serve?.stop();
  serve = undefined;
  await box.cleanup();
});

/** Build the server in this process on the sandbox's home. */
async function openInProcess(): Promise<TestServer> {
  const s = await openServer(box, yaml);
  srv = s;
  api = { url: s.url, token: s.token };
  return s;
}

/** fetch `path` on the server with the admin key unless `token` is given ('' for none). */
function call(path: string, init: RequestInit & { token?: string; json?: unknown } = {}): Promise<Response> {
  const { token, json, ...rest } = init;
  const headers = new Headers(rest.headers);
  const t = token ?? api.token;
  if (t !== '') headers.set('authorization', `Bearer ${t}`);
  if (json !== undefined) headers.set('content-type', 'application/json');
  return fetch(api.url + path, {
    ...rest,
    headers,
    ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
  });
}

async function body<T>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

function wsUrl(path: string): string {
  return api.url.replace(/^http/, 'ws') + path;
}

async function newSession(agent = 'talker', title?: string): Promise<string> {
  const res = await call('/api/v1/chat/sessions', {
    method: 'POST',
    json: { agent, ...(title !== undefined ? { title } : {}) },
  });
  expect(res.status).toBe(201);
  return (await body<{ id: string }>(res)).id;
}

async function connect(
  id: string,
  opts: { token?: string; after?: number; protocols?: string[] } = {},
): Promise<Client> {
  const url = wsUrl(
    `/api/v1/chat/sessions/${id}/ws${opts.after !== undefined ? `?after=${opts.after}` : ''}`,
  );
  const token = opts.token ?? api.token;
  const ws = new WebSocket(url, opts.protocols ?? [], {
    ...(opts.protocols ? {} : { headers: { authorization: `Bearer ${token}` } }),
  });
  clients.push(ws);
  const frames: Frame[] = [];
  ws.on('message', (data) => frames.push(JSON.parse(String(data)) as Frame));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    ws,
    frames,
    closed,
    send: (frame) => ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    next: (match, what, from = 0) => waitFor(what, () => frames.slice(from).find(match), 30_000, 20),
    seqs: () => frames.filter((f) => f.type === 'message').map((f) => f.seq!),
  };
}

/** The status and JSON body a refused WebSocket handshake got. */
async function refused(
  id: string,
  headers: Record<string, string>,
  query = '',
): Promise<{ status: number; body: { code: string; message: string } }> {
  const ws = new WebSocket(wsUrl(`/api/v1/chat/sessions/${id}/ws${query}`), { headers });
  clients.push(ws);
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { code: string; message: string } });
      });
    });
    ws.on('open', () => reject(new Error('the handshake was accepted')));
    ws.on('error', () => undefined);
  });
}

async function session(id: string, query = ''): Promise<SessionJson> {
  const res = await call(`/api/v1/chat/sessions/${id}${query}`);
  expect(res.status).toBe(200);
  return body<SessionJson>(res);
}

/** Wait until the session holds at least `n` messages; @returns them. */
async function messagesOf(id: string, n: number): Promise<MessageJson[]> {
  return waitFor(`chat session ${id} to hold ${n} messages`, async () => {
    const s = await session(id);
    return s.messages.length >= n ? s.messages : undefined;
  });
}

const isMessage = (seq: number) => (f: Frame) => f.type === 'message' && f.seq === seq;

describe('chat over a WebSocket', () => {
  beforeEach(openInProcess);

  it("echoes a message with seq 1, streams the reply as deltas, then records the agent's reply as seq 2", async () => {
    const id = await newSession();
    const c = await connect(id);
    c.send({ type: 'message', content: 'hello there' });
    const echo = await c.next(isMessage(1), 'the echo');
    expect(echo).toMatchObject({ role: 'user', content: 'hello there' });
    expect(new Date(echo.time!).toISOString()).toBe(echo.time);
    const reply = await c.next(isMessage(2), 'the reply');
    expect(reply.role).toBe('agent');
    expect(reply.content).toBe('heard: hello there\nremembered: 0\ndone');
    expect(reply.data).toMatchObject({ reply_to: 1, state: 'completed' });
    expect(String(reply.data!.task_id)).toMatch(/^t_/);

    // the deltas came between the echo and the reply, and add up to the reply
    const at = (f: Frame): number => c.frames.indexOf(f);
    const deltas = c.frames.filter((f) => f.type === 'delta');
    expect(deltas.length).toBeGreaterThanOrEqual(3);
    for (const d of deltas) {
      expect(d.reply_to).toBe(1);
      expect(at(d)).toBeGreaterThan(at(echo));
      expect(at(d)).toBeLessThan(at(reply));
    }
    expect(deltas.map((d) => d.text).join('')).toBe(`${reply.content}\n`);

    // the reply task is a real task of the agent, and the record matches what was streamed
    const task = await body<{ key: string; agent: string; prompt: string; state: string }>(
      await call(`/api/v1/tasks/${String(reply.data!.task_id)}`),
    );
    expect(task).toMatchObject({ key: 'chat', agent: 'talker', state: 'completed' });
    expect(task.prompt).toContain('hello there');
    const recorded = await session(id);
    expect(recorded.last_seq).toBe(2);
    expect(recorded.messages.map((m) => [m.seq, m.role, m.content])).toEqual([
      [1, 'user', 'hello there'],
      [2, 'agent', reply.content],
    ]);
  });

  it('answers the messages of a session one at a time, in order, each prompt holding the conversation so far', async () => {
    const id = await newSession();
    const c = await connect(id);
    c.send({ type: 'message', content: 'one' });
    c.send({ type: 'message', content: 'two' });
    const all = await messagesOf(id, 4);
    const users = all.filter((m) => m.role === 'user');
    const replies = all.filter((m) => m.role === 'agent');
    expect(users.map((m) => m.content)).toEqual(['one', 'two']);
    expect(replies.map((m) => m.data.reply_to)).toEqual([users[0]!.seq, users[1]!.seq]);
    expect(replies[0]!.content).toBe('heard: one\nremembered: 0\ndone');
    // the second prompt held "one" and its reply, not the second message twice
    expect(replies[1]!.content).toBe('heard: two\nremembered: 2\ndone');
    await c.next(isMessage(4), 'the last reply on the socket');
    expect(c.seqs()).toEqual([1, 2, 3, 4]);
  });

  it('sends a reconnecting client every message after its seq exactly once, the reply that finished while it was away included', async () => {
    const id = await newSession();
    const first = await connect(id);
    first.send({ type: 'message', content: 'are you there' });
    await first.next(isMessage(1), 'the echo');
    first.ws.close();
    await first.closed;
    // away: the reply still comes, and another message is sent over HTTP
    await messagesOf(id, 2);
    const posted = await call(`/api/v1/chat/sessions/${id}/messages`, {
      method: 'POST',
      json: { content: 'while away' },
    });
    expect(posted.status).toBe(202);
    await messagesOf(id, 4);

    const again = await connect(id, { after: 1 });
    await again.next(isMessage(4), 'the backlog');
    expect(again.seqs()).toEqual([2, 3, 4]);
    expect(again.frames.find(isMessage(2))).toMatchObject({ role: 'agent', data: { reply_to: 1 } });
    // then live ones, none twice
    again.send({ type: 'message', content: 'back again' });
    await again.next(isMessage(6), 'the live reply');
    expect(again.seqs()).toEqual([2, 3, 4, 5, 6]);

    // a resume frame asks again from a seq on the same socket
    const from = again.frames.length;
    again.send({ type: 'resume', after: 3 });
    await again.next(isMessage(6), 'the resumed backlog', from);
    expect(
      again.frames
        .slice(from)
        .filter((f) => f.type === 'message')
        .map((f) => f.seq),
    ).toEqual([4, 5, 6]);

    // a cursor past the end counts from the real end: the next message is not skipped
    const ahead = await connect(id, { after: 99 });
    ahead.send({ type: 'message', content: 'from the future' });
    await ahead.next(isMessage(8), 'the reply after a cursor past the end');
    expect(ahead.seqs()).toEqual([7, 8]);
  });

  it('keeps the messages over a restart of the server on the same home, and goes on numbering', async () => {
    const id = await newSession('talker', 'before the restart');
    const posted = await call(`/api/v1/chat/sessions/${id}/messages`, {
      method: 'POST',
      json: { content: 'remember me' },
    });
    expect(posted.status).toBe(202);
    const before = await messagesOf(id, 2);
    await srv!.close();
    srv = undefined;
    await openInProcess();

    const after = await session(id);
    expect(after).toMatchObject({ id, agent: 'talker', title: 'before the restart', last_seq: 2 });
    expect(after.messages).toEqual(before);
    const c = await connect(id);
    await c.next(isMessage(2), 'the recorded messages');
    c.send({ type: 'message', content: 'still there?' });
    const reply = await c.next(isMessage(4), 'the reply after the restart');
    expect(reply.content).toBe('heard: still there?\nremembered: 2\ndone');
    expect(c.seqs()).toEqual([1, 2, 3, 4]);
  });

  it('answers bad frames with error frames and keeps the socket open, until too many come in a row', async () => {
    const id = await newSession();
    const c = await connect(id);
    const cases: [unknown, string][] = [
      ['{not json', 'INVALID_JSON'],
      [{ type: 'shout', content: 'x' }, 'UNKNOWN_TYPE'],
      [{ content: 'no type' }, 'INVALID_FRAME'],
      [{ type: 'message' }, 'INVALID_FRAME'],
      [{ type: 'message', content: '' }, 'INVALID_FRAME'],
      [{ type: 'message', content: 'x', extra: 1 }, 'INVALID_FRAME'],
      [{ type: 'resume', after: -1 }, 'INVALID_FRAME'],
      [{ type: 'message', content: 'y'.repeat(100_001) }, 'CONTENT_TOO_LARGE'],
      [JSON.stringify({ type: 'message', content: 'z'.repeat(1_100_000) }), 'FRAME_TOO_LARGE'],
    ];
    for (const [i, [frame, code]] of cases.entries()) {
      // a good frame between them: bad frames in a row are what closes a socket
      if (i === 5) c.send({ type: 'resume', after: 0 });
      const from = c.frames.length;
      c.send(frame);
      const err = await c.next((f) => f.type === 'error', `the error frame for ${code}`, from);
      expect(err.code).toBe(code);
      expect(err.message!.length).toBeGreaterThan(15);
    }
    const from = c.frames.length;
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await c.next((f) => f.type === 'error', 'the binary error', from)).code).toBe('BINARY_FRAME');
    // still open: a good frame works
    c.send({ type: 'message', content: 'still here' });
    expect(await c.next(isMessage(1), 'the echo after bad frames')).toMatchObject({ content: 'still here' });

    // ten bad frames in a row close the socket (policy violation)
    for (let i = 0; i < 10; i++) c.send('nope');
    expect((await c.closed).code).toBe(1008);
    // a frame larger than the socket takes at all closes it at once
    const big = await connect(id);
    big.send(JSON.stringify({ type: 'message', content: 'w'.repeat(5 * 1024 * 1024) }));
    expect((await big.closed).code).toBe(1009);
  });
});

describe('chat keys and roles', () => {
  beforeEach(openInProcess);

  it('refuses the socket without a key (401), with a viewer key (403) and for an unknown session (404), with JSON bodies', async () => {
    const id = await newSession();
    const viewer = await srv!.key('viewer');
    const routes = srv!.app.routeTable.filter((r) => r.url.startsWith('/api/v1/chat/'));
    expect(routes.length).toBeGreaterThanOrEqual(5);
    for (const r of routes) {
      const res = await call(r.url.replace(':id', id), { method: r.method, token: '' });
      expect(res.status, `${r.method} ${r.url}`).toBe(401);
      expect((await body<{ code: string }>(res)).code).toBe('UNAUTHENTICATED');
    }
    const none = await refused(id, {});
    expect(none).toMatchObject({ status: 401, body: { code: 'UNAUTHENTICATED' } });
    const denied = await refused(id, { authorization: `Bearer ${viewer}` });
    expect(denied.status).toBe(403);
    expect(denied.body.code).toBe('FORBIDDEN');
    expect(denied.body.message).toMatch(/operator role/);
    const unknown = await refused('c_nope', { authorization: `Bearer ${api.token}` });
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('CHAT_SESSION_NOT_FOUND');
    expect(unknown.body.message).toContain('c_nope');
    const badCursor = await refused(id, { authorization: `Bearer ${api.token}` }, '?after=-1');
    expect(badCursor.status).toBe(400);
    expect(badCursor.body.message).toContain('after');
    // a plain GET is told to upgrade
    const plain = await call(`/api/v1/chat/sessions/${id}/ws`);
    expect(plain.status).toBe(426);
    expect((await body<{ code: string }>(plain)).code).toBe('UPGRADE_REQUIRED');

    // a viewer reads but cannot send or start a session
    expect((await call(`/api/v1/chat/sessions/${id}`, { token: viewer })).status).toBe(200);
    expect((await call('/api/v1/chat/sessions', { token: viewer })).status).toBe(200);
    const send = await call(`/api/v1/chat/sessions/${id}/messages`, {
      method: 'POST',
      token: viewer,
      json: { content: 'hi' },
    });
    expect(send.status).toBe(403);
    const start = await call('/api/v1/chat/sessions', {
      method: 'POST',
      token: viewer,
      json: { agent: 'talker' },
    });
    expect(start.status).toBe(403);
    expect((await session(id)).messages).toEqual([]);
  });

  it('takes the key as a subprotocol (for browsers) and answers with the chat subprotocol', async () => {
    const id = await newSession();
    const operator = await srv!.key('operator');
    const c = await connect(id, { protocols: ['smith.chat.v1', `smith.bearer.${operator}`] });
    expect(c.ws.protocol).toBe('smith.chat.v1');
    c.send({ type: 'message', content: 'from a browser' });
    const echo = await c.next(isMessage(1), 'the echo');
    expect(String(echo.data!.from)).toMatch(/^key:/);
    const bad = await refused(id, { 'sec-websocket-protocol': 'smith.chat.v1, smith.bearer.not-a-key' });
    expect(bad.status).toBe(401);
  });
});

describe('chat over HTTP', () => {
  beforeEach(openInProcess);

  it('creates, lists and reads sessions, takes a message with 202, and pages the messages by seq', async () => {
    const unknown = await call('/api/v1/chat/sessions', { method: 'POST', json: { agent: 'ghost' } });
    expect(unknown.status).toBe(404);
    const u = await body<{ code: string; message: string }>(unknown);
    expect(u.code).toBe('AGENT_NOT_FOUND');
    expect(u.message).toContain('ghost');
    expect(u.message).toContain('talker');
    const extra = await call('/api/v1/chat/sessions', {
      method: 'POST',
      json: { agent: 'talker', color: 'red' },
    });
    expect(extra.status).toBe(400);

    const doc = await body<{ paths: Record<string, unknown> }>(await call('/api/v1/openapi.json'));
    for (const path of [
      '/api/v1/chat/sessions',
      '/api/v1/chat/sessions/{id}',
      '/api/v1/chat/sessions/{id}/messages',
    ])
      expect(Object.keys(doc.paths)).toContain(path);

    const id = await newSession('talker', 'support');
    const other = await newSession('sh');
    const list = await body<{ sessions: { id: string; title: string }[] }>(
      await call('/api/v1/chat/sessions'),
    );
    expect(list.sessions.map((s) => s.id)).toEqual([other, id]);
    expect(list.sessions[1]!.title).toBe('support');
    const byAgent = await body<{ sessions: { id: string }[]; next_cursor: string | null }>(
      await call('/api/v1/chat/sessions?agent=talker&limit=1'),
    );
    expect(byAgent.sessions.map((s) => s.id)).toEqual([id]);
    expect(byAgent.next_cursor).toBeNull();

    const res = await call(`/api/v1/chat/sessions/${id}/messages`, {
      method: 'POST',
      json: { content: 'over http' },
    });
    expect(res.status).toBe(202);
    expect(await body<MessageJson>(res)).toMatchObject({ seq: 1, role: 'user', content: 'over http' });
    const all = await messagesOf(id, 2);
    expect(all[1]).toMatchObject({
      seq: 2,
      role: 'agent',
      content: 'heard: over http\nremembered: 0\ndone',
      data: { reply_to: 1, state: 'completed' },
    });
    const page = await session(id, '?after=0&limit=1');
    expect(page.messages.map((m) => m.seq)).toEqual([1]);
    expect(page.next_after).toBe(1);
    const rest = await session(id, `?after=${page.next_after}&limit=1`);
    expect(rest.messages.map((m) => m.seq)).toEqual([2]);
    expect(rest.next_after).toBeNull();

    const empty = await call(`/api/v1/chat/sessions/${id}/messages`, {
      method: 'POST',
      json: { content: '' },
    });
    expect(empty.status).toBe(400);
    const missing = await call('/api/v1/chat/sessions/c_nope/messages', {
      method: 'POST',
      json: { content: 'hi' },
    });
    expect(missing.status).toBe(404);
    expect((await body<{ code: string }>(missing)).code).toBe('CHAT_SESSION_NOT_FOUND');
  });

  it('refuses a message with 429 CHAT_BUSY while 20 of the session wait for replies', async () => {
    rmSync(gate); // the first reply waits, so the others queue behind it
    const id = await newSession();
    for (let i = 1; i <= 20; i++) {
      const res = await call(`/api/v1/chat/sessions/${id}/messages`, {
        method: 'POST',
        json: { content: `m${i}` },
      });
      expect(res.status).toBe(202);
    }
    const busy = await call(`/api/v1/chat/sessions/${id}/messages`, {
      method: 'POST',
      json: { content: 'one too many' },
    });
    expect(busy.status).toBe(429);
    const b = await body<{ code: string; message: string }>(busy);
    expect(b.code).toBe('CHAT_BUSY');
    expect(b.message).toContain(id);
    expect((await session(id)).last_seq).toBe(20);
  });

  it('records a system message with the reason when the reply task fails', async () => {
    // the sh agent runs the prompt as a script: this prompt is not a valid one, so the task fails
    const id = await newSession('sh');
    await call(`/api/v1/chat/sessions/${id}/messages`, { method: 'POST', json: { content: 'hi' } });
    const [, reply] = await messagesOf(id, 2);
    expect(reply!.role).toBe('system');
    expect(reply!.data).toMatchObject({ reply_to: 1, state: 'failed' });
    expect(reply!.content).toMatch(/the agent sh failed to answer message 1 \(task t_\w+\): exit code \d+/);
  });
});

describe('chat under smith serve', () => {
  it('records the reply that a stop of smith serve cut short once it is back, from the same task', async () => {
    box.write('smith.yaml', yaml);
    serve = await startServe(box);
    api = { url: serve.url, token: serve.token };
    const id = await newSession('talker');
    const c = await connect(id);
    // the agent hears the message, then waits for the gate while smith serve stops
    rmSync(gate);
    c.send({ type: 'message', content: 'cut short' });
    await c.next((f) => f.type === 'delta' && f.text === 'heard: cut short\n', 'the first delta');
    const running = await body<{ tasks: { id: string; state: string }[] }>(
      await call('/api/v1/tasks?agent=talker&state=running'),
    );
    expect(running.tasks).toHaveLength(1);
    const taskId = running.tasks[0]!.id;
    expect(await serve.stop()).toBe(0);
    expect((await c.closed).code).toBe(1001);

    writeFileSync(gate, '');
    serve = await startServe(box, { token: api.token });
    api = { url: serve.url, token: serve.token };
    const back = await connect(id, { after: 1 });
    const reply = await back.next(isMessage(2), 'the reply after the restart');
    expect(reply).toMatchObject({
      role: 'agent',
      content: 'heard: cut short\nremembered: 0\ndone',
      data: { reply_to: 1, task_id: taskId, state: 'completed' },
    });
    expect(back.seqs()).toEqual([2]);
    expect((await session(id)).messages.map((m) => m.seq)).toEqual([1, 2]);
  });
});
