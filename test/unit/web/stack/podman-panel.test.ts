import { describe, expect, it } from "vitest";
import { podmanProcesses } from "../../../../src/web/stack/podman-panel.ts";

// As busybox ps printed it in a podman-profile guest (conmon's long argument list cut short here).
const ID = "7054083a4844a0de47e5fef8aa5b04df25c0f380a0022bddc62de2a4a31eb6fe";
const PS = `PID   PPID  COMMAND          COMMAND
    1     0 init             init
   67     1 hyperlab-agent   /sbin/hyperlab-agent
  118     1 conmon           /usr/bin/conmon --api-version 1 -c ${ID} -u ${ID} -r /usr/bin/crun -b /var/lib/containers/storage/overlay-containers/${ID}/userdata -n web --exit-dir /run/libpod/exits
  121   118 sleep            sleep 300
  150     1 conmon           /usr/bin/conmon --api-version 1 -c ${ID} -u 2b1f -r /usr/bin/crun -n web --exec-attach --exec --exit-dir /run/libpod/exec
  152     1 podman           podman exec web true
  191     1 aardvark-dns     /usr/lib/podman/aardvark-dns --config /run/containers/networks/aardvark-dns -p 53 run
`;

describe("Podman's processes in the stack view", () => {
  it("finds each container's conmon and the container's process under it, and no daemon", () => {
    expect(podmanProcesses(PS)).toEqual({
      podman: 1,
      containers: [{ name: "web", id: ID.slice(0, 12), conmonPid: 118, pid: 121, command: "sleep 300" }],
      aardvarkDns: 191,
    });
  });

  it("does not take the runtime for the container's process while it makes the container", () => {
    const starting = `PID   PPID  COMMAND          COMMAND
  296     1 conmon           /usr/bin/conmon --api-version 1 -c ${ID} -u ${ID} -r /usr/bin/crun -n web
  297   296 crun             /usr/bin/crun --log-format=json create --bundle /var/lib/containers/storage/overlay-containers/${ID}/userdata ${ID}
`;
    expect(podmanProcesses(starting).containers).toEqual([{ name: "web", id: ID.slice(0, 12), conmonPid: 296 }]);
  });

  it("shows nothing for a guest with no podman processes", () => {
    expect(podmanProcesses("PID   PPID  COMMAND          COMMAND\n    1     0 init             init\n")).toEqual({ podman: 0, containers: [] });
  });
});
