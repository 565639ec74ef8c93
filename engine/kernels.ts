// The kernel registry: WGSL sources from `shaders/`, specialized by a small visible template
// mechanism, compiled once per specialization and cached.
//
// Templates: a shader may contain `{{NAME}}` placeholders; `defines` supplies their text. Every
// placeholder must be defined (a missing one is an error naming it), so a reader of the .wgsl
// file sees exactly which parts vary. Numeric tuning knobs that do not change code structure
// can instead be WGSL `override` constants, passed as `overrides`.

export interface KernelSpec {
  /** Kernel family, used in labels and error messages (e.g. 'matmul'). */
  name: string;
  source: string;
  entryPoint?: string;
  defines?: Record<string, string | number | boolean>;
  overrides?: Record<string, number>;
}

export function expandTemplate(name: string, source: string, defines: Record<string, string | number | boolean> = {}): string {
  return source.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (!(key in defines)) throw new Error(`kernel '${name}': template placeholder {{${key}}} has no value`);
    return String(defines[key]);
  });
}

export class KernelCache {
  /** Print each kernel's WGSL when it is first compiled (debugging aid). */
  printSource = false;
  compiled = 0;
  private pipelines = new Map<string, GPUComputePipeline>();
  private readonly device: GPUDevice;

  constructor(device: GPUDevice) {
    this.device = device;
  }

  get(spec: KernelSpec): GPUComputePipeline {
    const key = `${spec.name}|${spec.entryPoint ?? 'main'}|${JSON.stringify(spec.defines ?? {})}|${JSON.stringify(spec.overrides ?? {})}`;
    let pipeline = this.pipelines.get(key);
    if (!pipeline) {
      const code = expandTemplate(spec.name, spec.source, spec.defines);
      if (this.printSource) console.log(`// ---- kernel ${key}\n${code}`);
      const module = this.device.createShaderModule({ label: spec.name, code });
      pipeline = this.device.createComputePipeline({
        label: key,
        layout: 'auto',
        compute: { module, entryPoint: spec.entryPoint ?? 'main', constants: spec.overrides },
      });
      this.pipelines.set(key, pipeline);
      this.compiled++;
    }
    return pipeline;
  }

  get size(): number {
    return this.pipelines.size;
  }
}
