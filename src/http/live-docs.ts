/**
 * The WebSocket's reference at /docs/live: one HTML page made on the server from
 * generated/asyncapi.json (openapi/asyncapi.yaml bundled), with no script at all, a
 * stylesheet of its own and nothing from another host. It shows what a client author
 * needs: the address, the introduction, every channel with the messages it carries (which
 * side sends each, and the operations' answers), every message with its payload schema and
 * examples, the close codes and the limits, and the schemas the payloads refer to, each
 * `$ref` a link to its schema.
 *
 * Why not @asyncapi/react-component: its standalone bundle (3 MB of script) renders the
 * same document offline, but it would be a production dependency whose install pulls the
 * AsyncAPI parser, the Avro and Protobuf schema parsers and isomorphic-dompurify (jsdom),
 * and its page needs a script-enabled policy. This page is built once at start-up.
 */

export const LIVE_DOCS_PATH = '/docs/live';
export const LIVE_DOCS_STYLE_PATH = '/docs/live/style.css';
export const LIVE_DOCS_DOCUMENT_PATH = '/docs/live/asyncapi.json';

type Json = Record<string, unknown>;

interface Message {
  name?: string;
  title?: string;
  summary?: string;
  description?: string;
  payload: { $ref?: string } & Json;
  examples?: { name?: string; summary?: string; payload?: unknown }[];
}

interface Channel {
  address?: string | null;
  title?: string;
  description?: string;
  parameters?: Record<string, { description?: string; examples?: unknown[] }>;
  messages?: Record<string, { $ref: string }>;
}

interface Operation {
  action: 'send' | 'receive';
  channel: { $ref: string };
  title?: string;
  summary?: string;
  messages: { $ref: string }[];
  reply?: { messages?: { $ref: string }[] };
}

/** What the page reads of the bundled AsyncAPI document. */
export interface LiveDocsDocument {
  info: { title: string; version: string; description?: string };
  servers?: Record<
    string,
    { host: string; protocol: string; pathname?: string; description?: string }
  >;
  channels: Record<string, Channel>;
  operations: Record<string, Operation>;
  components: { messages: Record<string, Message>; schemas: Record<string, unknown> };
  'x-close-codes'?: Record<string, { code: number; reconnect?: string; description?: string }>;
  'x-limits'?: Record<string, number>;
}

const escape = (text: string): string =>
  text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;');

/** The last part of a local `$ref` (`#/components/messages/auth` → `auth`). */
const refName = (ref: string): string => ref.split('/').at(-1) ?? ref;

const messageAnchor = (name: string) => `message-${name}`;
const schemaAnchor = (name: string) => `schema-${name}`;
const channelAnchor = (name: string) => `channel-${name}`;

/** Inline Markdown of the descriptions: `code`, **strong**, and [links](/…) to this server or https. */
function inline(text: string): string {
  return escape(text)
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
    .replace(
      /\[([^\]]+)\]\(((?:\/|https:\/\/)[^)\s]*)\)/g,
      (_match, label: string, href: string) => `<a href="${href}">${label}</a>`,
    );
}

/**
 * The block Markdown the document's descriptions use: paragraphs, `##` headings, `-` lists
 * (with continuation lines) and pipe tables. Anything else stays a paragraph of text.
 */
