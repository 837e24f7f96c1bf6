// Event classification across profiler and NCCL versions, and the interval union under the busy %.
import { describe, expect, it } from 'vitest';
import { cpuCollective, isLaunch, moduleTag, ncclKernel, normaliseKind, syncPoint } from '../../src/analyze/classify.js';
import { IntervalSet } from '../../src/analyze/intervals.js';

describe('classify', () => {
  it('reads NCCL kernel names of several NCCL versions', () => {
    const cases: [string, string][] = [
      ['ncclKernel_SendRecv_RING_SIMPLE_Sum_int8_t(ncclDevComm*, unsigned long, ncclWork*)', 'all_to_all'], // ≤ 2.18
      ['ncclDevKernel_SendRecv(ncclDevComm*, unsigned long, ncclWork*)', 'all_to_all'], // 2.19+
      ['ncclKernel_AllReduce_RING_LL_Sum_float(ncclDevComm*, unsigned long, ncclWork*)', 'all_reduce'],
      ['ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevComm*, unsigned long, ncclWork*)', 'all_reduce'],
      ['ncclDevKernel_AllGather_RING_LL(ncclDevComm*, unsigned long, ncclWork*)', 'all_gather'],
      ['ncclKernel_ReduceScatter_RING_SIMPLE_Sum_bf16(ncclDevComm*, unsigned long, ncclWork*)', 'reduce_scatter'],
      ['ncclKernel_Broadcast_RING_LL_Sum_int8_t(ncclDevComm*, unsigned long, ncclWork*)', 'broadcast'],
      ['ncclDevKernel_Reduce_Sum_f16_RING_LL(ncclDevComm*, unsigned long, ncclWork*)', 'reduce'],
    ];
    for (const [name, kind] of cases) expect(ncclKernel(name)?.kind, name).toBe(kind);
    expect(ncclKernel('void at::native::vectorized_elementwise_kernel<4>(…)')).toBeNull();
  });

  it('reads CPU-side collectives from process-group ranges, record_param_comms and c10d ops', () => {
    expect(cpuCollective('gloo:all_to_all', undefined)).toEqual({ kind: 'all_to_all', backend: 'gloo', source: 0 });
    expect(cpuCollective('nccl:_all_gather_base', undefined)).toMatchObject({ kind: 'all_gather', source: 0 });
    expect(cpuCollective('record_param_comms', { 'Collective name': 'all_to_allv' })).toMatchObject({ kind: 'all_to_all', source: 1 });
    expect(cpuCollective('record_param_comms', {})).toBeNull();
    expect(cpuCollective('c10d::alltoall_base_', undefined)).toMatchObject({ kind: 'all_to_all', source: 2 });
    expect(cpuCollective('c10d::allreduce_', undefined)).toMatchObject({ kind: 'all_reduce', source: 2 });
    expect(cpuCollective('aten::add', undefined)).toBeNull();
    expect(normaliseKind('_reduce_scatter_base')).toBe('reduce_scatter');
  });

  it('finds sync points, launches and module tags', () => {
    expect(syncPoint('aten::item', null)).toBe('aten::item');
    expect(syncPoint('cudaStreamSynchronize', null)).toBe('cudaStreamSynchronize');
    expect(syncPoint('Memcpy DtoH (Device -> Pageable)', 'memcpy')).toBe('Memcpy DtoH');
    expect(syncPoint('Memcpy HtoD (Pageable -> Device)', 'memcpy')).toBeNull();
    expect(syncPoint('aten::item', 'kernel')).toBeNull();
    for (const n of ['cudaLaunchKernel', 'cudaLaunchKernelExC', 'cuLaunchKernel', 'cuLaunchKernelEx', 'hipLaunchKernel', 'hipExtModuleLaunchKernel']) {
      expect(isLaunch(n), n).toBe(true);
    }
    expect(isLaunch('cudaLaunchHostFunc')).toBe(false);
    const labels = ['TransformerDecoder', 'TransformerDecoderLayer', 'MOELayer'];
    expect(moduleTag('TransformerDecoderLayer with MoE', labels)).toBe('TransformerDecoderLayer with MoE');
    expect(moduleTag('TransformerDecoder', labels)).toBe('TransformerDecoder');
    expect(moduleTag('TransformerDecoderLayerNorm', labels)).toBeNull();
  });
});

describe('IntervalSet', () => {
  it('totals the union like a brute-force count over many overlapping intervals', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const set = new IntervalSet();
    const covered = new Uint8Array(50_000);
    for (let i = 0; i < 20_000; i++) {
      const s = Math.floor(rnd() * 49_000);
      const e = s + Math.floor(rnd() * 40);
      set.add(s, e);
      covered.fill(1, s, e);
    }
    expect(set.total()).toBe(covered.reduce((a, b) => a + b, 0));
    expect(set.total(10_000, 20_000)).toBe(covered.subarray(10_000, 20_000).reduce((a, b) => a + b, 0));
    const iv = set.intervals();
    for (let i = 2; i < iv.length; i += 2) expect(iv[i]).toBeGreaterThan(iv[i - 1]);
  });
});
