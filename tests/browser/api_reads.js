// Loaded into every test tab before the console's own scripts (Playwright add_init_script):
// reports each property the console reads from an API answer, as
// "<METHOD> <path> <status> <field path>", to the test (window.__apiRead, a Playwright binding),
// which checks every one against the OpenAPI document. Answers are wrapped in read-recording
// Proxies at JSON.parse, tagged by the fetch that brought their text.
(() => {
  const reads = new Set();
  const report = (read) => {
    if (reads.has(read)) return;
    reads.add(read);
    if (typeof window.__apiRead === "function") window.__apiRead(read);
  };
  const tagged = new Map(); // response text -> "METHOD /api/... status"
  // Reads that are the language's, not the console's (a Promise resolving to an answer asks
  // for .then; JSON.stringify for .toJSON).
  const NOT_FIELDS = new Set(["then", "toJSON", "constructor"]);

  const wrap = (value, operation, path) => {
    if (value === null || typeof value !== "object") return value;
    return new Proxy(value, {
      get(target, key, receiver) {
        const got = Reflect.get(target, key, receiver);
        if (typeof key === "symbol") return got;
        if (Array.isArray(target)) {
          // Indices are items; length and the methods are the array's own.
          return /^\d+$/.test(key) ? wrap(got, operation, `${path}[]`) : got;
        }
        if (!Object.hasOwn(target, key) && (NOT_FIELDS.has(key) || typeof got === "function")) {
          return got;
        }
        const field = `${path}.${key}`;
        report(`${operation} ${field}`);
        return wrap(got, operation, field);
      },
    });
  };

  const realFetch = window.fetch.bind(window);
  window.fetch = async (input, init = {}) => {
    const response = await realFetch(input, init);
    const url = new URL(typeof input === "string" ? input : input.url, window.location.href);
    if (url.origin !== window.location.origin || !url.pathname.startsWith("/api/")) {
      return response;
    }
    const operation = `${(init.method || "GET").toUpperCase()} ${url.pathname} ${response.status}`;
    const text = response.text.bind(response);
    response.text = async () => {
      const body = await text();
      tagged.set(body, operation);
      return body;
    };
    return response;
  };

  const realParse = JSON.parse;
  JSON.parse = (text, reviver) => {
    const value = realParse(text, reviver);
    const operation = tagged.get(text);
    if (operation === undefined) return value;
    tagged.delete(text);
    return wrap(value, operation, "");
  };
})();