export function markdown(text: string, headingLevel = 3): string {
  const out: string[] = [];
  const blocks = text.trim().split(/\n\s*\n/);
  for (const block of blocks) {
    const lines = block.split('\n');
    const heading = /^#{1,6}\s+(.*)$/.exec(lines[0]!.trim());
    if (heading) {
      out.push(`<h${headingLevel}>${inline(heading[1]!)}</h${headingLevel}>`);
      lines.shift();
      if (lines.length === 0) continue;
    }
    const rest = lines.join('\n').trim();
    if (rest.startsWith('|')) {
      const rows = rest
        .split('\n')
        .map((row) => row.trim().replace(/^\|/, '').replace(/\|$/, '').split('|'))
        .filter((cells) => !cells.every((cell) => /^\s*:?-+:?\s*$/.test(cell)));
      const [head = [], ...body] = rows;
      out.push(
        '<table>',
        `<thead><tr>${head.map((cell) => `<th>${inline(cell.trim())}</th>`).join('')}</tr></thead>`,
        '<tbody>',
        ...body.map(
          (cells) => `<tr>${cells.map((cell) => `<td>${inline(cell.trim())}</td>`).join('')}</tr>`,
        ),
        '</tbody></table>',
      );
    } else if (/^[-*]\s/.test(rest)) {
      const items: string[] = [];
      let before = '';
      for (const line of rest.split('\n')) {
        if (/^[-*]\s/.test(line)) items.push(line.replace(/^[-*]\s+/, ''));
        else if (items.length > 0) items[items.length - 1] += ` ${line.trim()}`;
        else before += `${line} `;
      }
      if (before) out.push(`<p>${inline(before.trim())}</p>`);
      out.push(`<ul>${items.map((item) => `<li>${inline(item)}</li>`).join('')}</ul>`);
    } else if (rest !== '') {
      // A paragraph that ends in a list: the lines from the first `- ` on are the list.
      const listAt = rest.split('\n').findIndex((line) => /^[-*]\s/.test(line));
      if (listAt > 0) {
        const all = rest.split('\n');
        out.push(`<p>${inline(all.slice(0, listAt).join(' '))}</p>`);
        out.push(markdown(all.slice(listAt).join('\n'), headingLevel));
      } else {
        out.push(`<p>${inline(rest.replace(/\s*\n\s*/g, ' '))}</p>`);
      }
    }
  }
  return out.join('\n');
}

/** Pretty JSON, escaped, each local `$ref` to a schema or message a link to it on the page. */
function json(value: unknown): string {
  return escape(JSON.stringify(value, null, 2)).replace(
    /(&quot;\$ref&quot;: &quot;)#\/components\/(schemas|messages)\/([A-Za-z0-9_.-]+)(&quot;)/g,
    (_match, start: string, kind: string, name: string, end: string) => {
      const anchor = kind === 'schemas' ? schemaAnchor(name) : messageAnchor(name);
      return `${start}<a href="#${anchor}">#/components/${kind}/${name}</a>${end}`;
    },
  );
}

/** Who sends each message, from the operations: the client (`receive`) or the server. */
function senders(document: LiveDocsDocument): Map<string, 'client' | 'server'> {
  const resolve = (ref: string): string => {
    // An operation names a channel's message, itself a $ref to components/messages.
    const [, , channel, , message] = ref.split('/');
    const target = document.channels[channel ?? '']?.messages?.[message ?? '']?.$ref;
    return refName(target ?? ref);
  };
  const sides = new Map<string, 'client' | 'server'>();
  for (const operation of Object.values(document.operations)) {
    for (const ref of operation.messages)
      sides.set(resolve(ref.$ref), operation.action === 'receive' ? 'client' : 'server');
    for (const ref of operation.reply?.messages ?? []) sides.set(resolve(ref.$ref), 'server');
  }
  return sides;
}

const sideLabel = { client: 'client → server', server: 'server → client' } as const;

