// A store whose calls a test can see (and make fail), for asserting what is written and for how long.

/**
 * `target` with each method call reported to `onCall` (its name and arguments) before it runs; when
 * `fail` returns an error, the call rejects with it instead of running.
 */
export function watched<T extends object>(
  target: T,
  onCall: (name: string, args: unknown[]) => void,
  fail: (name: string) => Error | undefined = () => undefined,
): T {
  return new Proxy(target, {
    get(object, name, receiver) {
      const original = Reflect.get(object, name, receiver) as unknown;
      if (typeof original !== 'function') return original;
      return (...args: unknown[]) => {
        onCall(String(name), args);
        const error = fail(String(name));
        return error ? Promise.reject(error) : (original as (...a: unknown[]) => unknown).apply(object, args);
      };
    },
  });
}
