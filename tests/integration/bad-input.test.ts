import { randomBytes } from 'node:crypto';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import type { components } from '../../generated/api.js';
import { signUpAndLogin, useTestApp } from '../helpers/app.js';
import { contractViolations } from '../helpers/contract.js';
import { expectInvalid, expectProblem } from '../helpers/problems.js';

/**
 * Whatever a client sends, the answer is a status the spec declares for the operation,
 * never a 5xx, and errors are problems. Text is stored exactly as sent, or refused.
 */

type Problem = components['schemas']['Problem'];
type ProblemCode = Problem['code'];
type User = components['schemas']['User'];
type PublicUser = components['schemas']['PublicUser'];
type PublicUserPage = components['schemas']['PublicUserPage'];
type Json = Record<string, unknown>;
type Method = NonNullable<InjectOptions['method']>;

const t = useTestApp();

const PASSWORD = 'correct horse battery staple';
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';
const uuidV4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const JSON_TYPE = 'application/json';

let serial = 0;
function newUser(overrides: Json = {}): Json {
  serial += 1;
  const tag = `${serial}${randomBytes(3).toString('hex')}`;
  return {
    email: `bad${tag}@example.com`,
    username: `bad_${tag}`,
    password: PASSWORD,
    ...overrides,
  };
}

/**
 * Answers given before any route is chosen (bad URL encoding) do not pass through the
 * route hooks that check the contract, so they are checked here.
 */
function expectRouterProblem(
  res: LightMyRequestResponse,
  method: string,
  status: number,
  code: ProblemCode,
  instance: string,
): Problem {
  const problem = expectProblem(res, status, code, instance);
  const violations = contractViolations({
    method,
    route: undefined,
    statusCode: res.statusCode,
    contentType: res.headers['content-type'] as string | undefined,
    headers: res.headers,
    payload: res.body,
  });
  expect(violations).toEqual([]);
  return problem;
}

/** The same router problem for GET, PATCH and DELETE of one user URL (as the owner). */
/** The owner's GET, PATCH and DELETE of one user URL, and their answers. */
async function onEveryMethod(url: string) {
  const answers: [string, LightMyRequestResponse][] = [];
  for (const method of ['GET', 'PATCH', 'DELETE'] as const) {
    const res = await t.inject({
      method,
      url,
      headers: owner.auth,
      ...(method === 'PATCH' ? { payload: { firstName: 'X' } } : {}),
    });
    answers.push([method, res]);
  }
  return answers;
}

async function expectRouterProblemOnEveryMethod(
  url: string,
  status: number,
  code: ProblemCode,
): Promise<void> {
  for (const [method, res] of await onEveryMethod(url)) {
    expectRouterProblem(res, method, status, code, url);
  }
}

/** Every public profile, following nextCursor to the last page. */
async function allUsers(): Promise<PublicUser[]> {
  const items: PublicUser[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor === null ? '' : `&cursor=${cursor}`;
    const res = await t.inject({ method: 'GET', url: `/api/users?limit=100${query}` });
    expect(res.statusCode, res.body).toBe(200);
    const page = res.json<PublicUserPage>();
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return items;
}

async function expectNoAccount(email: unknown): Promise<void> {
  if (typeof email !== 'string') return;
  const res = await t.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email, password: PASSWORD },
  });
  expectProblem(res, 401, 'INVALID_CREDENTIALS');
}

let owner: Awaited<ReturnType<typeof signUpAndLogin>>;

beforeAll(async () => {
  owner = await signUpAndLogin(t, { firstName: 'Owner', lastName: 'Account' });
});

async function ownerAccount(): Promise<User> {
  const res = await t.inject({ method: 'GET', url: '/api/auth/me', headers: owner.auth });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<User>();
}

interface Target {
  name: string;
  method: Method;
  url(): string;
  headers(): Record<string, string>;
  /** A body the operation accepts. */
  valid(): Json;
  /** What a refused request must leave untouched. */
  state(): Promise<unknown>;
  /** The string fields of the body. */
  textFields: string[];
  /** Values of the wrong JSON type, by field. */
  wrongTypes: [string, unknown][];
  /** The media types its request body declares. */
  accepts: string[];
  /** Account fields the body takes (from admins only), which other operations do not know. */
  accountFields?: string[];
}

const targets: Target[] = [
  {
    name: 'POST /api/users',
    method: 'POST',
    url: () => '/api/users',
    headers: () => ({}),
    valid: () => newUser(),
    state: allUsers,
    textFields: ['email', 'username', 'password', 'firstName', 'lastName'],
    wrongTypes: [
      ['username', 12345],
      ['password', true],
      ['firstName', ['a']],
      ['lastName', { text: 'a' }],
      ['email', 42],
      ['email', null],
      ['username', null],
      ['firstName', null],
      ['password', 12345678],
    ],
    accepts: [JSON_TYPE],
  },
  {
    name: 'PATCH /api/users/{id}',
    method: 'PATCH',
    url: () => `/api/users/${owner.user.id}`,
    headers: () => owner.auth,
    valid: () => ({ firstName: 'Owner' }),
    state: ownerAccount,
    textFields: ['email', 'username', 'firstName', 'lastName'],
    wrongTypes: [
      ['username', 12345],
      ['email', true],
      ['firstName', ['a']],
      ['lastName', 7],
      ['email', null],
      ['username', null],
      ['firstName', false],
      ['isActive', 'false'],
      ['role', 1],
    ],
    accepts: ['application/merge-patch+json', JSON_TYPE],
    accountFields: ['isActive', 'role'],
  },
  {
    name: 'POST /api/auth/login',
    method: 'POST',
    url: () => '/api/auth/login',
    headers: () => ({}),
    valid: () => ({ email: owner.user.email, password: PASSWORD }),
    state: ownerAccount,
    textFields: ['email', 'password'],
    wrongTypes: [
      ['email', 42],
      ['password', true],
      ['email', ['someone@example.com']],
      ['password', null],
      ['password', { value: PASSWORD }],
    ],
    accepts: [JSON_TYPE],
  },
];

