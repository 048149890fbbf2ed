/**
 * Changes netnsd is making, by namespace. A kernel event caused by one of them must show what
 * the change ends with — a link netnsd creates is `managed` and labelled, but its record is
 * written after the kernel has announced it — so the monitor holds a namespace's events until
 * the changes under way in it have ended (up to a bound), then builds their objects.
 */
export class ChangeGate {
  private readonly held = new Map<string, number>();
  private readonly waiters = new Map<string, Array<() => void>>();
  private readonly released = new Set<(ns: string) => void>();

  /** Marks changes under way in these namespaces; call the returned function when they end. */
  hold(namespaces: Iterable<string>): () => void {
    const names = [...new Set(namespaces)];
    for (const n of names) this.held.set(n, (this.held.get(n) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const n of names) {
        const left = (this.held.get(n) ?? 1) - 1;
        if (left > 0) {
          this.held.set(n, left);
          continue;
        }
        this.held.delete(n);
        for (const w of this.waiters.get(n) ?? []) w();
        this.waiters.delete(n);
        for (const l of this.released) l(n);
      }
    };
  }

  /** Runs `f` with the namespaces held. */
  async around<T>(namespaces: Iterable<string>, f: () => Promise<T>): Promise<T> {
    const release = this.hold(namespaces);
    try {
      return await f();
    } finally {
      release();
    }
  }

  busy(ns: string): boolean {
    return this.held.has(ns);
  }

  /** Resolves when no change is under way in `ns` (at once when none is). */
  idle(ns: string): Promise<void> {
    if (!this.held.has(ns)) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.waiters.get(ns) ?? [];
      list.push(resolve);
      this.waiters.set(ns, list);
    });
  }

  /** Calls `l` whenever the last change under way in a namespace ends. */
  onReleased(l: (ns: string) => void): () => void {
    this.released.add(l);
    return () => this.released.delete(l);
  }
}
