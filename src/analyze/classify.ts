// What a profiler event is, from its category and name. Kineto (torch 2.x), older Kineto category
// names ("Kernel", "Runtime") and the legacy torch 1.x format (no categories at all) are all read
// here, so the metrics never look at raw names themselves.

/** GPU activity kinds; null for CPU-side events. */
export function gpuActivity(cat: string | undefined): 'kernel' | 'memcpy' | 'memset' | null {
  switch (cat?.toLowerCase()) {
    case 'kernel':
      return 'kernel';
    case 'gpu_memcpy':
    case 'memcpy':
      return 'memcpy';
    case 'gpu_memset':
    case 'memset':
      return 'memset';
    default:
      return null;
  }
}

/**
 * Events that are CPU operator time: operators, CUDA runtime/driver calls. Legacy traces have no
 * categories (cat undefined): there every event is an op or a record_function range.
 */
export function isCpuOp(cat: string | undefined): boolean {
  if (cat === undefined) return true;
  switch (cat.toLowerCase()) {
    case 'cpu_op':
    case 'operator':
    case 'cuda_runtime':
    case 'runtime':
    case 'cuda_driver':
      return true;
    default:
      return false;
  }
}

/** record_function ranges (module tags, markers). Legacy traces mix them with ops (cat undefined). */
export function isCpuRange(cat: string | undefined): boolean {
  return cat === undefined || cat === 'user_annotation';
}

const KIND_LABELS: Record<string, string> = {
  all_to_all: 'all-to-all',
  all_reduce: 'all-reduce',
  all_gather: 'all-gather',
  reduce_scatter: 'reduce-scatter',
  broadcast: 'broadcast',
  reduce: 'reduce',
  gather: 'gather',
  scatter: 'scatter',
  barrier: 'barrier',
  send: 'send',
  recv: 'recv',
};

export function kindLabel(kind: string): string {
  return KIND_LABELS[kind] ?? kind;
}

/** Normalises the many spellings of one collective (c10d, gloo, NCCL kernel words) to one kind. */
export function normaliseKind(op: string): string {
  const o = op.toLowerCase().replace(/[^a-z]/g, '');
  if (o.startsWith('alltoall') || o === 'sendrecv') return 'all_to_all';
  if (o.startsWith('allreduce')) return 'all_reduce';
  if (o.startsWith('allgather')) return 'all_gather';
  if (o.startsWith('reducescatter')) return 'reduce_scatter';
  for (const k of ['broadcast', 'barrier', 'reduce', 'gather', 'scatter', 'send', 'recv']) {
    if (o.startsWith(k)) return k;
  }
  return o || 'other';
}

/**
 * NCCL kernel → its collective word, for the naming of several NCCL versions:
 * `ncclKernel_SendRecv_RING_SIMPLE_Sum_int8_t(…)` (≤ 2.18), `ncclDevKernel_SendRecv(…)`,
 * `ncclDevKernel_AllReduce_Sum_f32_RING_LL(…)` (2.19+), and RCCL's identical names.
 * SendRecv is how NCCL runs all-to-all (grouped sends and receives), so it counts as all-to-all.
 */
export function ncclKernel(name: string): { kind: string; word: string } | null {
  const m = /^nccl(?:Dev)?Kernel_([A-Za-z]+)/.exec(name);
  if (!m) return null;
  return { kind: normaliseKind(m[1]), word: m[1] };
}

/**
 * CPU-side collective events, in decreasing order of preference (one source per rank is counted,
 * since they nest: c10d::alltoall_ ⊃ record_param_comms ⊃ gloo:all_to_all):
 * 0: `<backend>:<op>` ranges (gloo:all_to_all, nccl:all_reduce) — what the process group records;
 * 1: record_param_comms with a "Collective name" argument;
 * 2: c10d:: operators (c10d::alltoall_, c10d::allreduce_).
 */
export function cpuCollective(
  name: string,
  args: Record<string, unknown> | undefined,
): { kind: string; backend: string; source: 0 | 1 | 2 } | null {
  const m = /^(gloo|nccl|mpi|ucc|xccl|rccl):(\w+)$/.exec(name);
  if (m) return { kind: normaliseKind(m[2]), backend: m[1], source: 0 };
  if (name === 'record_param_comms') {
    const c = args?.['Collective name'];
    return typeof c === 'string' && c ? { kind: normaliseKind(c), backend: 'c10d', source: 1 } : null;
  }
  const c = /^c10d::(\w+)$/.exec(name);
  if (c && !/^(wait|_?work)/.test(c[1])) return { kind: normaliseKind(c[1]), backend: 'c10d', source: 2 };
  return null;
}

/** CPU–GPU synchronisation points: the CPU waits for the GPU. */
export function syncPoint(name: string, activity: ReturnType<typeof gpuActivity>): string | null {
  if (activity === 'memcpy') return /DtoH|Device -> Pageable|Device -> Pinned/.test(name) ? 'Memcpy DtoH' : null;
  if (activity) return null;
  switch (name) {
    case 'aten::item':
    case 'aten::_local_scalar_dense':
    case 'cudaStreamSynchronize':
    case 'cudaDeviceSynchronize':
    case 'cudaEventSynchronize':
    case 'cudaMemcpy':
    case 'cuStreamSynchronize':
    case 'cuCtxSynchronize':
    case 'cuEventSynchronize':
    case 'hipStreamSynchronize':
    case 'hipDeviceSynchronize':
      return name;
    default:
      return null;
  }
}

/** Kernel launch calls of the CUDA runtime and driver APIs (and HIP's). */
export function isLaunch(name: string): boolean {
  return /^(cuda|cu|hip)(ExtModule|Module)?Launch(Cooperative)?Kernel(ExC|Ex)?(_v\d+)?$/.test(name);
}

/** Default fairseq module tags (patches/ labels them so; "with/without MoE" by is_moe_layer). */
export const DEFAULT_MODULE_LABELS = ['TransformerDecoder', 'TransformerDecoderLayer', 'MultiheadAttention', 'MOELayer'];

/** The tag a range's name belongs to: the label itself or the label with a suffix (" with MoE"). */
export function moduleTag(name: string, labels: readonly string[]): string | null {
  for (const l of labels) {
    if (name === l || (name.startsWith(l) && name[l.length] === ' ')) return name;
  }
  return null;
}