function send(
  target: Target,
  payload: string | Buffer | undefined,
  contentType: string | undefined,
  extraHeaders: Record<string, string> = {},
) {
  const headers: Record<string, string> = { ...target.headers(), ...extraHeaders };
  if (contentType !== undefined) headers['content-type'] = contentType;
  return t.inject({
    method: target.method,
    url: target.url(),
    headers,
    ...(payload === undefined ? {} : { payload }),
  });
}

/** Runs a request that must be refused, and checks it left the target's state untouched. */
async function refused(
  target: Target,
  request: () => Promise<LightMyRequestResponse>,
): Promise<LightMyRequestResponse> {
  const before = await target.state();
  const res = await request();
  expect(res.statusCode, res.body).toBeGreaterThanOrEqual(400);
  expect(res.statusCode, res.body).toBeLessThan(500);
  expect(await target.state()).toEqual(before);
  return res;
}

describe.each(targets)('$name: bodies that are not a JSON object', (target) => {
  it('answers 400 MALFORMED_REQUEST to malformed JSON', async () => {
    const res = await refused(target, () => send(target, '{"email":', JSON_TYPE));
    expectProblem(res, 400, 'MALFORMED_REQUEST', target.url());
  });

  it('answers 400 MALFORMED_REQUEST to JSON followed by garbage', async () => {
    const raw = `${JSON.stringify(target.valid())} trailing`;
    const res = await refused(target, () => send(target, raw, JSON_TYPE));
    expectProblem(res, 400, 'MALFORMED_REQUEST');
  });

  it('answers 400 MALFORMED_REQUEST to an empty body sent as application/json', async () => {
    const res = await refused(target, () => send(target, '', JSON_TYPE));
    expectProblem(res, 400, 'MALFORMED_REQUEST', target.url());
  });

  it.each([
    ['an empty array', '[]'],
    ['an array holding a valid body', 'VALID_IN_ARRAY'],
    ['a string', '"ada@example.com"'],
    ['a number', '42'],
    ['true', 'true'],
    ['null', 'null'],
  ])('answers 400 VALIDATION_ERROR to %s', async (_name, raw) => {
    const payload = raw === 'VALID_IN_ARRAY' ? JSON.stringify([target.valid()]) : raw;
    const res = await refused(target, () => send(target, payload, JSON_TYPE));
    expectInvalid(res, 'body', ['']);
  });

  it('answers 400 VALIDATION_ERROR to no body at all (the body is required)', async () => {
    const res = await refused(target, () => send(target, undefined, undefined));
    expectInvalid(res, 'body', ['']);
  });
});

/** The fields of a body in another encoding than JSON (or `kind` itself, as the body). */
function encodeAs(kind: string, body: Json): string {
  const fields = Object.entries(body).map(([name, value]): [string, string] => [
    name,
    typeof value === 'string' ? value : JSON.stringify(value),
  ]);
  if (kind === 'JSON') return JSON.stringify(body);
  if (kind === 'FORM') return new URLSearchParams(fields).toString();
  if (kind !== 'MULTIPART') return kind;
  const parts = fields.map(
    ([name, value]) =>
      `--XyZ\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`,
  );
  return `${parts.join('')}--XyZ--\r\n`;
}

/**
 * Media types a body may come in, as [name, Content-Type, body kind]: each target refuses
 * those its request body does not declare.
 */
const otherMediaTypes: [string, string, string][] = [
  ['text/plain', 'text/plain', 'JSON'],
  ['text/plain with a charset', 'text/plain; charset=utf-8', 'JSON'],
  ['application/x-www-form-urlencoded', 'application/x-www-form-urlencoded', 'FORM'],
  ['multipart/form-data', 'multipart/form-data; boundary=XyZ', 'MULTIPART'],
  ['application/problem+json', 'application/problem+json', 'JSON'],
  ['application/merge-patch+json', 'application/merge-patch+json', 'JSON'],
  ['application/json-patch+json', 'application/json-patch+json', 'JSON'],
  ['application/xml', 'application/xml', '<user/>'],
  ['application/octet-stream', 'application/octet-stream', 'JSON'],
  ['a value that is not a media type', 'json', 'JSON'],
];

