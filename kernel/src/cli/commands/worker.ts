import { CliCommand, UsageError } from "../command";
import { runWorker } from "../../worker/main";

const usage = `Usage: nbscale worker --connect ENDPOINT --id ID

Runs steps for an nbscale kernel. Started by the kernel's worker pool (and by
the Batch and Slurm launchers), not by hand: the session key arrives on stdin,
and the worker exits when stdin closes.

Options:
  --connect ENDPOINT  the kernel's worker socket (ipc:// or tcp://127.0.0.1:PORT)
  --id ID             this worker's id in the pool
`;

const worker: CliCommand = {
  name: "worker",
  summary: "Run steps for a kernel (started by the worker pool)",
  usage,
  run: async (argv, io) => {
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
