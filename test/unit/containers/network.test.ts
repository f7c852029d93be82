import { describe, expect, it } from "vitest";
import { NetworkTable, allocateAddress, bridgeName, hostsFile, networkHookArgs, parseSubnet, planSubnet } from "../../../src/containers/network.ts";

describe("container networks", () => {
  it("starts with the predefined networks bridge (hl0, 10.88.0.0/16) and none", () => {
    const t = new NetworkTable();
    const [bridge, none] = t.list();
    expect(bridge).toMatchObject({ name: "bridge", driver: "bridge", builtin: "bridge", subnet: "10.88.0.0/16", gateway: "10.88.0.1" });
    expect(none).toMatchObject({ name: "none", driver: "null", builtin: "none", subnet: "" });
    expect(bridgeName(bridge!)).toBe("hl0");
    expect(() => t.delete(bridge!)).toThrow("bridge is a pre-defined network and cannot be removed");
  });

  it("gives user networks the first free /24 of 10.89.0.0/16, a gateway at .1 and a bridge named after the id", () => {
    const t = new NetworkTable();
    const a = t.create({ name: "a" });
    const b = t.create({ name: "b", subnet: "10.89.1.7/24" }); // normalized to its network address
    const c = t.create({ name: "c" });
    expect([a.subnet, a.gateway, b.subnet, c.subnet]).toEqual(["10.89.0.0/24", "10.89.0.1", "10.89.1.0/24", "10.89.2.0/24"]);
    expect(bridgeName(a)).toBe(`br-${a.id.slice(0, 12)}`);
    expect(bridgeName(a).length).toBeLessThanOrEqual(15);
    t.delete(a);
    expect(t.create({ name: "d" }).subnet).toBe("10.89.0.0/24");
  });

  it("finds a network by id, name or unique id prefix, and says so in dockerd's words when none matches", () => {
    const t = new NetworkTable();
    const n = t.create({ name: "web" });
    expect(t.get(n.id)).toBe(n);
    expect(t.get("web")).toBe(n);
    expect(t.get(n.id.slice(0, 6))).toBe(n);
    expect(() => t.get("nope")).toThrow("network nope not found");
  });

  it("refuses a taken name, a bad name, an overlapping or malformed subnet and a gateway outside it", () => {
    const t = new NetworkTable();
    t.create({ name: "web", subnet: "10.90.0.0/24" });
    expect(() => t.create({ name: "web" })).toThrow("network with name web already exists");
    expect(() => t.create({ name: "bridge" })).toThrow("network with name bridge already exists");
    expect(() => t.create({ name: "bad name" })).toThrow("invalid network name 'bad name'");
    expect(() => t.create({ name: "x", subnet: "10.90.0.128/25" })).toThrow("Pool overlaps with other one on this address space");
    expect(() => t.create({ name: "x", subnet: "10.0.0.0/8" })).toThrow("overlaps network bridge (10.88.0.0/16)");
    expect(() => t.create({ name: "x", subnet: "10.91.0.0/33" })).toThrow("invalid CIDR address");
    expect(() => t.create({ name: "x", subnet: "10.91.0.0/31" })).toThrow("use a prefix from /8 to /30");
    expect(() => t.create({ name: "x", subnet: "10.91.0.0/24", gateway: "10.92.0.1" })).toThrow("no matching subnet for gateway 10.92.0.1");
    expect(() => t.create({ name: "x", gateway: "10.91.0.1" })).toThrow("every ip-range or gateway must have a corresponding subnet");
    expect(planSubnet({ subnet: "192.168.5.0/24", gateway: "192.168.5.254" }, t.list())).toEqual({ subnet: "192.168.5.0/24", gateway: "192.168.5.254" });
  });

  it("hands out the lowest free address, skipping the gateway, and checks a fixed one", () => {
    const t = new NetworkTable();
    const n = t.create({ name: "n", subnet: "10.93.0.0/29" });
    expect(allocateAddress(n, [])).toBe("10.93.0.2");
    expect(allocateAddress(n, ["10.93.0.2", "10.93.0.4"])).toBe("10.93.0.3");
    expect(() => allocateAddress(n, ["10.93.0.2", "10.93.0.3", "10.93.0.4", "10.93.0.5", "10.93.0.6"])).toThrow("no address left on network n");
    expect(allocateAddress(n, [], "10.93.0.6")).toBe("10.93.0.6");
    expect(() => allocateAddress(n, [], "10.93.0.7")).toThrow("no configured subnet or ip-range contain the IP address 10.93.0.7");
    expect(() => allocateAddress(n, [], "10.93.0.1")).toThrow("Address already in use");
    expect(parseSubnet("10.93.0.13/29")).toEqual({ base: parseSubnet("10.93.0.8/29").base, size: 8, prefix: 29 });
  });

  it("keeps its networks in records, and takes them back with the same ids", () => {
    const t = new NetworkTable();
    const n = t.create({ name: "n", internal: true, labels: { a: "1" } });
    const back = new NetworkTable(JSON.parse(JSON.stringify(t.records())));
    expect(back.list().map((x) => x.id)).toEqual(t.list().map((x) => x.id));
    expect(back.get("n")).toMatchObject({ id: n.id, internal: true, labels: { a: "1" }, subnet: n.subnet });
    expect(back.get("n").createdAt).toEqual(n.createdAt);
  });

  it("wires the default bridge with the hook's four arguments, and a user network with its bridge, gateway and internal flag", () => {
    const t = new NetworkTable();
    const [bridge] = t.list();
    expect(networkHookArgs("10.88.0.2", 16, "hlabcdef01", bridge)).toEqual(["/sbin/hyperlab-net-hook", "bridge", "10.88.0.2/16", "hlabcdef01"]);
    const n = t.create({ name: "n", internal: true });
    expect(networkHookArgs("10.89.0.2", 24, "hlabcdef01", n)).toEqual(["/sbin/hyperlab-net-hook", "bridge", "10.89.0.2/24", "hlabcdef01", bridgeName(n), "10.89.0.1", "internal"]);
  });

  it("writes a container's /etc/hosts: loopback, its own host name, then its network's containers by every name", () => {
    const text = hostsFile({ address: "10.89.0.3", hostname: "c0ffee123456" }, "front", [
      { address: "10.89.0.2", names: ["web", "www", "abc123abc123", "abc123abc123"] },
      { address: "10.89.0.3", names: ["me", "c0ffee123456"] },
    ]);
    expect(text.split("\n")).toEqual([
      "127.0.0.1\tlocalhost",
      "10.89.0.3\tc0ffee123456",
      expect.stringMatching(/^# the running containers of network front/),
      "10.89.0.2\tweb www abc123abc123",
      "10.89.0.3\tme c0ffee123456",
      "",
    ]);
  });
});