function channelSection(
  name: string,
  channel: Channel,
  sides: Map<string, 'client' | 'server'>,
  operations: [string, Operation][],
  messagesByName: Record<string, Message>,
): string {
  const address = channel.address ?? null;
  const messages = Object.values(channel.messages ?? {}).map((ref) => refName(ref.$ref));
  const parameters = Object.entries(channel.parameters ?? {});
  const ops = operations.filter(([, operation]) => operation.channel.$ref === `#/channels/${name}`);
  return `<section class="channel" id="${channelAnchor(name)}">
<h3>${address === null ? '<span class="none">(the connection itself)</span>' : `<code class="channel-name">${escape(address)}</code>`} ${channel.title ? `<span class="title">${escape(channel.title)}</span>` : ''}</h3>
${markdown(channel.description ?? '', 4)}
${
  parameters.length > 0
    ? `<dl class="parameters">${parameters
        .map(
          ([parameter, facts]) =>
            `<dt><code>{${escape(parameter)}}</code></dt><dd>${inline(facts.description ?? '')}${
              facts.examples?.length
                ? ` For example <code>${escape(String(facts.examples[0]))}</code>.`
                : ''
            }</dd>`,
        )
        .join('')}</dl>`
    : ''
}
<table class="messages">
<thead><tr><th>message</th><th>sent</th><th>what</th></tr></thead>
<tbody>
${messages
  .map((message) => {
    const side = sides.get(message);
    return `<tr><td><a href="#${messageAnchor(message)}"><code>${escape(message)}</code></a></td><td>${side ? sideLabel[side] : ''}</td><td>${inline(messagesByName[message]?.summary ?? '')}</td></tr>`;
  })
  .join('\n')}
</tbody>
</table>
${
  ops.length > 0
    ? `<ul class="operations">${ops
        .map(([id, operation]) => {
          const asks = operation.messages.map((ref) => `<code>${escape(refName(ref.$ref))}</code>`);
          const answers = (operation.reply?.messages ?? []).map(
            (ref) => `<code>${escape(refName(ref.$ref))}</code>`,
          );
          return `<li><strong>${escape(operation.title ?? id)}</strong> (<code>${escape(id)}</code>, ${
            operation.action === 'receive' ? 'the client sends' : 'the server sends'
          } ${asks.join(', ')}${answers.length > 0 ? `; answered with ${answers.join(' or ')}` : ''}): ${inline(operation.summary ?? '')}</li>`;
        })
        .join('\n')}</ul>`
    : ''
}
</section>`;
}

function messageSection(
  name: string,
  message: Message,
  schemas: Record<string, unknown>,
  side: 'client' | 'server' | undefined,
): string {
  const payloadRef = message.payload.$ref;
  const payloadName = payloadRef ? refName(payloadRef) : undefined;
  const payload = payloadName ? schemas[payloadName] : message.payload;
  return `<section class="message" id="${messageAnchor(name)}">
<h3><code>${escape(message.name ?? name)}</code> ${message.title ? `<span class="title">${escape(message.title)}</span>` : ''} ${side ? `<span class="side">${sideLabel[side]}</span>` : ''}</h3>
${message.summary ? `<p>${inline(message.summary)}</p>` : ''}
${message.description ? markdown(message.description, 4) : ''}
<h4>Payload${payloadName ? `: <a href="#${schemaAnchor(payloadName)}"><code>${escape(payloadName)}</code></a>` : ''}</h4>
<pre><code>${json(payload)}</code></pre>
${(message.examples ?? [])
  .map(
    (example, index) =>
      `<h4>Example${example.name ? ` <code>${escape(example.name)}</code>` : ` ${index + 1}`}</h4>
<pre class="example"><code>${json(example.payload)}</code></pre>`,
  )
  .join('\n')}
</section>`;
}

/** The addresses to connect to. */
function serversSection(document: LiveDocsDocument): string {
  return `<section id="servers">
<h2>Servers</h2>
<ul>
${Object.entries(document.servers ?? {})
  .map(
    ([name, server]) =>
      `<li><code>${escape(`${server.protocol}://${server.host}${server.pathname ?? ''}`)}</code> (${escape(name)})${server.description ? `: ${inline(server.description)}` : ''}</li>`,
  )
  .join('\n')}
</ul>
</section>`;
}