describe.each(targets)('$name: content types', (target) => {
  it('accepts each media type it declares, with a charset (the control for the cases below)', async () => {
    for (const mediaType of target.accepts) {
      // Media types compare case-insensitively.
      const sent = mediaType === JSON_TYPE ? 'Application/JSON' : mediaType;
      const res = await send(target, JSON.stringify(target.valid()), `${sent}; charset=utf-8`);
      expect(res.statusCode, `${mediaType}: ${res.body}`).toBe(
        target.name === 'POST /api/users' ? 201 : 200,
      );
    }
  });

  it.each(otherMediaTypes.filter(([, type]) => !target.accepts.includes(type)))(
    'answers 415 UNSUPPORTED_MEDIA_TYPE to %s, naming the types it accepts',
    async (_name, contentType, kind) => {
      const payload = encodeAs(kind, target.valid());
      const res = await refused(target, () => send(target, payload, contentType));
      const problem = expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE', target.url());
      expect(problem.detail).toBe(`Send the body as ${target.accepts.join(' or ')}.`);
    },
  );

  it('answers 415 UNSUPPORTED_MEDIA_TYPE to a JSON body sent without a content type', async () => {
    const res = await refused(target, () =>
      send(target, Buffer.from(JSON.stringify(target.valid())), undefined),
    );
    expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('answers 413 PAYLOAD_TOO_LARGE to a body over 1 MiB', async () => {
    const field = target.textFields.includes('firstName') ? 'firstName' : 'password';
    const payload = JSON.stringify({ ...target.valid(), [field]: 'x'.repeat(2 * 1024 * 1024) });
    const res = await refused(target, () => send(target, payload, JSON_TYPE));
    expectProblem(res, 413, 'PAYLOAD_TOO_LARGE', target.url());
  });

  it('answers 413 PAYLOAD_TOO_LARGE to 2 MiB that are not even JSON', async () => {
    const payload = 'x'.repeat(2 * 1024 * 1024);
    const res = await refused(target, () => send(target, payload, JSON_TYPE));
    expectProblem(res, 413, 'PAYLOAD_TOO_LARGE');
  });
});

describe.each(targets)('$name: wrong JSON types are refused, not coerced', (target) => {
  it.each(target.wrongTypes)('answers 400 to %s = %j', async (field, value) => {
    const body = { ...target.valid(), [field]: value };
    const res = await refused(target, () => send(target, JSON.stringify(body), JSON_TYPE));
    expectInvalid(res, 'body', [`/${field}`]);
    if (target.name === 'POST /api/users') await expectNoAccount(body.email);
  });

  it('lists every field of the wrong type', async () => {
    const body = { ...target.valid() };
    for (const field of target.textFields) body[field] = 12345;
    const res = await refused(target, () => send(target, JSON.stringify(body), JSON_TYPE));
    expectInvalid(
      res,
      'body',
      target.textFields.map((field) => `/${field}`),
    );
  });
});

describe.each(targets)('$name: fields the operation does not take', (target) => {
  const unknown: [string, unknown][] = [
    ['isActive', false],
    ['isActive', true],
    ['emailVerified', true],
    ['passwordHash', '$2a$04$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZa'],
    ['id', UNKNOWN_ID],
    ['createdAt', '2000-01-01T00:00:00.000Z'],
    ['role', 'admin'],
  ];
  it.each(unknown.filter(([field]) => !target.accountFields?.includes(field)))(
    'answers 400 naming %s',
    async (field, value) => {
      const body = { ...target.valid(), [field]: value };
      const res = await refused(target, () => send(target, JSON.stringify(body), JSON_TYPE));
      const problem = expectInvalid(res, 'body', [`/${field}`]);
      expect(problem.errors?.[0]?.message).toBe('is not a known property');
      if (target.name === 'POST /api/users') await expectNoAccount(body.email);
    },
  );

  it('names every unknown field, escaping "/" and "~" in the pointer', async () => {
    const body = { ...target.valid(), emailVerified: true, passwordHash: 'x', 'a/b': 1, 'c~d': 2 };
    const res = await refused(target, () => send(target, JSON.stringify(body), JSON_TYPE));
    expectInvalid(res, 'body', ['/emailVerified', '/passwordHash', '/a~1b', '/c~0d']);
  });

  it('names the first 100 of 5,000 unknown fields, not all of them', async () => {
    const extra = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`x${i}`, i]));
    const body = { ...target.valid(), ...extra };
    const res = await refused(target, () => send(target, JSON.stringify(body), JSON_TYPE));
    const problem = expectProblem(res, 400, 'VALIDATION_ERROR');
    expect(problem.errors?.map((item) => item.pointer)).toEqual(
      Array.from({ length: 100 }, (_, i) => `/x${i}`),
    );
  });

  it('answers 400 naming the password fields the operation does not take', async () => {
    const body = { ...target.valid(), password: PASSWORD, newPassword: 'another password' };
    const res = await refused(target, () => send(target, JSON.stringify(body), JSON_TYPE));
    expectInvalid(
      res,
      'body',
      target.textFields.includes('password') ? ['/newPassword'] : ['/password', '/newPassword'],
    );
  });
});

describe.each(targets)('$name: prototype pollution', (target) => {
  it.each([
    [
      '__proto__',
      (valid: string) => `{"__proto__":{"isActive":false},${valid.slice(1)}`,
      '/__proto__',
    ],
    [
      'constructor.prototype',
      (valid: string) => `{"constructor":{"prototype":{"isActive":false}},${valid.slice(1)}`,
      '/constructor/prototype',
    ],
    [
      'a nested __proto__',
      (valid: string) => `${valid.slice(0, -1)},"x":{"__proto__":{"y":1}}}`,
      '/x/__proto__',
    ],
    [
      '__proto__ in an array',
      (valid: string) => `${valid.slice(0, -1)},"x":[1,{"__proto__":null}]}`,
      '/x/1/__proto__',
    ],
  ])('answers 400 naming %s, and pollutes nothing', async (_name, build, pointer) => {
    const raw = build(JSON.stringify(target.valid()));
    const res = await refused(target, () => send(target, raw, JSON_TYPE));
    // Refused as it is parsed, naming the key: the body never reaches the schema.
    const problem = expectInvalid(res, 'body', [pointer]);
    expect(problem.detail).toContain(pointer.endsWith('prototype') ? 'constructor' : '__proto__');
    expect(problem.errors?.[0]?.message).toMatch(/prototype/);
    expect(({} as Json).isActive).toBeUndefined();
    expect(({} as Json).y).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('isActive');
  });
});

