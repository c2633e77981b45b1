/**
 * The methods of the spec's operations on a request's path, as the router sees it: a
 * `{parameter}` segment stands for any one segment (even an empty one, as for the router), every other segment for
 * itself. The router keeps a tree per method, so a request matches an operation exactly
 * when its path matches that operation's path, whatever the other paths are: the union
 * below is what the router would find, method by method.
 *
 * Used where no route matched: a path with methods gets 405 and `Allow`, one without 404.
 * A path with GET has HEAD too.
 */
export type AllowedMethods = (url: string) => readonly string[];

/** From the spec's operations (`operationsOf`): their methods in capitals, their paths as written. */
export function allowedMethodsOf(
  operations: readonly { method: string; path: string }[],
): AllowedMethods {
  const byPath = new Map<string, { segments: (string | null)[]; methods: string[] }>();
  for (const { method, path } of operations) {
    let entry = byPath.get(path);
    if (!entry) {
      const segments = path
        .split('/')
        .map((segment) => (/^\{\w+\}$/.test(segment) ? null : segment));
      entry = { segments, methods: [] };
      byPath.set(path, entry);
    }
    entry.methods.push(method);
    // Every GET answers HEAD too (RFC 9110 §9.3.2; see "HEAD" in the spec).
    if (method === 'GET') entry.methods.push('HEAD');
  }
  const paths = [...byPath.values()];
  const order = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'];

  return (url) => {
    const segments = (url.split('?', 1)[0] ?? url).split('/');
    const found = new Set<string>();
    for (const path of paths) {
      if (path.segments.length !== segments.length) continue;
      const matches = path.segments.every((expected, index) => {
        const actual = segments[index];
        return expected === null || expected === actual;
      });
      if (matches) for (const method of path.methods) found.add(method);
    }
    return order.filter((method) => found.has(method));
  };
}
