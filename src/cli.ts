// The command line: flags and commands only. Every command calls into one stage; this is the only
// module that knows all of them (DESIGN.md, "Layout").
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { configJsonSchema, loadConfig } from './config/index.js';
import { UserError } from './errors.js';
import { doctor } from './plan/doctor.js';
import { dryRun } from './plan/dry-run.js';
import { launchRun } from './launch/index.js';
import { nodePlacement } from './launch/slurm.js';
import type { Tee } from './launch/supervisor.js';
import { packRunDir, packStage } from './pack.js';
import { reportStage } from './report/index.js';
import { REPORT_FORMATS, reportCommand, type ReportFormat } from './report/sweep.js';
import { mergeCommand, mergeStage } from './trace/index.js';

async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  await yargs(argv)
    .scriptName('moe-run')
    .usage('$0 --config FILE [--gpus N] [--set key.path=value]... [--dry-run]')
    .command(
      '$0',
      'launch one profiled rank per GPU and build the timeline and report',
      (y) => y
        .option('config', { alias: 'c', type: 'string', describe: 'YAML config (see configs/)' })
        .option('gpus', { type: 'number', describe: 'ranks (GPUs) per node; overrides gpus:' })
        .option('set', { type: 'string', array: true, describe: 'override a key: --set workload.batch_size=2' })
        .option('name', { type: 'string', describe: 'run name (directory prefix)' })
        .option('out', { type: 'string', describe: 'run directory (default: output.dir/<name>-<UTC stamp>)' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'print every rank\'s command line; start nothing' })
        .option('json', { type: 'boolean', default: false, describe: 'with --dry-run: print the plan as JSON' })
        .option('tee', { type: 'string', choices: ['all', '0', 'none'] as const, describe: 'ranks whose output is echoed (default: launch.tee)' })
        .option('quiet', { type: 'boolean', default: false, describe: 'no progress display' })
        .option('archive', { type: 'boolean', describe: 'pack the run directory into <run>.tar.gz at the end' })
        .option('nnodes', { type: 'number', describe: 'nodes in the run (multi-node without Slurm)' })
        .option('node-rank', { type: 'number', describe: 'this node\'s index, 0 hosts the rendezvous' })
        .option('rdzv', { type: 'string', describe: 'HOST:PORT of node 0\'s rendezvous' })
        .option('token-file', { type: 'string', describe: 'join token file on a file system every node sees (node 0 writes it); default: $MOE_RUN_JOIN_TOKEN' }),
      async (args) => {
        if (args.config === undefined && args.set === undefined) {
          throw new UserError('no config: pass --config FILE, e.g. --config configs/tiny-cpu.yaml (see configs/)');
        }
        // Where this node stands (flags, else Slurm's srun step, else a single node); its GPU count
        // (--gpus, else Slurm's) overrides the config's.
        const placement = await nodePlacement({ nnodes: args.nnodes, nodeRank: args.nodeRank, rdzv: args.rdzv, gpus: args.gpus, tokenFile: args.tokenFile });
        const { config } = await loadConfig({ configPath: args.config, sets: args.set, gpus: placement.gpus, name: args.name });
        if (args.dryRun) {
          process.stdout.write(await dryRun(config, {
            outDir: args.out, json: args.json, nnodes: placement.nnodes, nodeRank: placement.nodeRank,
            masterAddr: placement.rdzv?.host, hostname: placement.hostname,
          }));
          return;
        }
        exitCode = await launchRun({
          config, configSource: args.config ?? '(--set only)', outDir: args.out, tee: args.tee as Tee | undefined,
          quiet: args.quiet, archive: args.archive, argv: ['moe-run', ...argv], placement,
          postRun: [mergeStage, reportStage, packStage],
        });
      },
    )
    .command('schema', 'print the JSON Schema of config files (for editors)', {}, () => {
      process.stdout.write(JSON.stringify(configJsonSchema(), null, 2) + '\n');
    })
    .command(
      'doctor',
      'check python, torch, CUDA, fairseq (MoE) and the GPUs; exit 0 when a GPU run can start',
      (y) => y
        .option('config', { alias: 'c', type: 'string', describe: 'check for this config (its python, workload, gpus)' })
        .option('set', { type: 'string', array: true, describe: 'override a key, as for a run' }),
      async (args) => {
        const config = args.config === undefined && args.set === undefined
          ? undefined
          : (await loadConfig({ configPath: args.config, sets: args.set })).config;
        const result = await doctor(config);
        process.stdout.write(result.lines.join('\n') + '\n');
        exitCode = result.exitCode;
      },
    )
    .command(
      'merge <inputs..>',
      'rebuild RUN_DIR/timeline.json.gz, or merge per-rank traces: merge -o OUT.json.gz TRACE…',
      (y) => y
        .positional('inputs', { type: 'string', array: true, demandOption: true, describe: 'a run directory, or trace files with -o' })
        .option('out', { alias: 'o', type: 'string', describe: 'merge these trace files into OUT (.json.gz or .json)' }),
      async (args) => {
        process.stdout.write(await mergeCommand(args.inputs, { out: args.out }));
      },
    )
    .command(
      'report <dirs..>',
      'analyze run directories and write report.md/report.html (several: a sweep table)',
      (y) => y
        .positional('dirs', { type: 'string', array: true, demandOption: true, describe: 'run directories' })
        .option('format', { choices: REPORT_FORMATS, default: 'table' as ReportFormat, describe: 'output format' })
        .option('sort', { type: 'string', describe: 'sort the sweep table by a column (key or header); --sort=-COL or --desc: descending' })
        .option('desc', { type: 'boolean', default: false, describe: 'sort descending' })
        .option('reanalyze', { type: 'boolean', default: false, describe: 'redo the analysis even where summary.json exists' }),
      async (args) => {
        process.stdout.write(await reportCommand(args.dirs, { format: args.format, sort: args.sort, desc: args.desc, reanalyze: args.reanalyze }));
      },
    )
    .command(
      'pack <dir>',
      'pack a run directory into <dir>.tar.gz',
      (y) => y
        .positional('dir', { type: 'string', demandOption: true, describe: 'run directory' })
        .option('force', { type: 'boolean', default: false, describe: 'overwrite an existing archive' })
        .option('out', { type: 'string', describe: 'archive path (default: <dir>.tar.gz)' }),
      async (args) => {
        process.stdout.write(`${await packRunDir(args.dir, { force: args.force, out: args.out })}\n`);
      },
    )
    .strict()
    .help()
    .version(false)
    // A flag mistake is a user error like a config mistake: one line, exit 2.
    .fail((msg, err) => {
      if (err) throw err;
      throw new UserError(`${msg.replace(/\s*\n\s*/g, ' ')} (see moe-run --help)`);
    })
    .parseAsync();
  return exitCode;
}

main(hideBin(process.argv)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (err instanceof UserError) {
      process.stderr.write(`moe-run: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