describe.each(targets)('$name: text PostgreSQL cannot store exactly', (target) => {
  it.each(target.textFields)('answers 400 to a NUL character in %s', async (field) => {
    const body = { ...target.valid(), [field]: 'a\u0000b' };
    if (field === 'email') body.email = `nul\u0000${serial}@example.com`;
    const res = await refused(target, () => send(target, JSON.stringify(body), JSON_TYPE));
    const problem = expectInvalid(res, 'body', [`/${field}`]);
    expect(problem.errors?.[0]?.message).toMatch(/NUL/);
  });

  it.each(target.textFields)('answers 400 to a lone surrogate in %s', async (field) => {
    const valid = JSON.stringify({ ...target.valid(), [field]: 'LONE' });
    const raw = valid.replace('"LONE"', '"a\\ud800b"');
    expect(raw).toContain('\\ud800');
    const res = await refused(target, () => send(target, raw, JSON_TYPE));
    const problem = expectInvalid(res, 'body', [`/${field}`]);
    expect(problem.errors?.[0]?.message).toMatch(/surrogate/);
  });

  it.each([
    ['a lone low surrogate', '"\\udfff"'],
    ['a reversed pair', '"\\ude00\\ud83d"'],
    ['a high surrogate at the end', '"abc\\udbff"'],
  ])('answers 400 to %s', async (_name, text) => {
    const field = target.textFields[target.textFields.length - 1] ?? 'email';
    const raw = JSON.stringify({ ...target.valid(), [field]: 'LONE' }).replace('"LONE"', text);
    const res = await refused(target, () => send(target, raw, JSON_TYPE));
    expectInvalid(res, 'body', [`/${field}`]);
  });

  it.each([
    ['a byte that is never UTF-8', [0xff], JSON_TYPE],
    ['a surrogate encoded as UTF-8 (CESU-8)', [0xed, 0xa0, 0x80], JSON_TYPE],
    ['a truncated sequence', [0xe2, 0x82], JSON_TYPE],
    ['an overlong encoding of "/"', [0xc0, 0xaf], JSON_TYPE],
    ['Latin-1, even when the charset says so', [0xe9], 'application/json; charset=iso-8859-1'],
  ])('answers 400 MALFORMED_REQUEST to bytes that are not UTF-8: %s', async (_n, bytes, type) => {
    const field = target.textFields[target.textFields.length - 1] ?? 'email';
    const [before, after] = JSON.stringify({ ...target.valid(), [field]: 'a|b' }).split('|');
    const payload = Buffer.concat([Buffer.from(before!), Buffer.from(bytes), Buffer.from(after!)]);
    const res = await refused(target, () => send(target, payload, type));
    expectProblem(res, 400, 'MALFORMED_REQUEST', target.url());
  });

  it('answers 400 to a NUL character or a lone surrogate in a property name', async () => {
    const raw = `${JSON.stringify(target.valid()).slice(0, -1)},"k\\u0000":1,"\\ud800":2}`;
    const res = await refused(target, () => send(target, raw, JSON_TYPE));
    const problem = expectProblem(res, 400, 'VALIDATION_ERROR');
    expect(problem.errors?.map((e) => e.pointer)).toEqual(
      expect.arrayContaining(['/k\u0000', '/\ud800']),
    );
  });
});

describe('POST /api/users: missing required fields', () => {
  it.each([
    ['an empty object', {}, ['/email', '/username', '/password']],
    ['only an email', { email: 'only@example.com' }, ['/username', '/password']],
    ['no email', { username: 'noemail', password: PASSWORD }, ['/email']],
    ['no password', { email: 'nopw@example.com', username: 'nopw' }, ['/password']],
    [
      'only names',
      { firstName: 'Ada', lastName: 'Lovelace' },
      ['/email', '/username', '/password'],
    ],
  ] as [string, Json, string[]][])(
    'lists every missing field: %s',
    async (_name, body, pointers) => {
      const target = targets[0]!;
      const res = await refused(target, () => send(target, JSON.stringify(body), JSON_TYPE));
      const problem = expectInvalid(res, 'body', pointers);
      for (const error of problem.errors ?? []) expect(error.message).toBe('is required');
      await expectNoAccount(body.email);
    },
  );
});

describe('POST /api/auth/login: missing required fields', () => {
  it.each([
    ['an empty object', {}, ['/email', '/password']],
    ['no password', { email: 'someone@example.com' }, ['/password']],
    ['no email', { password: PASSWORD }, ['/email']],
  ] as [string, Json, string[]][])(
    'lists every missing field: %s',
    async (_name, body, pointers) => {
      const res = await t.inject({ method: 'POST', url: '/api/auth/login', payload: body });
      expectInvalid(res, 'body', pointers);
    },
  );
});

describe('PATCH /api/users/{id}: an empty change', () => {
  it('answers 400 to {} (at least one field)', async () => {
    const target = targets[1]!;
    const res = await refused(target, () => send(target, '{}', JSON_TYPE));
    expectInvalid(res, 'body', ['']);
  });
});

