/**
 * Before anything is measured: one request of each operation to both servers, whose answers
 * must be the same (status, body byte for byte in key order, and headers) but for what is
 * new on every call: tokens, their expiry, request ids, rate-limit counters, a view count
 * one higher.
 */

export interface CheckCase {
  name: string;
  method: 'GET' | 'POST';
  path: string;
  authorization?: string;
  body?: string;
  /** One body per server (the API's, then the reference's): single-use inputs. */
  bodies?: string[];
}

/** Headers that differ by nature; only their presence is compared. */
const volatileHeaders = new Set([
  'date',
  'x-request-id',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
]);
/** Transport details, not the answer. */
const ignoredHeaders = new Set(['content-length', 'connection', 'keep-alive', 'transfer-encoding']);

interface Answer {
  status: number;
  headers: Map<string, string>;
  text: string;
}

async function ask(base: string, check: CheckCase, body: string | undefined): Promise<Answer> {
  const response = await fetch(`${base}${check.path}`, {
    method: check.method,
    headers: {
      'user-agent': 'npm-run-bench',
      ...(check.authorization ? { authorization: check.authorization } : {}),
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    ...(body ? { body } : {}),
  });
  const headers = new Map<string, string>();
  response.headers.forEach((value, name) => {
    if (!ignoredHeaders.has(name)) headers.set(name, value);
  });
  return { status: response.status, headers, text: await response.text() };
}

const jwt = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const isoMillis = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** The body with its per-call values replaced by what they must look like. */
function normalized(text: string, problems: string[], who: string): unknown {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    problems.push(`${who}: not JSON: ${text.slice(0, 200)}`);
    return text;
  }
  if (body && typeof body === 'object' && 'accessToken' in body) {
    const pair = body as Record<string, unknown>;
    if (typeof pair.accessToken !== 'string' || !jwt.test(pair.accessToken)) {
      problems.push(`${who}: accessToken is not a JWT`);
    }
    if (typeof pair.refreshToken !== 'string' || pair.refreshToken.length !== 43) {
      problems.push(`${who}: refreshToken is not 43 characters`);
    }
    if (
      typeof pair.refreshTokenExpiresAt !== 'string' ||
      !isoMillis.test(pair.refreshTokenExpiresAt)
    ) {
      problems.push(`${who}: refreshTokenExpiresAt is not an ISO time`);
    }
    pair.accessToken = '<jwt>';
    pair.refreshToken = '<token>';
    pair.refreshTokenExpiresAt = '<time>';
  }
  return body;
}

export async function checkSameResponses(
  api: string,
  reference: string,
  cases: CheckCase[],
): Promise<string[]> {
  const mismatches: string[] = [];
  for (const check of cases) {
    const problems: string[] = [];
    const a = await ask(api, check, check.bodies?.[0] ?? check.body);
    const b = await ask(reference, check, check.bodies?.[1] ?? check.body);
    if (a.status !== b.status || a.status < 200 || a.status > 299) {
      problems.push(
        `status ${a.status} (API) vs ${b.status} (reference): ${a.text.slice(0, 300)} | ${b.text.slice(0, 300)}`,
      );
    }
    const names = new Set([...a.headers.keys(), ...b.headers.keys()]);
    for (const name of names) {
      const [x, y] = [a.headers.get(name), b.headers.get(name)];
      if (x === undefined || y === undefined) {
        problems.push(
          `header ${name} only from the ${x === undefined ? 'reference' : 'API'}: ${x ?? y}`,
        );
      } else if (!volatileHeaders.has(name) && x !== y) {
        problems.push(`header ${name}: ${x} (API) vs ${y} (reference)`);
      }
    }
    const bodyA = normalized(a.text, problems, 'API');
    const bodyB = normalized(b.text, problems, 'reference');
    if (check.name === 'recordPostView') {
      // The reference counted the view after the API did.
      const [x, y] = [bodyA as { viewCount: number }, bodyB as { viewCount: number }];
      if (y.viewCount !== x.viewCount + 1) {
        problems.push(`viewCount ${x.viewCount} (API) then ${y.viewCount} (reference)`);
      }
      y.viewCount = x.viewCount;
    }
    const [textA, textB] = [JSON.stringify(bodyA), JSON.stringify(bodyB)];
    if (textA !== textB) {
      let at = 0;
      while (at < textA.length && textA[at] === textB[at]) at += 1;
      problems.push(
        `bodies differ at character ${at}: …${textA.slice(Math.max(0, at - 60), at + 80)}… (API) vs …${textB.slice(Math.max(0, at - 60), at + 80)}… (reference)`,
      );
    }
    for (const problem of problems) mismatches.push(`${check.name}: ${problem}`);
  }
  return mismatches;
}
