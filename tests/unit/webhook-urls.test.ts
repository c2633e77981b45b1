import { describe, expect, it } from 'vitest';
import { createWebhookSecret } from '../../src/lib/webhooks/signing.js';
import { urlProblem } from '../../src/modules/webhooks/service.js';

const development = { production: false, allowHttp: false };
const production = { production: true, allowHttp: false };
const productionWithHttp = { production: true, allowHttp: true };

describe('urlProblem: the URLs an endpoint may have', () => {
  it.each([
    ['https://hooks.example.com/in', development],
    ['http://localhost:8080/in', development],
    ['https://hooks.example.com:8443/in?x=1', production],
    ['http://hooks.example.com/in', productionWithHttp],
  ])('takes %s', (url, rules) => {
    expect(urlProblem(url, rules)).toBeNull();
  });

  it.each([
    ['hooks.example.com/in', development, 'must be an absolute URL'],
    ['ftp://hooks.example.com/in', development, 'must be http or https'],
    ['javascript:alert(1)', development, 'must be http or https'],
    ['https://ada:secret@hooks.example.com/', development, 'must not hold a user name or password'],
    ['https://:secret@hooks.example.com/', development, 'must not hold a user name or password'],
    ['http://hooks.example.com/in', production, 'must be https'],
  ])('refuses %s', (url, rules, problem) => {
    expect(urlProblem(url, rules)).toBe(problem);
  });
});

describe('createWebhookSecret', () => {
  it('is whsec_ and the base64 of 32 random bytes, new each time', () => {
    const secrets = new Set(Array.from({ length: 20 }, () => createWebhookSecret()));
    expect(secrets.size).toBe(20);
    for (const secret of secrets) {
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(32);
    }
  });
});
