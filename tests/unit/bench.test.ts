import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { checkSameResponses } from '../../scripts/bench/compare.js';
import { ratioOf, summarize, type OperationResult, type Run } from '../../scripts/bench/report.js';

const run = (round: number, perSecond: number, cpuUsPerRequest: number, non2xx = 0): Run => ({
  round,
  requests: perSecond,
  perSecond,
  p50Ms: 1,
  p99Ms: 2,
  cpuUsPerRequest,
  rssBytes: 100 * 2 ** 20,
  non2xx,
  errors: 0,
  statuses: {},
});

describe('npm run bench figures', () => {
  it('takes the median of the per-round ratios, not the ratio of the medians', () => {
    // Round 2 is slow for both servers (a busy machine): its pair still compares fairly.
    const result: OperationResult = {
      name: 'getPost',
      targeted: true,
      project: [run(1, 1000, 100), run(2, 100, 1000), run(3, 900, 110)],
      reference: [run(1, 1000, 100), run(2, 110, 1000), run(3, 1000, 100)],
    };
    // Per round: 1.0, 0.909, 0.9 → 0.909; the ratio of medians would be 900 / 1000 = 0.9.
    expect(ratioOf(result, (r) => r.perSecond)).toBeCloseTo(100 / 110, 5);
  });

  it('fails a row with a non-2xx answer, and judges the targets on the ratios', () => {
    const fast: OperationResult = {
      name: 'getUser',
      targeted: true,
      project: [run(1, 980, 104)],
      reference: [run(1, 1000, 100)],
    };
    expect(summarize(fast)).toMatchObject({ pass: true, failed: false });
    const costly = { ...fast, project: [run(1, 980, 106)] };
    expect(summarize(costly).pass).toBe(false);
    const refused = { ...fast, reference: [run(1, 1000, 100, 3)] };
    expect(summarize(refused).failed).toBe(true);
  });
});

describe('npm run bench response check', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  async function serve(body: string, headers: Record<string, string> = {}): Promise<string> {
    const server = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json', ...headers });
      response.end(body);
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  }

  const getUser = [{ name: 'getUser', method: 'GET' as const, path: '/api/users/1' }];

  it('accepts the same answers, tokens and request ids aside', async () => {
    const token = (t: string) =>
      JSON.stringify({
        accessToken: `${t}.${t}.${t}`,
        refreshToken: t.repeat(43),
        refreshTokenExpiresAt: '2026-01-01T00:00:00.000Z',
      });
    const a = await serve(token('a'), { 'x-request-id': '1' });
    const b = await serve(token('b'), { 'x-request-id': '2' });
    expect(await checkSameResponses(a, b, getUser)).toEqual([]);
  });

  it('refuses bodies whose keys come in another order', async () => {
    const a = await serve('{"id":"1","username":"ada"}');
    const b = await serve('{"username":"ada","id":"1"}');
    expect(await checkSameResponses(a, b, getUser)).toEqual([
      expect.stringContaining('bodies differ'),
    ]);
  });

  it('refuses a header only one server sends, or sends differently', async () => {
    const a = await serve('{}', { etag: '"1-a"', 'x-frame-options': 'DENY' });
    const b = await serve('{}', { etag: '"1-b"' });
    const mismatches = await checkSameResponses(a, b, getUser);
    expect(mismatches).toEqual(
      expect.arrayContaining([
        expect.stringContaining('header etag'),
        expect.stringContaining('header x-frame-options only from the API'),
      ]),
    );
  });
});
