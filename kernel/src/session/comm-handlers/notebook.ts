/**
 * Comm target `nbscale.notebook`: the JupyterLab extension tells the kernel
 * which notebook it serves, on connect and after every rename or move. The
 * server's `JPY_SESSION_NAME` is fixed at kernel start, so without this the
 * kernel would keep recording under a name the notebook no longer has, and
 * `%export` would write a flow named after it.
 *
 * Messages (open data or comm_msg): `{path}` — the notebook's path relative
 * to the Jupyter server root, as JupyterLab names files. Reply: `{path}` (the
 * absolute path now recorded) or `{error}`.
 */
import type { CommManager, Comm } from "../comms";
import type { JsonObject } from "../../protocol/message";
import type { Recorder } from "../recording";

export const NOTEBOOK_TARGET = "nbscale.notebook";

export function register(comms: CommManager, services: { recorder: Recorder }): void {
  const handle = async (comm: Comm, data: JsonObject): Promise<void> => {
    if (data.path === undefined) return;
    try {
      if (typeof data.path !== "string") throw new Error(`expected a notebook path string, got ${JSON.stringify(data.path)}`);
      comm.send({ path: await services.recorder.renameTo(data.path) });
    } catch (e) {
      // Never fatal: recording simply keeps the name it had.
      comm.send({ error: (e as Error).message });
    }
  };
  comms.registerTarget(NOTEBOOK_TARGET, async (comm, data) => {
    comm.onMessage = (msg) => handle(comm, msg);
    await handle(comm, data);
  });
}
