// One figure a benchmark measured; ratios are against a baseline measured in the same run.
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  baseline?: number;
  ratio?: number;
  target?: string;
  note?: string;
}
