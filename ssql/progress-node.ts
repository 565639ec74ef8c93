// Node only: a one-line progress bar on a terminal (stderr), plain periodic lines otherwise.

export interface ProgressState {
  epoch: number;
  epochs: number;
  step: number;
  total: number;
  loss: number;
  ips: number;
  eta: number;
}

function duration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(sec).padStart(2, '0')}s`;
}

export class Progress {
  private readonly tty = Boolean(process.stderr.isTTY);
  private last: ProgressState | null = null;

  constructor(private readonly quiet: boolean) {}

  private line(s: ProgressState, step = s.step): string {
    const width = 24;
    const filled = Math.round((step / Math.max(s.total, 1)) * width);
    return `epoch ${s.epoch}/${s.epochs} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] step ${step}/${s.total}  ${s.ips.toFixed(1)} img/s  ETA ${duration(s.eta)}  loss ${s.loss.toFixed(4)}`;
  }

  update(s: ProgressState): void {
    this.last = s;
    if (this.quiet) return;
    if (this.tty) process.stderr.write(`\r${this.line(s)}\x1b[K`);
    else process.stderr.write(`${this.line(s)}\n`);
  }

  tick(step: number, total: number): void {
    if (this.quiet || !this.tty || !this.last) return;
    process.stderr.write(`\r${this.line({ ...this.last, total }, step)}\x1b[K`);
  }

  done(): void {
    if (!this.quiet && this.tty && this.last) process.stderr.write('\n');
  }
}
