import { mkdirSync, writeFileSync, copyFileSync, existsSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { UsageError, type CliCommand } from "../command";
import { parseArgs } from "../args";
import { PACKAGE_DIR } from "../../version";

const usage = `usage:
  nbscale kernel --connection-file FILE      start the kernel (Jupyter does this)
  nbscale kernel install [--user | --sys-prefix | --prefix DIR] [--name NAME]
      write the "nbscale" kernelspec (default: --user)`;

function kernelspecDir(flags: Map<string, string | true>, env: NodeJS.ProcessEnv): string {
  const prefix = flags.get("prefix");
  if (typeof prefix === "string") return join(resolve(prefix), "share", "jupyter", "kernels");
  if (flags.has("sys-prefix")) {
    let sysPrefix = env.VIRTUAL_ENV;
    if (!sysPrefix) {
      try {
        sysPrefix = execFileSync("python3", ["-c", "import sys; print(sys.prefix)"], { encoding: "utf8" }).trim();
      } catch {
        throw new UsageError("--sys-prefix: could not run python3 to find sys.prefix; pass --prefix DIR instead");
      }
    }
    return join(sysPrefix, "share", "jupyter", "kernels");
  }
  const dataHome = env.JUPYTER_DATA_DIR ?? join(env.XDG_DATA_HOME ?? join(homedir(), ".local", "share"), "jupyter");
  return join(dataHome, "kernels");
}

export function writeKernelspec(dir: string, name: string): string {
  const target = join(dir, name);
  mkdirSync(target, { recursive: true });
  const spec = {
    argv: [process.execPath, join(PACKAGE_DIR, "bin", "nbscale.js"), "kernel", "--connection-file", "{connection_file}"],
    display_name: "TypeScript (nbscale)",
    language: "typescript",
    interrupt_mode: "message",
    env: {},
    metadata: { debugger: false },
  };
  writeFileSync(join(target, "kernel.json"), JSON.stringify(spec, null, 2) + "\n");
  for (const logo of ["logo-svg.svg", "logo-32x32.png", "logo-64x64.png"]) {
    const src = join(PACKAGE_DIR, "assets", logo);
    if (existsSync(src)) copyFileSync(src, join(target, logo));
  }
  return target;
}

const command: CliCommand = {
  name: "kernel",
  summary: "start the Jupyter kernel, or install its kernelspec",
  usage,
  async run(argv, io) {
    if (argv[0] === "install") {
      const { positional, flags } = parseArgs(argv.slice(1), { boolean: ["user", "sys-prefix"], string: ["prefix", "name"] });
      if (positional.length) throw new UsageError(`unexpected argument ${positional[0]}\n${usage}`);
      const name = typeof flags.get("name") === "string" ? (flags.get("name") as string) : "nbscale";
      if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new UsageError(`--name ${name}: use letters, digits, ".", "_" and "-"`);
      const dir = writeKernelspec(kernelspecDir(flags, io.env), name);
      io.stdout.write(`installed kernelspec ${name} in ${dir}\n`);
      return 0;
    }
    const { positional, flags } = parseArgs(argv, { string: ["connection-file", "f"] });
    const file = flags.get("connection-file") ?? flags.get("f") ?? positional[0];
    if (typeof file !== "string") throw new UsageError(`missing --connection-file\n${usage}`);
    const { runKernel } = await import("../../kernel");
    await runKernel({ connectionFile: file, cwd: io.cwd });
    return new Promise<number>(() => {
      // The kernel runs until a shutdown_request or a signal ends the process.
    });
  },
};

export default command;
