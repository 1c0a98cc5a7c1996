// Process lifecycle as the health endpoints see it: set to draining the moment shutdown begins,
// so load balancers stop sending traffic before the listener closes.
export class Lifecycle {
  readonly startedAt = Date.now();
  private drainingSince: number | undefined;

  get draining(): boolean {
    return this.drainingSince !== undefined;
  }

  beginDraining(): void {
    this.drainingSince ??= Date.now();
  }
}
