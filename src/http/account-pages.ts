import type { FastifyPluginAsync } from 'fastify';

/**
 * The pages the links in account emails open, outside production: `/verify-email?token=…`
 * and `/reset-password?token=…` on this server (PUBLIC_URL unset), where in production
 * the client application has them. Each is what such a page does: it posts the token to
 * the API (`verifyEmail`, `resetPassword`) when the reader asks, never on GET (mail
 * scanners open links), and shows the answer, with the same call as a curl command.
 *
 * Pages for people, not operations: the spec lists them in `x-excluded-routes`.
 */

interface Page {
  path: string;
  title: string;
  intro: string;
  /** The form's fields besides the token. */
  fields: string;
  button: string;
  operation: string;
  curlBody: string;
}

const pages: Page[] = [
  {
    path: '/verify-email',
    title: 'Verify your email address',
    intro: 'Confirms the address this link was sent to.',
    fields: '',
    button: 'Verify',
    operation: '/api/auth/email/verify',
    curlBody: '{"token":"TOKEN"}',
  },
  {
    path: '/reset-password',
    title: 'Choose a new password',
    intro: 'Sets a new password and ends every session of the account.',
    fields:
      '<label>New password <input name="newPassword" type="password" autocomplete="new-password" minlength="8" maxlength="72" required></label>',
    button: 'Set the password',
    operation: '/api/auth/password/reset',
    curlBody: '{"token":"TOKEN","newPassword":"…"}',
  },
];

const SCRIPT_PATH = '/account-pages.js';

/**
 * Reads the token from the address (it is never written into the page by the server),
 * posts the form as JSON, and shows the status and the problem's detail.
 */
const script = `'use strict';
const token = new URLSearchParams(location.search).get('token') || '';
const form = document.querySelector('form');
const result = document.querySelector('output');
const curl = document.querySelector('pre code');
curl.textContent = curl.textContent
  .replace('ORIGIN', location.origin)
  .replace('TOKEN', token || '<the token from the link>');
if (!token) result.textContent = 'This link has no token: open the link from the email as it is.';
form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = { token };
  for (const [name, value] of new FormData(form)) body[name] = value;
  result.textContent = '…';
  try {
    const response = await fetch(form.dataset.operation, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (response.ok) {
      result.textContent = 'Done (' + response.status + ').';
      form.querySelector('button').disabled = true;
      return;
    }
    const problem = await response.json().catch(() => ({}));
    result.textContent = response.status + ' ' + (problem.detail || problem.title || response.statusText);
  } catch (error) {
    result.textContent = 'The API did not answer: ' + error;
  }
});
`;

function html(page: Page): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${page.title}</title>
<script src="${SCRIPT_PATH}" defer></script>
</head>
<body>
<h1>${page.title}</h1>
<p>${page.intro}</p>
<form data-operation="${page.operation}">
${page.fields}
<button type="submit">${page.button}</button>
</form>
<p><output role="status"></output></p>
<p>This page is served by the API outside production, for the links in the development log.
In production, <code>PUBLIC_URL</code> points at your application, whose page makes the same call:</p>
<pre><code>curl -X POST ORIGIN${page.operation} -H 'content-type: application/json' -d '${page.curlBody}'</code></pre>
<p>See <a href="/docs">the API reference</a>.</p>
</body>
</html>
`;
}

const policy = [
  "default-src 'none'",
  "script-src 'self'",
  "connect-src 'self'",
  "form-action 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Encapsulated: its headers are for its pages only. */
export const accountPages: FastifyPluginAsync = async (scope) => {
  scope.addHook('onSend', (_request, reply, payload, done) => {
    // The address holds a credential: kept out of caches and of other sites' logs.
    reply.header('cache-control', 'no-store');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('content-security-policy', policy);
    done(null, payload);
  });
  for (const page of pages) {
    const body = html(page);
    scope.get(page.path, (_request, reply) => {
      void reply.type('text/html; charset=utf-8').send(body);
    });
  }
  scope.get(SCRIPT_PATH, (_request, reply) => {
    void reply.type('text/javascript; charset=utf-8').send(script);
  });
};