describe('field formats', () => {
  // 64 + 1 + 63 + 1 + 63 + 1 + 63 + 4 = 260 characters, every part within its own limit.
  const longEmail = `${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.com`;
  // 64 + 1 + 63 + 1 + 63 + 1 + 61 = 254: the longest email address the spec takes.
  const maxEmail = () =>
    `${'e'.repeat(60)}${String(serial++).padStart(4, '0')}@${'f'.repeat(63)}.${'g'.repeat(63)}.${'h'.repeat(61)}`;

  it('takes an email address of exactly 254 characters', async () => {
    const email = maxEmail();
    expect(email).toHaveLength(254);
    const res = await t.inject({ method: 'POST', url: '/api/users', payload: newUser({ email }) });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json<User>().email).toBe(email);
  });

  /** Refused on sign-up and on update alike, naming the field. */
  async function expectRefusedEverywhere(field: 'email' | 'username', value: string) {
    const create = await refused(targets[0]!, () =>
      t.inject({ method: 'POST', url: '/api/users', payload: newUser({ [field]: value }) }),
    );
    expectInvalid(create, 'body', [`/${field}`]);
    const patch = await refused(targets[1]!, () =>
      t.inject({
        method: 'PATCH',
        url: `/api/users/${owner.user.id}`,
        headers: owner.auth,
        payload: { [field]: value },
      }),
    );
    expectInvalid(patch, 'body', [`/${field}`]);
  }

  it.each([
    ['longer than 254 characters', longEmail],
    ['255 characters', `${maxEmail()}x`],
    ['without an @', 'no-at-sign.example.com'],
    ['with a space', 'ada lovelace@example.com'],
    ['empty', ''],
  ])('refuses an email address %s', async (_name, email) => {
    await expectRefusedEverywhere('email', email);
  });

  it.each([
    ['with a space', 'ada lovelace'],
    ['with a slash', 'ada/lovelace'],
    ['with a tab', 'ada\tlovelace'],
    ['of 2 characters', 'ab'],
    ['of 51 characters', 'u'.repeat(51)],
    ['with non-ASCII letters', 'adä'],
    ['with an emoji', 'ada😀'],
    ['empty', ''],
  ])('refuses a username %s', async (_name, username) => {
    await expectRefusedEverywhere('username', username);
  });

  it('takes usernames of 3 and of 50 characters', async () => {
    const short = `k${randomBytes(1).toString('hex')}`;
    const long = `l${randomBytes(4).toString('hex')}`.padEnd(50, 'l');
    for (const username of [short, long]) {
      const res = await t.inject({
        method: 'POST',
        url: '/api/users',
        payload: newUser({ username }),
      });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json<User>().username).toBe(username);
    }
  });

  it('refuses an empty name on create and on update', async () => {
    const create = await refused(targets[0]!, () =>
      t.inject({ method: 'POST', url: '/api/users', payload: newUser({ firstName: '' }) }),
    );
    expectInvalid(create, 'body', ['/firstName']);
    const patch = await refused(targets[1]!, () =>
      t.inject({
        method: 'PATCH',
        url: `/api/users/${owner.user.id}`,
        headers: owner.auth,
        payload: { lastName: '' },
      }),
    );
    expectInvalid(patch, 'body', ['/lastName']);
  });
});

describe('text round-trips exactly', () => {
  const samples: [string, string][] = [
    ['an emoji with a skin tone and a zero-width joiner', 'Ada 👩🏽‍💻'],
    ['a right-to-left mark and Hebrew', '\u200Fשלום'],
    ['Arabic', 'مرحبا بالعالم'],
    ['quotes and backslashes', `O'Brien "the \\ one"`],
    ['combining characters, not normalised', 'Zoe\u0308 Jose\u0301'],
    ['precomposed letters and the angstrom sign, not normalised', '\u00C5\u212B\u00E9'],
    ['leading and trailing spaces', '  padded  '],
    ['a tab and a newline', 'tab\there\nnext line'],
    ['bidi and zero-width controls', 'a\u200Bb\u202Ec\u2066d\u2069\uFEFF'],
    ['characters outside the BMP', '𠜎𝔘𝔫𝔦𝔠𝔬𝔡𝔢'],
    ['the replacement character', '\uFFFD'],
    ['SQL and HTML', `'); DROP TABLE users; -- <script>alert("x")</script>`],
    ['100 emoji (maxLength counts code points)', '😀'.repeat(100)],
    ['100 code points, combining marks included', 'e\u0301'.repeat(50)],
    ['a 4-byte emoji flag sequence', '🏴󠁧󠁢󠁳󠁣󠁴󠁿'],
  ];

  function expectSame(actual: unknown, expected: string) {
    expect(actual).toBe(expected);
    expect(Buffer.from(actual as string, 'utf8').equals(Buffer.from(expected, 'utf8'))).toBe(true);
  }

  it.each(samples)('stores and returns %s', async (_name, text) => {
    const other = samples[(samples.findIndex(([, s]) => s === text) + 1) % samples.length]![1];
    const body = newUser({ firstName: text, lastName: other });
    const created = await t.inject({ method: 'POST', url: '/api/users', payload: body });
    expect(created.statusCode, created.body).toBe(201);
    const user = created.json<User>();
    expectSame(user.firstName, text);
    expectSame(user.lastName, other);

    const read = await t.inject({ method: 'GET', url: `/api/users/${user.id}` });
    expect(read.statusCode).toBe(200);
    expectSame(read.json<PublicUser>().firstName, text);
    expectSame(read.json<PublicUser>().lastName, other);

    const listed = (await allUsers()).find((u) => u.id === user.id);
    expectSame(listed?.firstName, text);

    const login = await t.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email: body.email, password: PASSWORD },
    });
    expect(login.statusCode, login.body).toBe(200);
    const { accessToken } = login.json<{ accessToken: string; user: User }>();
    expectSame(login.json<{ user: User }>().user.firstName, text);

    // Swapped by PATCH: both values come back as sent, from the response and from a read.
    const auth = { authorization: `Bearer ${accessToken}` };
    const patched = await t.inject({
      method: 'PATCH',
      url: `/api/users/${user.id}`,
      headers: auth,
      payload: { firstName: other, lastName: text },
    });
    expect(patched.statusCode, patched.body).toBe(200);
    expectSame(patched.json<User>().firstName, other);
    expectSame(patched.json<User>().lastName, text);
    const reread = await t.inject({ method: 'GET', url: '/api/auth/me', headers: auth });
    expectSame(reread.json<User>().firstName, other);
    expectSame(reread.json<User>().lastName, text);
  });

  it('keeps a surrogate pair sent as JSON escapes (it is one emoji)', async () => {
    const body = newUser();
    const raw = `${JSON.stringify(body).slice(0, -1)},"firstName":"\\ud83d\\ude00"}`;
    const res = await t.inject({
      method: 'POST',
      url: '/api/users',
      headers: { 'content-type': JSON_TYPE },
      payload: raw,
    });
    expect(res.statusCode, res.body).toBe(201);
    expectSame(res.json<User>().firstName, '😀');
  });

  it.each([
    ['101 emoji', '😀'.repeat(101)],
    ['101 ASCII letters', 'a'.repeat(101)],
    ['101 code points of combining marks', `${'e\u0301'.repeat(50)}x`],
  ])('refuses a name of %s, on create and on update', async (_name, text) => {
    const body = newUser({ firstName: text });
    const create = await refused(targets[0]!, () =>
      t.inject({ method: 'POST', url: '/api/users', payload: body }),
    );
    expectInvalid(create, 'body', ['/firstName']);
    await expectNoAccount(body.email);

    const patch = await refused(targets[1]!, () =>
      t.inject({
        method: 'PATCH',
        url: `/api/users/${owner.user.id}`,
        headers: owner.auth,
        payload: { lastName: text },
      }),
    );
    expectInvalid(patch, 'body', ['/lastName']);
  });
});

