// Networks through the real docker CLI and the hyperlab CLI: user bridge
// networks whose containers reach each other by name and alias and not the
// containers of other networks, `network ls|inspect|rm|prune` in dockerd's
// words, and `--network none` still loopback-only.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DockerLab, dockerLab } from "./docker-cli.ts";
import { hyperlab } from "./daemon-process.ts";

interface NetworkInspect {
  Name: string;
  Id: string;
  Driver: string;
  Scope: string;
  Internal: boolean;
  IPAM: { Config: Array<{ Subnet: string; Gateway: string }> };
  Containers: Record<string, { Name: string; IPv4Address: string }>;
  Labels: Record<string, string>;
}

describe("the docker CLI against hyperlab's daemon: networks", () => {
  let lab: DockerLab;
  const docker = (...args: string[]) => lab.docker(args);
  const inspectNetwork = async (name: string) => (JSON.parse((await docker("network", "inspect", name)).stdout) as NetworkInspect[])[0]!;

  beforeAll(async () => {
    lab = await dockerLab();
  });
  afterAll(async () => {
    await lab?.close();
  });

  it("lists the predefined networks bridge and none", async () => {
    const ls = await docker("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}");
    expect(ls).toMatchObject({ code: 0, stderr: "" });
    expect(ls.stdout.split("\n").filter(Boolean).sort()).toEqual(["bridge bridge local", "none null local"]);
    const bridge = await inspectNetwork("bridge");
    expect(bridge).toMatchObject({ Name: "bridge", Driver: "bridge", IPAM: { Config: [{ Subnet: "10.88.0.0/16", Gateway: "10.88.0.1" }] } });
    expect(bridge.Id).toMatch(/^[0-9a-f]{64}$/);
    const rm = await docker("network", "rm", "bridge");
    expect(rm).toMatchObject({ code: 1, stderr: expect.stringContaining("Error response from daemon: bridge is a pre-defined network and cannot be removed") });
  });

  it("creates a user network with a free subnet, inspects it, and refuses a second one of that name", async () => {
    const created = await docker("network", "create", "--label", "tier=front", "front");
    expect(created.code).toBe(0);
    const front = await inspectNetwork("front");
    expect(front).toMatchObject({ Name: "front", Id: created.stdout.trim(), Driver: "bridge", Scope: "local", Internal: false, Labels: { tier: "front" }, Containers: {} });
    expect(front.IPAM.Config).toEqual([{ Subnet: "10.89.0.0/24", Gateway: "10.89.0.1" }]);
    expect(await docker("network", "create", "--subnet", "10.90.0.0/24", "back")).toMatchObject({ code: 0 });
    expect((await inspectNetwork("back")).IPAM.Config).toEqual([{ Subnet: "10.90.0.0/24", Gateway: "10.90.0.1" }]);
    expect((await docker("network", "ls", "--filter", "label=tier=front", "--format", "{{.Name}}")).stdout).toBe("front\n");
    const dup = await docker("network", "create", "front");
    expect(dup).toMatchObject({ code: 1, stderr: "Error response from daemon: network with name front already exists\n" });
    const overlap = await docker("network", "create", "--subnet", "10.89.0.128/25", "clash");
    expect(overlap.code).toBe(1);
    expect(overlap.stderr).toContain("Pool overlaps with other one on this address space");
  });

  it("lets containers on one user network reach each other by name and alias, and not across networks", async () => {
    const web = await docker("run", "-d", "--name", "web", "--network", "front", "--network-alias", "www", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc");
    expect(web.code).toBe(0);
    // By name and by alias, with ping and with wget to the busybox httpd (static glibc busybox reads /etc/hosts).
    const same = await docker("run", "--rm", "--network", "front", "busybox", "sh", "-c", "ping -c 1 -W 2 web >/dev/null && echo pinged && wget -qO- http://www/group");
    expect(same).toMatchObject({ code: 0, stdout: expect.stringMatching(/^pinged\nroot:x:0:\n/) });
    const address = (await docker("inspect", "-f", "{{.NetworkSettings.Networks.front.IPAddress}}", "web")).stdout.trim();
    expect(address).toMatch(/^10\.89\.0\.\d+$/);
    // From another user network: the name is unknown, and the address unreachable (the guest does not forward between bridges).
    const name = await docker("run", "--rm", "--network", "back", "busybox", "ping", "-c", "1", "-W", "1", "web");
    expect(name.code).toBe(1);
    expect(name.stderr).toContain("bad address 'web'");
    const across = await docker("run", "--rm", "--network", "back", "busybox", "ping", "-c", "1", "-W", "1", address);
    expect(across.code).toBe(1);
    expect(across.stdout).toContain("0 packets received");
    // Nor from the default bridge.
    expect((await docker("run", "--rm", "busybox", "ping", "-c", "1", "-W", "1", address)).code).toBe(1);
  });

  it("shows a container's network and address in inspect, ps and the network's containers", async () => {
    const settings = JSON.parse((await docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", "web")).stdout) as Record<string, { IPAddress: string; IPPrefixLen: number; Gateway: string; Aliases: string[]; NetworkID: string; DNSNames: string[] }>;
    const front = await inspectNetwork("front");
    expect(Object.keys(settings)).toEqual(["front"]);
    expect(settings.front).toMatchObject({ IPPrefixLen: 24, Gateway: "10.89.0.1", Aliases: ["www"], NetworkID: front.Id });
    expect(settings.front!.DNSNames).toEqual(expect.arrayContaining(["web", "www"]));
    expect((await docker("ps", "--filter", "name=web", "--format", "{{.Networks}}")).stdout).toBe("front\n");
    expect(Object.values(front.Containers)).toEqual([expect.objectContaining({ Name: "web", IPv4Address: `${settings.front!.IPAddress}/24` })]);
    // The legacy top-level fields describe the default bridge only, as in dockerd.
    expect((await docker("inspect", "-f", "[{{.NetworkSettings.IPAddress}}]", "web")).stdout).toBe("[]\n");
  });

  it("tells running containers the names of those that start later, and forgets them when they stop", async () => {
    // `early` waits until `late` resolves, then until it no longer answers.
    const early = await docker("run", "-d", "--name", "early", "--network", "front", "busybox", "sh", "-c",
      "until ping -c 1 -W 1 late >/dev/null 2>&1; do sleep 0.2; done; echo found late; until ! grep -qw late /etc/hosts; do sleep 0.2; done; echo forgot late");
    expect(early.code).toBe(0);
    expect((await docker("run", "--rm", "--name", "late", "--network", "front", "busybox", "sleep", "2")).code).toBe(0);
    expect(await docker("wait", "early")).toMatchObject({ code: 0, stdout: "0\n" });
    expect((await docker("logs", "early")).stdout).toBe("found late\nforgot late\n");
    await docker("rm", "early");
  });

  it("refuses to remove a network while a container on it runs, in dockerd's words", async () => {
    const busy = await docker("network", "rm", "front");
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/^Error response from daemon: error while removing network: network front id [0-9a-f]{64} has active endpoints/);
    expect((await docker("rm", "-f", "web")).code).toBe(0);
    expect(await docker("network", "rm", "front")).toMatchObject({ code: 0, stdout: "front\n" });
    const gone = await docker("network", "inspect", "front");
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("network front not found");
    const run = await docker("run", "--rm", "--network", "front", "busybox", "true");
    expect(run).toMatchObject({ code: 125, stderr: expect.stringContaining("Error response from daemon: network front not found") });
    expect(run.stderr).not.toContain("Unable to find image");
  });

  it("keeps --network none loopback-only", async () => {
    const r = await docker("run", "--rm", "--network", "none", "busybox", "sh", "-c", "ip -o link | cut -d: -f2; ping -c 1 -W 1 127.0.0.1 >/dev/null && echo loopback; ip route; ping -c 1 -W 1 10.88.0.1 >/dev/null 2>&1 || echo unreachable");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(" lo\nloopback\nunreachable\n");
    expect((await docker("create", "--name", "offline", "--network", "none", "busybox")).code).toBe(0);
    expect((await docker("inspect", "-f", "{{range $name, $n := .NetworkSettings.Networks}}{{$name}} [{{$n.IPAddress}}]{{end}}", "offline")).stdout).toBe("none []\n");
    await docker("rm", "offline");
  });

  it("makes an internal network without a default route, and prunes unused networks", async () => {
    expect((await docker("network", "create", "--internal", "--label", "scratch=1", "quiet")).code).toBe(0);
    expect((await inspectNetwork("quiet")).Internal).toBe(true);
    const routes = await docker("run", "--rm", "--network", "quiet", "busybox", "ip", "route");
    expect(routes).toMatchObject({ code: 0, stdout: expect.not.stringContaining("default") });
    const pruned = await docker("network", "prune", "-f", "--filter", "label=scratch");
    expect(pruned).toMatchObject({ code: 0, stdout: "Deleted Networks:\nquiet\n\n" });
    expect((await docker("network", "ls", "--format", "{{.Name}}")).stdout.split("\n").filter(Boolean).sort()).toEqual(["back", "bridge", "none"]);
  });

  it("refuses what it does not do, naming it: other drivers, IPv6, driver options, connect", async () => {
    const overlay = await docker("network", "create", "-d", "overlay", "o");
    expect(overlay).toMatchObject({ code: 1, stderr: expect.stringContaining("driver overlay is not supported by hyperlab") });
    expect((await docker("network", "create", "--ipv6", "six")).stderr).toContain("EnableIPv6 is not supported by hyperlab");
    expect((await docker("network", "create", "-o", "com.docker.network.driver.mtu=1400", "m")).stderr).toContain("driver option com.docker.network.driver.mtu is not supported");
    expect((await docker("run", "--rm", "--network-alias", "x", "--network", "bridge", "busybox", "true")).code).toBe(125);
    expect((await docker("create", "--name", "lonely", "--network", "back", "busybox", "true")).code).toBe(0);
    const connect = await docker("network", "connect", "bridge", "lonely");
    expect(connect).toMatchObject({ code: 1, stderr: expect.stringContaining("docker network connect is not supported by hyperlab") });
    const disconnect = await docker("network", "disconnect", "back", "lonely");
    expect(disconnect).toMatchObject({ code: 1, stderr: expect.stringContaining("docker network disconnect is not supported by hyperlab") });
    await docker("rm", "lonely");
  });

  it("serves the same networks to the hyperlab CLI: network create|ls|inspect|rm and run --network", async () => {
    const h = (...args: string[]) => hyperlab(lab.socket, args);
    const created = await h("network", "create", "--subnet", "10.91.0.0/24", "lab");
    expect(created).toMatchObject({ code: 0, stderr: "" });
    expect((await h("network", "ls")).stdout).toMatch(/^[0-9a-f]{12}\s+lab\s+bridge\s+10\.91\.0\.0\/24\s+10\.91\.0\.1\s+0\s+/m);
    expect((await docker("network", "ls", "--format", "{{.Name}}", "--filter", "name=lab")).stdout).toBe("lab\n");
    expect((await h("run", "-d", "--name", "svc", "--network", "lab", "--network-alias", "api", "--ip", "10.91.0.50", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")).code).toBe(0);
    expect(await h("run", "--rm", "--network", "lab", "busybox", "wget", "-qO-", "http://api/group")).toMatchObject({ code: 0, stdout: expect.stringMatching(/^root:x:0:/) });
    const [net] = JSON.parse((await h("network", "inspect", "lab")).stdout) as Array<{ name: string; containers: Array<{ name: string; ipAddress: string; status: string }> }>;
    expect(net).toMatchObject({ name: "lab", containers: [{ name: "svc", ipAddress: "10.91.0.50", status: "running" }] });
    const busy = await h("network", "rm", "lab");
    expect(busy).toMatchObject({ code: 125, stderr: expect.stringContaining("has active endpoints (containers svc)") });
    expect((await h("network", "create", "lab")).stderr).toContain("network with name lab already exists [NETWORK_EXISTS]");
    expect((await h("network", "create", "--subnet")).stderr).toContain("flag --subnet needs a value");
    expect((await h("network", "rm")).code).toBe(125);
    expect((await h("run", "--rm", "--network", "nowhere", "busybox", "true")).stderr).toContain("network nowhere not found");
    expect((await h("rm", "-f", "svc")).code).toBe(0);
    expect(await h("network", "rm", "lab")).toMatchObject({ code: 0, stdout: "lab\n" });
  });

  it("says that user networks need the daemon when none runs", async () => {
    const r = await hyperlab("/nonexistent/hyperlab-test.sock", ["run", "--rm", "--network", "app", "busybox", "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("--network app needs a running daemon");
    expect(r.stderr).toContain("'hyperlab network create app'");
  });

  it("keeps a VM's networks in its snapshots: a fork has them, and its containers still find each other by name", async () => {
    const h = (...args: string[]) => hyperlab(lab.socket, args);
    expect((await docker("run", "-d", "--name", "db", "--network", "back", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")).code).toBe(0);
    const fork = await h("vm", "fork", "default");
    expect(fork.code).toBe(0);
    const copy = fork.stdout.trim();
    expect((await h("network", "ls", "--vm", copy)).stdout).toMatch(/\sback\s+bridge\s+10\.90\.0\.0\/24\s/);
    expect(await h("run", "--vm", copy, "--rm", "--network", "back", "busybox", "wget", "-qO-", "http://db/group")).toMatchObject({ code: 0, stdout: expect.stringMatching(/^root:x:0:/) });
    expect((await h("vm", "rm", copy)).code).toBe(0);
    expect((await docker("rm", "-f", "db")).code).toBe(0);
  });
});
