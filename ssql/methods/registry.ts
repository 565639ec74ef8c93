// The pretraining methods, in the order the CLI and the demo offer them (the first is the
// default). A new method is one `defineMethod` entry (in its family's file or a new one) added
// to this list; the trainer, `--method` and the demo's menu follow from it.
import { BYOL, SSQL_BYOL } from './byol.ts';
import type { Method } from './method.ts';
import { MOCO_V2, SSQL_MOCO } from './moco.ts';
import { SIMSIAM, SSQL } from './simsiam.ts';

export const METHODS = [SSQL, SIMSIAM, BYOL, SSQL_BYOL, MOCO_V2, SSQL_MOCO] as const;

export type MethodName = (typeof METHODS)[number]['name'];

export const METHOD_NAMES: readonly MethodName[] = METHODS.map((m) => m.name);

/** The registry entry called `name`; an unknown name is an error that lists the known ones. */
export function methodByName(name: string): Method<MethodName> {
  const m = METHODS.find((entry) => entry.name === name);
  if (!m) throw new RangeError(`unknown method '${name}': use one of ${METHOD_NAMES.join(', ')}`);
  return m;
}