describe('path parameters', () => {
  const badIds = [
    ['not a uuid', 'not-a-uuid'],
    ['a number', '12345'],
    ['a uuid without dashes', '0b5c1f7e7f3c4a8e9f572f8f1b1f5d10'],
    ['a uuid with an extra character', '0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10a'],
    ['an encoded NUL', '%00'],
    ['an encoded slash', 'a%2Fb'],
    ['an emoji', encodeURIComponent('👩🏽‍💻')],
    ['SQL', encodeURIComponent("' OR 1=1 --")],
    ['100 characters', 'a'.repeat(100)],
  ];

  it.each(badIds)('answers 400 (location path) to an id that is %s', async (_name, id) => {
    const url = `/api/users/${id}`;
    const read = await t.inject({ method: 'GET', url });
    expectInvalid(read, 'path', ['/id']);
    expect(read.json<Problem>().instance).toBe(url);

    const patch = await refused(targets[1]!, () =>
      t.inject({ method: 'PATCH', url, headers: owner.auth, payload: { firstName: 'X' } }),
    );
    expectInvalid(patch, 'path', ['/id']);

    const remove = await t.inject({ method: 'DELETE', url, headers: owner.auth });
    expectInvalid(remove, 'path', ['/id']);
    await ownerAccount();
  });

  it('answers 404 to a well-formed id nobody has', async () => {
    const res = await t.inject({ method: 'GET', url: `/api/users/${UNKNOWN_ID}` });
    expectProblem(res, 404, 'NOT_FOUND', `/api/users/${UNKNOWN_ID}`);
  });

  it.each([
    ['256 characters', 'a'.repeat(256)],
    ['10,000 characters', 'b'.repeat(10_000)],
    ['a uuid padded to 256 characters', `${UNKNOWN_ID}${'0'.repeat(220)}`],
  ])('answers 414 URI_TOO_LONG to an id of %s', async (_name, id) => {
    // The operation's own 414 (after the rate limits), checked against it by useTestApp.
    const url = `/api/users/${id}`;
    for (const [method, res] of await onEveryMethod(url)) {
      expectProblem(res, 414, 'URI_TOO_LONG', url);
      expect(res.headers['x-ratelimit-limit'], method).toBeDefined();
    }
    await ownerAccount();
  });

  it.each([
    ['a truncated UTF-8 sequence', '%E0%A4%A'],
    ['a lone percent sign', '%'],
    ['a percent sign followed by non-hex', '%zz'],
  ])('answers 400 MALFORMED_REQUEST to %s', async (_name, id) => {
    await expectRouterProblemOnEveryMethod(`/api/users/${id}`, 400, 'MALFORMED_REQUEST');
  });
});

