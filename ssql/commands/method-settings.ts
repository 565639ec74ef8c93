// The command-line flags of the methods' own settings (MethodSettings): one flag each, accepted
// only for the methods that read it (their registry entries list it with its default).
import { UsageError } from '../cli-args.ts';
import type { OptionSpec, ParsedArgs } from '../cli-args.ts';
import type { MethodSettings } from '../methods/method.ts';
import { METHODS, methodByName } from '../methods/registry.ts';

type SettingKey = keyof Required<MethodSettings>;

const FLAGS: Record<SettingKey, { flag: string; help: string; integer: boolean; check: (v: number) => boolean; rule: string }> = {
  emaMomentum: { flag: 'ema-momentum', help: "momentum of BYOL's target / MoCo's key encoder", integer: false, check: (v) => v >= 0 && v <= 1, rule: 'a number in [0, 1]' },
  mocoDim: { flag: 'moco-dim', help: "MoCo's key dimension", integer: true, check: (v) => v >= 1, rule: 'a positive integer' },
  mocoQueue: { flag: 'moco-queue', help: "MoCo's queue size (negatives)", integer: true, check: (v) => v >= 1, rule: 'a positive integer' },
  mocoTemperature: { flag: 'moco-temperature', help: "MoCo's InfoNCE temperature", integer: false, check: (v) => v > 0, rule: 'a positive number' },
};

/** The methods that read `key`, with their defaults, for the help text. */
function readers(key: SettingKey): string {
  return METHODS.filter((m) => m.settings[key] !== undefined).map((m) => `${m.name} ${m.settings[key]}`).join(', ');
}

/** One option per setting (no default: each method has its own). */
export function methodSettingOptions(): Record<string, OptionSpec> {
  return Object.fromEntries(Object.entries(FLAGS).map(([key, f]) => [f.flag, { type: 'number', help: `${f.help} (default per method: ${readers(key as SettingKey)})` } satisfies OptionSpec]));
}

/** The flags of the settings that at least one of `methods` reads (a command that runs only
 * these methods offers only these). */
export function methodSettingFlags(methods: readonly string[]): string[] {
  return Object.entries(FLAGS).filter(([key]) => methods.some((m) => methodByName(m).settings[key as SettingKey] !== undefined)).map(([, f]) => f.flag);
}

/** The settings given on the command line for `method`; a flag its method does not read is an
 * error. */
export function methodSettingsFromArgs(a: ParsedArgs, method: string): MethodSettings {
  const m = methodByName(method);
  const out: MethodSettings = {};
  for (const [key, f] of Object.entries(FLAGS) as [SettingKey, (typeof FLAGS)[SettingKey]][]) {
    const v = a[f.flag];
    if (v === undefined) continue;
    if (m.settings[key] === undefined) throw new UsageError(`--${f.flag} is not a setting of --method ${method} (it is for ${readers(key).replace(/ [\d.]+/g, '')})`);
    if (typeof v !== 'number' || !f.check(v) || (f.integer && !Number.isInteger(v))) throw new UsageError(`--${f.flag} must be ${f.rule}, got ${String(v)}`);
    out[key] = v;
  }
  return out;
}
