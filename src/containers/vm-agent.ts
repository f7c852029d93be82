// The agent of a hypervisor VM as the container engine uses it: every request
// goes to the VM's worker (one Comlink call each), where the agent client
// runs beside the emulator. The daemon and the page reach their containers
// this way; no engine talks to a machine on its own thread.
import { HyperlabError } from "../errors.ts";
import type { ExecOptions } from "../guest/agent.ts";
import type { Vm } from "../hypervisor/vm.ts";
import type { EngineAgent } from "./engine.ts";

/** The engine's view of `vm`'s agent. Each call is legal while the VM runs (VM_INVALID_STATE otherwise, naming its state). */
export function vmAgent(vm: Vm): EngineAgent {
  return {
    exec: (argv, opts: ExecOptions = {}) => {
      // A VM's exec takes its stdin whole; the engine never keeps one open for exec.
      if (opts.stdin === true) return Promise.reject(new HyperlabError("INVALID_ARGUMENT", "exec through a VM takes its stdin whole: use spawn to keep it open"));
      return vm.exec([...argv], { ...opts, stdin: opts.stdin });
    },
    spawn: (argv, opts) => vm.spawn([...argv], opts),
    adopt: (requestId, opts) => vm.adopt(requestId, opts),
    writeFile: (path, data, opts) => vm.writeFile(path, data, opts),
    readFile: (path) => vm.readFile(path),
    stat: (path) => vm.agentRequest("stat", path),
    mkdir: (path, opts) => vm.agentRequest("mkdir", path, opts),
    remove: (path, opts) => vm.agentRequest("remove", path, opts),
    mount: (m) => vm.agentRequest("mount", m),
    umount: (target, opts) => vm.agentRequest("umount", target, opts),
  };
}