describe('query parameters', () => {
  const cursorOf = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

  it('pages with a cursor the server gave out (the control for the cases below)', async () => {
    await signUpAndLogin(t);
    const first = await t.inject({ method: 'GET', url: '/api/users?limit=1' });
    expect(first.statusCode).toBe(200);
    const { nextCursor } = first.json<PublicUserPage>();
    expect(nextCursor).toEqual(expect.any(String));
    const next = await t.inject({ method: 'GET', url: `/api/users?limit=1&cursor=${nextCursor}` });
    expect(next.statusCode).toBe(200);
    expect(next.json<PublicUserPage>().items).toHaveLength(1);
  });

  it.each([
    ['abc', 'abc'],
    ['0', '0'],
    ['101', '101'],
    ['1.5', '1.5'],
    ['-1', '-1'],
    ['empty', ''],
    ['true', 'true'],
    ['a huge number', '9'.repeat(400)],
    ['Infinity', 'Infinity'],
    ['-Infinity', '-Infinity'],
    ['1e400', '1e400'],
    ['an encoded NUL', '%00'],
  ])('answers 400 (location query) to limit=%s', async (_name, limit) => {
    const res = await t.inject({ method: 'GET', url: `/api/users?limit=${limit}` });
    expectInvalid(res, 'query', ['/limit']);
    expect(res.json<Problem>().instance).toBe('/api/users');
  });

  it('answers a declared status to a repeated limit (limit=10&limit=20)', async () => {
    const res = await t.inject({ method: 'GET', url: '/api/users?limit=10&limit=20' });
    expectInvalid(res, 'query', ['/limit']);
  });

  it.each([
    ['a plus sign', encodeURIComponent('a+b')],
    ['a slash', encodeURIComponent('a/b')],
    ['padding', encodeURIComponent('YWJj=')],
    ['a space', 'a%20b'],
    ['non-ASCII', encodeURIComponent('é')],
    ['an encoded NUL', '%00'],
    ['a lone surrogate (bad percent-encoding)', '%ED%A0%80'],
    ['bad percent-encoding', '%E0%A4%A'],
    ['201 characters', 'a'.repeat(201)],
    ['nothing', ''],
  ])('answers 400 (location query) to a cursor with %s', async (_name, cursor) => {
    const res = await t.inject({ method: 'GET', url: `/api/users?cursor=${cursor}` });
    expectInvalid(res, 'query', ['/cursor']);
  });

  it.each([
    ['/api/posts', 'a%00b'],
    ['/api/posts', '%00'],
    [`/api/users/${UNKNOWN_ID}/posts`, 'a%00b'],
  ])('answers 400 (location query) naming q to a search with a NUL: %s?q=%s', async (path, q) => {
    // It was an error of the database, a 400 naming no input.
    const res = await t.inject({ method: 'GET', url: `${path}?q=${q}` });
    expectInvalid(res, 'query', ['/q']);
  });

  it('answers 400 to a repeated cursor', async () => {
    const res = await t.inject({ method: 'GET', url: '/api/users?cursor=abc&cursor=def' });
    expectInvalid(res, 'query', ['/cursor']);
  });

  it.each([
    ['garbage', cursorOf('garbage')],
    ['random bytes', randomBytes(60).toString('base64url')],
    ['three parts', cursorOf(`2026-01-15T09:30:00.000Z|${UNKNOWN_ID}|x`)],
    ['a bad id', cursorOf('2026-01-15T09:30:00.000Z|not-a-uuid')],
    ['a time without milliseconds', cursorOf(`2026-01-15T09:30:00Z|${UNKNOWN_ID}`)],
    ['a time that is not a time', cursorOf(`2026-99-99T99:99:99.999Z|${UNKNOWN_ID}`)],
    [
      'an SQL injection',
      cursorOf(`2026-01-15T09:30:00.000Z'); DROP TABLE users; --|${UNKNOWN_ID}`),
    ],
  ])('answers 400 (location query) to a well-formed cursor that decodes to %s', async (_n, c) => {
    expect(c).toMatch(/^[A-Za-z0-9_-]+$/);
    const res = await t.inject({ method: 'GET', url: `/api/users?cursor=${c}` });
    expectInvalid(res, 'query', ['/cursor']);
  });

  it.each([
    ['year 0', cursorOf(`0000-01-01T00:00:00.000Z|${UNKNOWN_ID}`)],
    ['30 February', cursorOf(`2026-02-30T00:00:00.000Z|${UNKNOWN_ID}`)],
  ])(
    'answers 400 (location query) to a cursor holding a date PostgreSQL refuses: %s',
    async (_name, cursor) => {
      const res = await t.inject({ method: 'GET', url: `/api/users?cursor=${cursor}` });
      expectInvalid(res, 'query', ['/cursor']);
    },
  );

  it('ignores query parameters the operation does not declare', async () => {
    const res = await t.inject({
      method: 'GET',
      url: '/api/users?limit=1&__proto__=x&constructor=y&sort=DROP',
    });
    expect(res.statusCode).toBe(200);
    expect(({} as Json).x).toBeUndefined();
  });
});

