import { CliCommand, UsageError } from "../command";
import { runWorker } from "../../worker/main";

const usage = `Usage: nbscale worker --connect ENDPOINT --id ID
       nbscale worker --task DATASTORE TASK_ID

Runs steps for an nbscale kernel. Started by the kernel's worker pool (and by
the Batch and Slurm launchers), not by hand: the session key arrives on stdin,
and the worker exits when stdin closes.

Options:
  --connect ENDPOINT  the kernel's worker socket (ipc:// or tcp://127.0.0.1:PORT)
  --id ID             this worker's id in the pool
  --task DATASTORE TASK_ID
                      run one task from the datastore (a directory or
                      s3://bucket/prefix) and exit: how Slurm and Batch jobs
                      run a notebook step or a flow step (0: it succeeded,
                      1: it threw, 2: no task)
`;

const worker: CliCommand = {
  name: "worker",
  summary: "Run steps for a kernel (started by the worker pool)",
  usage,
  run: async (argv, io) => {
    if (argv[0] === "--task") {
      if (argv.length !== 3) throw new UsageError(`--task takes a datastore and a task id\n\n${usage}`);
      // A notebook cell's step or a flow's (`nbscale run … --on slurm|batch`): task.json says which.
      const [{ runRemoteWorker }, { flowTaskKind }] = await Promise.all([import("../../worker/remote-main"), import("../../flow/remote-worker")]);
      const code = await runRemoteWorker({ datastore: argv[1], task: argv[2], cwd: io.cwd }, [flowTaskKind]);
      // Whatever the step left running (timers, sockets) must not keep the job alive.
      process.exit(code);
    }
    const opts: Record<string, string> = {};
    for (let i = 0; i < argv.length; i++) {
      const m = /^--(connect|id)(?:=(.*))?$/.exec(argv[i]);
      if (!m) throw new UsageError(`unexpected argument ${argv[i]}\n\n${usage}`);
      const value = m[2] ?? argv[++i];
      if (value === undefined) throw new UsageError(`--${m[1]} needs a value`);
      opts[m[1]] = value;
    }
    if (!opts.connect || !opts.id) throw new UsageError(`--connect and --id are required\n\n${usage}`);
    if (!/^(ipc:\/\/|tcp:\/\/(127\.0\.0\.1|\[::1\]|localhost):)/.test(opts.connect)) {
      throw new UsageError("--connect must be an ipc:// or loopback tcp:// endpoint");
    }
    await runWorker({ endpoint: opts.connect, id: opts.id, cwd: io.cwd });
    // Stays alive on its sockets and stdin.
    return await new Promise<number>(() => undefined);
  },
};

export default worker;
