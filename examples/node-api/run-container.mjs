// hyperlab as a Node library: a hypervisor, a VM, a command in its guest and
// a container run to its end. `node run-container.mjs` in a project that has
// `npm install`ed the hyperlab package (docs/node-api.md).
import { Hypervisor, isHyperlabError, nodeContainers } from "hyperlab";

const hypervisor = await Hypervisor.create({ warmPool: 0 });
const containers = nodeContainers(hypervisor);
try {
  // A VM restored from the boot snapshot (built once, cached in node_modules/.cache/hyperlab).
  const vm = await hypervisor.createVm({ name: "demo", memoryMiB: 128 });
  const uname = await vm.exec(["uname", "-r"]);
  console.log(`kernel ${uname.stdout.trim()}, exit ${uname.exitCode}`);

  // Its container engine: crun in that guest, busybox from the built-in images.
  const engine = containers.engine(vm.name);
  const { container, attachment } = await engine.run({ image: "busybox", command: ["sh", "-c", "echo pid $$ in $(hostname)"] }, { attached: true });
  let out = "";
  attachment.onOutput((_stream, data) => (out += new TextDecoder().decode(data)));
  const status = await attachment.exited;
  console.log(`${container.name}: ${out.trim()}, exit ${status}`);
  await engine.remove(container.id);

  await engine.run({ image: "nginx" }).catch((err) => {
    if (isHyperlabError(err, "IMAGE_NOT_FOUND")) console.log(`as expected: ${err.message}`);
    else throw err;
  });
} finally {
  containers.close();
  await hypervisor.close();
}