describe('headers', () => {
  // The spec spells header parameters as HTTP does (If-Match); Node.js lower-cases the
  // names it receives, so they were never found, and their limits never checked.
  it.each([
    ['PATCH', 'If-Match', { title: 'x' }],
    ['DELETE', 'If-Match', undefined],
    ['GET', 'If-None-Match', undefined],
  ] as const)(
    'answers 400 (location header) to %s with an %s over 1000 characters',
    async (method, name, payload) => {
      const res = await t.inject({
        method,
        url: `/api/posts/${UNKNOWN_ID}`,
        headers: { ...owner.auth, [name]: `"${'x'.repeat(1000)}"` },
        ...(payload ? { payload } : {}),
      });
      expectInvalid(res, 'header', [`/${name.toLowerCase()}`]);
    },
  );

  const garbageToken = `Bearer ${randomBytes(7_680).toString('base64')}`;

  it('answers 401 to a bearer token of 10 KB of garbage', async () => {
    expect(garbageToken.length).toBeGreaterThan(10_000);
    const me = await t.inject({
      method: 'GET',
      url: '/api/auth/me',
      headers: { authorization: garbageToken },
    });
    expectProblem(me, 401, 'UNAUTHORIZED', '/api/auth/me');

    const patch = await refused(targets[1]!, () =>
      t.inject({
        method: 'PATCH',
        url: `/api/users/${owner.user.id}`,
        headers: { authorization: garbageToken },
        payload: { firstName: 'Mallory' },
      }),
    );
    expectProblem(patch, 401, 'UNAUTHORIZED');

    const remove = await refused(targets[1]!, () =>
      t.inject({
        method: 'DELETE',
        url: `/api/users/${owner.user.id}`,
        headers: { authorization: garbageToken },
      }),
    );
    expectProblem(remove, 401, 'UNAUTHORIZED');
  });

  it.each([
    ['an empty bearer token', 'Bearer '],
    ['the scheme alone', 'Bearer'],
    ['another scheme', 'Basic YWRhOnB3'],
    ['three dots of nothing', 'Bearer ..'],
    ['a token with a NUL escape', 'Bearer a.b%00.c'],
    ['an unsigned token', 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.'],
  ])('answers 401 to %s', async (_name, authorization) => {
    const res = await t.inject({ method: 'GET', url: '/api/auth/me', headers: { authorization } });
    expectProblem(res, 401, 'UNAUTHORIZED');
  });

  it('ignores a huge X-Request-Id and generates its own', async () => {
    const huge = 'r'.repeat(10_240);
    const res = await t.inject({
      method: 'GET',
      url: '/health',
      headers: { 'x-request-id': huge },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-request-id']).toMatch(uuidV4);

    const failed = await t.inject({
      method: 'POST',
      url: '/api/users',
      headers: { 'x-request-id': huge },
      payload: {},
    });
    expect(failed.statusCode).toBe(400);
    expect(failed.headers['x-request-id']).toMatch(uuidV4);
  });
});

describe('methods the spec does not declare', () => {
  // A path with GET has HEAD too (hardening.test.ts, "HEAD").
  it.each([
    ['HEAD', '/api/auth/login', 'POST'],
    ['OPTIONS', '/api/users', 'GET, HEAD, POST'],
    ['OPTIONS', `/api/users/${UNKNOWN_ID}`, 'GET, HEAD, PATCH, DELETE'],
    ['PUT', '/api/users', 'GET, HEAD, POST'],
    ['PUT', `/api/users/${UNKNOWN_ID}`, 'GET, HEAD, PATCH, DELETE'],
    ['PATCH', '/api/users', 'GET, HEAD, POST'],
    ['DELETE', '/api/users', 'GET, HEAD, POST'],
    ['POST', `/api/users/${UNKNOWN_ID}`, 'GET, HEAD, PATCH, DELETE'],
    ['POST', '/health', 'GET, HEAD'],
    ['TRACE', '/health', 'GET, HEAD'],
  ] as [Method, string, string][])('%s %s → 405 problem, Allow: %s', async (method, url, allow) => {
    const res = await t.inject({ method, url });
    expect(res.statusCode, res.body).toBe(405);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json\b/);
    expect(res.headers.allow).toBe(allow);
    // A HEAD answer has no body.
    if (method !== 'HEAD') expectProblem(res, 405, 'METHOD_NOT_ALLOWED', url);
  });

  it.each([
    ['2 MiB of text', 'text/plain', 'x'.repeat(2 * 1024 * 1024)],
    ['2 MiB of JSON', JSON_TYPE, JSON.stringify({ x: 'x'.repeat(2 * 1024 * 1024) })],
    ['malformed JSON', JSON_TYPE, '{"email":'],
    ['JSON with a NUL character', JSON_TYPE, '{"email":"\\u0000"}'],
    ['application/problem+json', 'application/problem+json', '{}'],
    ['a form', 'application/x-www-form-urlencoded', 'a=b'],
  ])(
    'answers 405 or 404 (not 413, 415 or 400) to %s sent to a route that does not exist',
    async (_name, contentType, payload) => {
      for (const [method, url, status] of [
        ['PUT', '/api/users', 405],
        ['POST', '/api/nope', 404],
        ['OPTIONS', '/api/users', 405],
      ] as [Method, string, number][]) {
        const res = await t.inject({
          method,
          url,
          headers: { 'content-type': contentType },
          payload,
        });
        expectProblem(res, status, status === 405 ? 'METHOD_NOT_ALLOWED' : 'NOT_FOUND', url);
      }
    },
  );
});

describe('bodies sent to operations that take none', () => {
  it('ignores a body on GET', async () => {
    const list = await t.inject({
      method: 'GET',
      url: '/api/users?limit=1',
      headers: { 'content-type': 'text/plain' },
      payload: 'hello',
    });
    expect(list.statusCode).toBe(200);
    const read = await t.inject({
      method: 'GET',
      url: `/api/users/${owner.user.id}`,
      headers: { 'content-type': JSON_TYPE },
      payload: '{"broken":',
    });
    expect(read.statusCode).toBe(200);
  });

  it('answers DELETE with a non-JSON body with a declared status', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const res = await t.inject({
      method: 'DELETE',
      url: `/api/users/${user.id}`,
      headers: { ...auth, 'content-type': 'text/plain' },
      payload: 'please',
    });
    expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('answers DELETE with a body over 1 MiB with a declared status', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const res = await t.inject({
      method: 'DELETE',
      url: `/api/users/${user.id}`,
      headers: { ...auth, 'content-type': JSON_TYPE },
      payload: JSON.stringify({ reason: 'x'.repeat(2 * 1024 * 1024) }),
    });
    expectProblem(res, 413, 'PAYLOAD_TOO_LARGE');
  });
});

describe('the bounds of a problem (Problem and ProblemItem in the spec)', () => {
  it('cuts a pointer to an unknown property longer than 1,000 characters', async () => {
    const name = `k${'x'.repeat(1999)}`;
    const res = await t.inject({
      method: 'POST',
      url: '/api/users',
      payload: { ...newUser(), [name]: 1 },
    });
    const problem = expectProblem(res, 400, 'VALIDATION_ERROR');
    const pointer = problem.errors?.[0]?.pointer ?? '';
    expect(pointer).toHaveLength(1000);
    expect(pointer).toMatch(/^\/kx+…$/);
  });

  it('cuts a detail longer than 1,000 characters (a method a long path does not have)', async () => {
    const url = `/api/users/${'a'.repeat(5000)}`;
    const res = await t.inject({ method: 'PUT', url });
    const problem = expectProblem(res, 405, 'METHOD_NOT_ALLOWED', url);
    expect(problem.detail).toHaveLength(1000);
    expect(problem.detail).toMatch(/^PUT is not a method of \/api\/users\/a+…$/);
  });
});