/** `x-close-codes` and `x-limits`, as programs read them. */
function closeCodesAndLimits(document: LiveDocsDocument): string {
  return `<section id="close-codes">
<h2>Close codes</h2>
<table>
<thead><tr><th>code</th><th>name</th><th>reconnect</th><th>when</th></tr></thead>
<tbody>
${Object.entries(document['x-close-codes'] ?? {})
  .map(
    ([name, close]) =>
      `<tr><td><code>${close.code}</code></td><td><code>${escape(name)}</code></td><td>${escape(close.reconnect ?? '')}</td><td>${inline((close.description ?? '').trim().replace(/\s*\n\s*/g, ' '))}</td></tr>`,
  )
  .join('\n')}
</tbody>
</table>
</section>
<section id="limits">
<h2>Limits</h2>
<p>The defaults (<code>x-limits</code>); a deployment may change some of them (the <code>LIVE_*</code> settings).</p>
<table>
<thead><tr><th>limit</th><th>value</th></tr></thead>
<tbody>
${Object.entries(document['x-limits'] ?? {})
  .map(([name, value]) => `<tr><td><code>${escape(name)}</code></td><td>${value}</td></tr>`)
  .join('\n')}
</tbody>
</table>
</section>`;
}

/** The page, made once: the document does not change while the server runs. */
export function liveDocsPage(document: LiveDocsDocument): string {
  const { info, channels, components } = document;
  const sides = senders(document);
  const operations = Object.entries(document.operations);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(info.title)}: reference</title>
<link rel="stylesheet" href="${LIVE_DOCS_STYLE_PATH}">
</head>
<body>
<header>
<h1>${escape(`${info.title} ${info.version}`)}</h1>
<p class="links">The WebSocket <code>GET /api/live</code>. The REST API: <a href="/docs">its reference</a>.
This page is made from <a href="${LIVE_DOCS_DOCUMENT_PATH}">the AsyncAPI 3 document</a>
(<code>openapi/asyncapi.yaml</code>).</p>
<nav>
<a href="#servers">Servers</a> · <a href="#channels">Channels</a> · <a href="#messages">Messages</a> ·
<a href="#close-codes">Close codes</a> · <a href="#limits">Limits</a> · <a href="#schemas">Schemas</a>
</nav>
</header>
<main>
${serversSection(document)}
<section id="introduction">
${markdown(info.description ?? '', 3)}
</section>
<section id="channels">
<h2>Channels</h2>
${Object.entries(channels)
  .map(([name, channel]) => channelSection(name, channel, sides, operations, components.messages))
  .join('\n')}
</section>
<section id="messages">
<h2>Messages</h2>
${Object.entries(components.messages)
  .map(([name, message]) => messageSection(name, message, components.schemas, sides.get(name)))
  .join('\n')}
</section>
${closeCodesAndLimits(document)}
<section id="schemas">
<h2>Schemas</h2>
${Object.entries(components.schemas)
  .map(
    ([name, schema]) => `<section class="schema" id="${schemaAnchor(name)}">
<h3><code>${escape(name)}</code></h3>
<pre><code>${json(schema)}</code></pre>
</section>`,
  )
  .join('\n')}
</section>
</main>
</body>
</html>
`;
}

export const liveDocsStyle = `body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fff}
header,main{max-width:960px;margin:0 auto;padding:0 16px}
header{border-bottom:1px solid #ddd;padding-bottom:8px}
h1{font-size:1.6em;margin:16px 0 4px}
h2{border-bottom:1px solid #ddd;margin-top:32px}
h3 .title,h3 .side{font-weight:normal;color:#555;margin-left:8px}
h3 .side{font-size:.8em;border:1px solid #bbb;border-radius:4px;padding:0 6px}
code{font:13px/1.4 ui-monospace,Menlo,Consolas,monospace;background:#f4f4f4;padding:0 3px;border-radius:3px}
pre{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:4px;padding:8px;overflow:auto}
pre code{background:none;padding:0}
pre.example{background:#fbfbf2}
table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
section.channel,section.message,section.schema{border-left:3px solid #4a7bd0;padding-left:12px;margin:20px 0}
section.message{border-color:#49a36a}
section.schema{border-color:#aaa}
.none{color:#555;font-style:italic}
a{color:#2456b3}
`;
