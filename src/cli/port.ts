// `hyperlab port`: a container's published ports, as `docker port` prints them.
import { portLines } from "../containers/ports.ts";
import type { ContainerJson } from "../daemon/v1.ts";
import { HyperlabError } from "../errors.ts";
import { parseVerb } from "./args.ts";
import { VM_HELP, VM_OPTION, containerDaemon, containersPath, enc } from "./container-refs.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab port [--vm NAME] CONTAINER [PRIVATE_PORT[/tcp]]";
const HELP = `Usage: ${USAGE}

Lists the ports a running container publishes on this machine
('80/tcp -> 127.0.0.1:8080'), or with PRIVATE_PORT the host addresses of that
one port. A container publishes ports while it runs (hyperlab run -p/-P).

Options:
${VM_HELP}
`;

export const portVerb: Verb = {
  name: "port",
  summary: "list a container's published ports",
  run: async (args) => {
    const parsed = parseVerb("port", USAGE, args, { options: { ...VM_OPTION }, positionals: { min: 1, max: 2 } });
    if (parsed === "help") return write(HELP), 0;
    const [ref, port] = parsed.positionals as [string, string | undefined];
    const c = await (await containerDaemon("port")).call<ContainerJson>("GET", containersPath(parsed.values.vm, `/${enc(ref)}/port`));
    const lines = portLines(c.ports, port);
    // Docker's words for a port that is not published.
    if (port !== undefined && !lines.length) throw new HyperlabError("INVALID_ARGUMENT", `No public port '${port}' published for ${ref}`);
    write(lines.map((l) => `${l}\n`).join(""));
    return 0;
  },
};
